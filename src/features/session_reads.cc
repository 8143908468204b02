// AsyncReads over a synchronous StoreSession (a Redis Cluster's: its
// redirections and map refreshes stay in the session): a thread of its own
// runs the session, taking every read queued while it was busy as one batch
// (one round trip per master for all of them), and answers each read on its
// loop. The thread reads into copies (keys in, records out), so a read
// answered at its deadline on the loop leaves nothing the thread still
// writes to.
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

#include "features/async_reads.h"

namespace rtml::features {
namespace {

namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;

class SessionReads final : public AsyncReads {
 public:
  SessionReads(asio::io_context& io, std::unique_ptr<StoreSession> session)
      : io_(io), timer_(io), session_(std::move(session)), thread_([this] { Run(); }) {}
  ~SessionReads() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

  void Read(std::span<const ReadRequest> requests, SteadyClock::time_point deadline,
            ReadDone* done) override {
    auto item = std::make_shared<Item>();
    item->done = done;
    item->requests = requests;
    item->deadline = deadline;
    for (const ReadRequest& r : requests) {
      item->keys.emplace_back(r.entity_keys.begin(), r.entity_keys.end());
      item->views.push_back(r.view);
    }
    item->results.resize(requests.size());
    pending_.push_back(item);
    item->at = std::prev(pending_.end());
    if (deadline != SteadyClock::time_point::max()) ArmAt(deadline);
    {
      std::lock_guard lock(mu_);
      queue_.push_back(std::move(item));
    }
    cv_.notify_one();
  }

 private:
  struct Item {
    // Loop thread only:
    ReadDone* done = nullptr;
    std::span<const ReadRequest> requests;
    SteadyClock::time_point deadline;
    bool answered = false;
    std::list<std::shared_ptr<Item>>::iterator at;  // in pending_
    // Written by the reading thread before it posts the answer:
    std::vector<const FeatureView*> views;
    std::vector<std::vector<std::string>> keys;
    std::vector<std::vector<StoredRecord>> results;
    Status status;
  };

  // The reading thread: everything queued, as one read.
  void Run() {
    std::vector<std::shared_ptr<Item>> batch;
    std::vector<ReadRequest> requests;
    while (true) {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        batch.assign(queue_.begin(), queue_.end());
        queue_.clear();
      }
      requests.clear();
      auto deadline = SteadyClock::time_point::min();
      for (const auto& item : batch) {
        for (size_t i = 0; i < item->views.size(); ++i) {
          requests.push_back({item->views[i], item->keys[i], &item->results[i]});
        }
        deadline = std::max(deadline, item->deadline);  // none is cut before its own
      }
      session_->SetDeadline(deadline);
      const Status s = session_->Read(requests);
      for (auto& item : batch) {
        item->status = s;
        asio::post(io_, [this, item = std::move(item)] { Answer(*item, item->status); });
      }
      batch.clear();
    }
  }

  // On the loop: the read's records to its caller, unless its deadline
  // answered it already.
  void Answer(Item& item, const Status& s) {
    if (item.answered) return;
    item.answered = true;
    if (s.ok()) {
      for (size_t i = 0; i < item.requests.size(); ++i) *item.requests[i].out = std::move(item.results[i]);
    }
    ReadDone* done = item.done;
    pending_.erase(item.at);  // may free the item
    done->OnRead(s);
  }

  void ArmAt(SteadyClock::time_point at) {
    if (at >= timer_at_) return;
    timer_at_ = at;
    timer_.expires_at(at);
    timer_.async_wait([this](boost::system::error_code ec) {
      if (ec != asio::error::operation_aborted) OnTimer();
    });
  }

  // Answers the reads whose deadline passed; their values are dropped.
  void OnTimer() {
    timer_at_ = SteadyClock::time_point::max();
    const auto now = SteadyClock::now();
    auto next = SteadyClock::time_point::max();
    std::vector<std::shared_ptr<Item>> expired;
    for (const auto& item : pending_) {
      if (item->deadline <= now) {
        expired.push_back(item);
      } else {
        next = std::min(next, item->deadline);
      }
    }
    if (next != SteadyClock::time_point::max()) ArmAt(next);
    for (const auto& item : expired) {
      Answer(*item, Status(StatusCode::kUnavailable,
                           "the feature store had not answered when the request's deadline passed",
                           "feature_store_unavailable"));
    }
  }

  asio::io_context& io_;
  asio::steady_timer timer_;
  SteadyClock::time_point timer_at_ = SteadyClock::time_point::max();
  std::list<std::shared_ptr<Item>> pending_;  // loop thread: not answered yet
  std::unique_ptr<StoreSession> session_;     // the reading thread's
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Item>> queue_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                    // GUARDED_BY(mu_)
  std::thread thread_;                       // last: it uses the members above
};

}  // namespace

std::unique_ptr<AsyncReads> NewSessionReads(boost::asio::io_context& io,
                                            std::unique_ptr<StoreSession> session) {
  return std::make_unique<SessionReads>(io, std::move(session));
}

}  // namespace rtml::features
