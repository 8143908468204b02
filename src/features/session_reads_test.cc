// AsyncReads over a synchronous session, with a session the test holds up.
#include <utility>  // before Boost (Asio under g++ 12 in C++20 mode)

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "features/async_reads.h"

namespace rtml::features {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Answers every key with a record whose timestamp is the key's number;
// holds its first Read until released; can be told to fail.
class HeldSession final : public StoreSession {
 public:
  Status Read(std::span<const ReadRequest> requests) override {
    std::unique_lock lock(mu_);
    calls_.push_back(0);
    for (const ReadRequest& r : requests) calls_.back() += r.entity_keys.size();
    inside_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
    for (const ReadRequest& r : requests) {
      r.out->assign(r.entity_keys.size(), StoredRecord{});
      for (size_t i = 0; i < r.entity_keys.size(); ++i) {
        (*r.out)[i].found = true;
        (*r.out)[i].event_ts_us = std::stoll(r.entity_keys[i]);
      }
    }
    return fail_ ? Status(StatusCode::kUnavailable, "down", "feature_store_unavailable")
                 : Status::Ok();
  }
  void WaitInside() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return inside_; });
  }
  void Release(bool fail = false) {
    std::lock_guard lock(mu_);
    released_ = true;
    fail_ = fail;
    cv_.notify_all();
  }
  std::vector<size_t> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  Status Write(const FeatureView&, std::span<const WriteRecord>, WriteCounts*) override {
    return Status::Ok();
  }
  Status WriteState(const FeatureView&, std::span<const WriteRecord>,
                    std::span<const std::pair<std::string, std::string>>) override {
    return Status::Ok();
  }
  Status PutMeta(std::string_view, std::string_view) override { return Status::Ok(); }
  Result<std::optional<std::string>> GetMeta(std::string_view) override {
    return std::optional<std::string>();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<size_t> calls_;
  bool inside_ = false, released_ = false, fail_ = false;
};

struct Read final : ReadDone {
  std::vector<std::string> keys;
  std::vector<StoredRecord> out;
  std::vector<ReadRequest> requests;
  std::optional<Status> status;
  SteadyClock::time_point answered;
  void OnRead(Status s) override {
    EXPECT_FALSE(status) << "answered twice";
    status = std::move(s);
    answered = SteadyClock::now();
  }
};

class SessionReadsTest : public ::testing::Test {
 protected:
  void TearDown() override { session_->Release(); }  // never leave its thread held
  std::unique_ptr<Read> Start(std::vector<std::string> keys,
                              SteadyClock::time_point deadline = SteadyClock::time_point::max()) {
    auto r = std::make_unique<Read>();
    r->keys = std::move(keys);
    r->requests = {{&view_, r->keys, &r->out}};
    reads_->Read(r->requests, deadline, r.get());
    EXPECT_FALSE(r->status) << "answered within Read()";
    return r;
  }
  void RunUntil(const std::vector<Read*>& reads) {
    const auto give_up = SteadyClock::now() + std::chrono::seconds(10);
    auto all = [&] {
      for (Read* r : reads) {
        if (!r->status) return false;
      }
      return true;
    };
    while (!all() && SteadyClock::now() < give_up) {
      io_.restart();
      io_.run_one_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(all()) << "reads not answered in 10 s";
  }

  FeatureView view_{.name = "v"};
  boost::asio::io_context io_;
  HeldSession* session_ = new HeldSession;
  std::unique_ptr<AsyncReads> reads_ =
      NewSessionReads(io_, std::unique_ptr<StoreSession>(session_));
};

TEST_F(SessionReadsTest, ReadsQueuedWhileItIsBusyGoInOneBatch) {
  auto first = Start({"1"});
  session_->WaitInside();
  auto second = Start({"2", "3"});
  auto third = Start({"4"});
  session_->Release();
  RunUntil({first.get(), second.get(), third.get()});
  EXPECT_EQ(session_->calls(), (std::vector<size_t>{1, 3}));
  for (Read* r : {first.get(), second.get(), third.get()}) {
    ASSERT_TRUE(r->status->ok()) << r->status->ToString();
    ASSERT_EQ(r->out.size(), r->keys.size());
    for (size_t i = 0; i < r->keys.size(); ++i) {
      EXPECT_EQ(r->out[i].event_ts_us, std::stoll(r->keys[i]));  // its own entity's record
    }
  }
}

TEST_F(SessionReadsTest, ADeadlineAnswersAtItsTimeAndWhatComesLaterIsDropped) {
  const auto t0 = SteadyClock::now();
  auto cut = Start({"7"}, t0 + std::chrono::milliseconds(30));
  auto waits = Start({"8"});
  RunUntil({cut.get()});
  const double ms = std::chrono::duration<double, std::milli>(cut->answered - t0).count();
  EXPECT_EQ(cut->status->reason(), "feature_store_unavailable");
  EXPECT_NE(cut->status->message().find("deadline"), std::string::npos);
  EXPECT_GE(ms, 30);
  EXPECT_LT(ms, 60);
  EXPECT_FALSE(waits->status);
  cut->out.assign(1, StoredRecord{.event_ts_us = -1});  // the caller reuses its buffers
  session_->Release();
  RunUntil({waits.get()});
  ASSERT_TRUE(waits->status->ok());
  EXPECT_EQ(waits->out[0].event_ts_us, 8);
  EXPECT_EQ(cut->out[0].event_ts_us, -1) << "a read answered at its deadline was written later";
}

TEST_F(SessionReadsTest, AFailedReadFailsEveryReadOfItsBatch) {
  auto first = Start({"1"});
  session_->WaitInside();
  auto second = Start({"2"});
  session_->Release(/*fail=*/true);
  RunUntil({first.get(), second.get()});
  EXPECT_EQ(first->status->reason(), "feature_store_unavailable");
  EXPECT_EQ(second->status->reason(), "feature_store_unavailable");
}

}  // namespace
}  // namespace rtml::features
