// The Redis store's session on a Redis Cluster (redis_store.h): commands
// routed by their key's slot, pipelined per master, redirections followed.
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <thread>
#include <utility>

#include "features/redis_cluster.h"
#include "features/redis_connection.h"

namespace rtml::features::redis {
namespace {

using redis_cluster::Node;
using redis_cluster::Redirect;
using redis_cluster::SlotMap;
using SteadyClock = std::chrono::steady_clock;

// Rounds of redirection (MOVED, ASK, a master failing over) one batch may
// take before it gives up: each re-reads the map, and a failover settles
// within the cluster's node timeout.
constexpr int kMaxRounds = 5;

class ClusterSession final : public StoreSession {
 public:
  ClusterSession(const RedisOptions& o, const Clock& clock) : o_(o), clock_(clock) {}

  Status Write(const FeatureView& view, std::span<const WriteRecord> records,
               WriteCounts* counts) override {
    keys_.clear();
    for (const WriteRecord& r : records) keys_.push_back(Key(o_, view, r.entity_key));
    return Run(
        records.size(), [&](size_t i, Connection& c) { c.AppendArgs(WriteCommand(o_, view, records[i])); },
        [&](size_t, Connection& c, const redisReply* r) -> Status {
          if (r->type != REDIS_REPLY_INTEGER) return c.Fail("unexpected reply to a write");
          ++(r->integer == 1 ? counts->written : counts->stale);
          return Status::Ok();
        });
  }

  Status Read(std::span<const ReadRequest> requests) override {
    // Flatten (request, entity) pairs; keys route them.
    keys_.clear();
    items_.clear();
    for (size_t q = 0; q < requests.size(); ++q) {
      requests[q].out->assign(requests[q].entity_keys.size(), StoredRecord{});
      for (size_t e = 0; e < requests[q].entity_keys.size(); ++e) {
        keys_.push_back(Key(o_, *requests[q].view, requests[q].entity_keys[e]));
        items_.emplace_back(q, e);
      }
    }
    return Run(
        keys_.size(),
        [&](size_t i, Connection& c) {
          const auto [q, e] = items_[i];
          read_.Append(c, o_, *requests[q].view, requests[q].entity_keys[e]);
        },
        [&](size_t i, Connection& c, const redisReply* r) {
          const auto [q, e] = items_[i];
          return DecodeRead(c, r, requests[q].view->features.size(), &(*requests[q].out)[e]);
        });
  }

  void SetDeadline(SteadyClock::time_point deadline) override { deadline_ = deadline; }

  Status WriteState(const FeatureView& view, std::span<const WriteRecord>,
                    std::span<const std::pair<std::string, std::string>>) override {
    return FailedPrecondition(
        "stream feature view '" + view.name +
        "' cannot keep its state on a Redis Cluster: its entity states and partition offsets "
        "are written in one transaction, which a cluster allows within one hash slot only; use "
        "features.store: rocksdb, or a single Redis (features.redis.host)");
  }

  Status PutMeta(std::string_view key, std::string_view value) override {
    keys_.assign({MetaKey(o_, key)});
    return Run(
        1, [&](size_t, Connection& c) { c.AppendArgs({"SET", keys_[0], std::string(value)}); },
        [&](size_t, Connection&, const redisReply*) { return Status::Ok(); });
  }

  Result<std::optional<std::string>> GetMeta(std::string_view key) override {
    keys_.assign({MetaKey(o_, key)});
    std::optional<std::string> value;
    RETURN_IF_ERROR(Run(
        1, [&](size_t, Connection& c) { c.AppendArgs({"GET", keys_[0]}); },
        [&](size_t, Connection&, const redisReply* r) {
          if (r->type == REDIS_REPLY_STRING) value = std::string(r->str, r->len);
          return Status::Ok();
        }));
    return value;
  }

 private:
  // Runs n single-key commands (keys_[i] the key of command i): each sent to
  // the master its slot lives on, all of a master's in one pipeline, every
  // master's sent before any reply is read; redirected ones go round again,
  // on the node a MOVED names (after re-reading the map) or, after ASKING,
  // the one an ASK names. `append(i, c)` sends command i on c, `reply(i, c, r)`
  // takes its answer.
  template <typename Append, typename OnReply>
  Status Run(size_t n, Append append, OnReply reply) {
    const auto deadline = std::exchange(deadline_, SteadyClock::time_point::max());
    pending_.resize(n);
    for (size_t i = 0; i < n; ++i) pending_[i] = i;
    redirect_.clear();
    Status last = Status::Ok();
    bool refreshed = false;  // in this call
    for (int round = 0; round < kMaxRounds && !pending_.empty(); ++round) {
      if (SteadyClock::now() >= deadline) return DeadlinePassed();
      if (!map_ || refresh_) {
        Status s = Refresh(deadline);
        refreshed = true;
        if (!s.ok() && !map_) return s;
      }
      if (round > 0 && retry_later_) Pause(round);
      retry_later_ = false;
      // Group by the connection each command goes to.
      std::map<Connection*, std::vector<size_t>> by_node;
      int unserved = -1;
      for (size_t i : pending_) {
        const auto to = redirect_.find(i);
        const int slot = redis_cluster::KeySlot(keys_[i]);
        const int owner = map_->NodeFor(slot);
        if (to == redirect_.end() && owner < 0) {
          unserved = slot;
          break;
        }
        by_node[&NodeConnection(to != redirect_.end() ? to->second.node : map_->nodes()[owner])]
            .push_back(i);
      }
      if (unserved >= 0) {
        refresh_ = true;  // a replica may be taking over: ask again, now or next time
        if (!refreshed) continue;
        return Status(StatusCode::kUnavailable,
                      "Redis Cluster: no master serves slot " + std::to_string(unserved) +
                          " (the cluster is down for it, or failing over)",
                      "feature_store_unavailable");
      }
      next_.clear();
      fatal_ = Status::Ok();
      sent_.clear();
      for (auto& [conn, ops] : by_node) {
        if (Send(*conn, ops, deadline, append, &last)) sent_.push_back({conn, &ops});
      }
      for (size_t n = 0; n < sent_.size(); ++n) {
        Status s = Receive(*sent_[n].first, *sent_[n].second, deadline, reply);
        if (!fatal_.ok()) {  // an answer that is not a redirection: the batch stops
          for (size_t m = n + 1; m < sent_.size(); ++m) {
            sent_[m].first->set_cut_by_deadline(false);
            sent_[m].first->Drop();  // its replies are unread
          }
          return fatal_;
        }
        if (!s.ok()) last = s;  // a node not answering: the next round re-routes
      }
      pending_.swap(next_);
    }
    if (pending_.empty()) return Status::Ok();
    if (!last.ok()) return last;
    return Status(StatusCode::kUnavailable,
                  "Redis Cluster: " + std::to_string(pending_.size()) + " command(s) still " +
                      "redirected after " + std::to_string(kMaxRounds) + " rounds",
                  "feature_store_unavailable");
  }

  // One node's share of a round, sent: its commands pipelined and written
  // out (every node's before any reply is read, so their round trips
  // overlap). False when the node could not take them (they go to next_).
  template <typename Append>
  bool Send(Connection& c, const std::vector<size_t>& ops, SteadyClock::time_point deadline,
            Append& append, Status* last) {
    const auto requeue = [&] { next_.insert(next_.end(), ops.begin(), ops.end()); };
    if (Status s = c.Ready(); !s.ok()) {
      requeue();
      refresh_ = true;  // a master gone: a replica may be taking over
      *last = s;
      return false;
    }
    if (deadline != SteadyClock::time_point::max()) {
      const auto left =
          std::chrono::duration_cast<std::chrono::microseconds>(deadline - SteadyClock::now());
      if (left.count() <= 0) {
        requeue();
        *last = DeadlinePassed();
        return false;
      }
      CutTo(c, left);
    }
    for (size_t i : ops) {
      const auto to = redirect_.find(i);
      if (to != redirect_.end() && to->second.asking) c.AppendArgs({"ASKING"});
      append(i, c);
    }
    if (Status s = c.Flush(); !s.ok()) {
      c.set_cut_by_deadline(false);
      requeue();
      refresh_ = true;
      *last = s;
      return false;
    }
    return true;
  }

  // The replies of what Send() sent to c. What was not answered (the node
  // failed, or redirected it) goes to next_; an answer that is neither a
  // reply nor a redirection sets fatal_.
  template <typename OnReply>
  Status Receive(Connection& c, const std::vector<size_t>& ops, SteadyClock::time_point deadline,
                 OnReply& reply) {
    if (deadline != SteadyClock::time_point::max()) {
      // The time left now, not when it was sent: earlier nodes' replies
      // were read meanwhile.
      const auto left =
          std::chrono::duration_cast<std::chrono::microseconds>(deadline - SteadyClock::now());
      if (left.count() <= 0) {
        c.set_cut_by_deadline(false);
        c.Drop();  // its replies are unread
        next_.insert(next_.end(), ops.begin(), ops.end());
        return DeadlinePassed();
      }
      CutTo(c, left);
    }
    Status failed = Status::Ok();
    size_t k = 0;
    for (; k < ops.size(); ++k) {
      const size_t i = ops[k];
      const auto to = redirect_.find(i);
      const bool asking = to != redirect_.end() && to->second.asking;
      if (to != redirect_.end()) redirect_.erase(to);
      if (asking) {  // the ASKING's +OK first
        auto ok = c.NextReply();
        if (!ok.ok()) {
          failed = ok.status();
          break;
        }
      }
      auto r = c.NextReply(/*errors_as_replies=*/true);
      if (!r.ok()) {
        failed = r.status();
        break;
      }
      if ((*r)->type == REDIS_REPLY_ERROR) {
        const std::string_view error((*r)->str, (*r)->len);
        if (auto redirect = redis_cluster::ParseRedirect(error)) {
          if (redirect->node.host.empty()) redirect->node.host = c.host();
          const bool asking = redirect->kind == Redirect::Kind::kAsk;
          // MOVED: there from now on (the map is re-read too, but the node
          // asked may know before the others); ASK: there, this once.
          redirect_[i] = {redirect->node, asking};
          if (!asking) refresh_ = true;
          next_.push_back(i);
          continue;
        }
        // A slot in the middle of a migration or a failover: again, shortly.
        // (A script sent after ASKING fails on Redis 7.0 with "non local
        // key": it goes round until the slot has moved, and MOVED follows.)
        if (error.starts_with("TRYAGAIN") || error.starts_with("CLUSTERDOWN") ||
            error.find("non local key") != std::string_view::npos) {
          refresh_ = true;
          retry_later_ = true;
          next_.push_back(i);
          continue;
        }
        c.set_cut_by_deadline(false);
        fatal_ = c.ErrorReply(error);  // the rest of its pipeline is unread
        return fatal_;
      }
      if (Status s = reply(i, c, r->get()); !s.ok()) {
        fatal_ = s;
        c.set_cut_by_deadline(false);
        c.Drop();
        return fatal_;
      }
    }
    c.set_cut_by_deadline(false);
    if (!failed.ok()) {
      c.Drop();  // whatever it still had to say is unread (Fail dropped it already if it failed)
      next_.insert(next_.end(), ops.begin() + static_cast<std::ptrdiff_t>(k), ops.end());
      refresh_ = true;
      if (deadline != SteadyClock::time_point::max() && SteadyClock::now() >= deadline) {
        return DeadlinePassed();
      }
      return failed;
    }
    c.ResetTimeout();
    c.RecordSuccess();
    return Status::Ok();
  }

  // A socket timeout cut to a request's time left, when that is the
  // shorter (then a timeout is the request's, not the node's).
  void CutTo(Connection& c, std::chrono::microseconds left) {
    const bool cut = left < std::chrono::milliseconds(o_.timeout_ms);
    c.SetTimeout(cut ? left : std::chrono::milliseconds(o_.timeout_ms));
    c.set_cut_by_deadline(cut);
  }

  // Before a round that repeats commands a node asked to try again: 1, 2, 3
  // and 4 ms, 10 ms in all at most (a slot's keys move in a few).
  static void Pause(int round) { std::this_thread::sleep_for(std::chrono::milliseconds(round)); }

  // Re-reads the slot map from the masters it knows, then the seeds, each
  // asked once, within the deadline.
  Status Refresh(SteadyClock::time_point deadline) {
    std::vector<Node> candidates;
    if (map_) candidates = map_->nodes();
    for (const std::string& seed : o_.cluster_nodes) {
      auto n = redis_cluster::ParseNode(seed);
      if (n && std::find(candidates.begin(), candidates.end(), *n) == candidates.end()) {
        candidates.push_back(*n);
      }
    }
    Status last = Status(StatusCode::kUnavailable, "Redis Cluster: no seed node to ask",
                         "feature_store_unavailable");
    for (const Node& n : candidates) {
      if (SteadyClock::now() >= deadline) return DeadlinePassed();
      Connection& c = NodeConnection(n);
      if (Status s = c.Ready(); !s.ok()) {
        last = s;
        continue;
      }
      if (deadline != SteadyClock::time_point::max()) {
        CutTo(c, std::chrono::duration_cast<std::chrono::microseconds>(deadline - SteadyClock::now()));
      }
      c.AppendArgs({"CLUSTER", "NODES"});
      auto r = c.NextReply();
      c.set_cut_by_deadline(false);
      if (c.connected()) c.ResetTimeout();
      if (!r.ok()) {
        last = r.status();
        continue;
      }
      if ((*r)->type != REDIS_REPLY_STRING) {
        last = c.Fail("unexpected reply to CLUSTER NODES");
        continue;
      }
      auto map = SlotMap::FromClusterNodes(std::string_view((*r)->str, (*r)->len));
      if (!map.ok()) {
        last = Status(StatusCode::kUnavailable, "Redis at " + c.address() + ": " + map.status().message(),
                      "feature_store_unavailable");
        continue;
      }
      c.RecordSuccess();
      map_ = std::move(*map);
      refresh_ = false;
      return Status::Ok();
    }
    return last;
  }

  Connection& NodeConnection(const Node& n) {
    auto& c = conns_[n.Address()];
    if (!c) c = std::make_unique<Connection>(o_, n.host, n.port, clock_);
    return *c;
  }

  Status DeadlinePassed() const {
    return Status(StatusCode::kUnavailable,
                  "the request's deadline passed before the Redis Cluster answered",
                  "feature_store_unavailable");
  }

  const RedisOptions& o_;
  const Clock& clock_;
  std::optional<SlotMap> map_;
  bool refresh_ = false;
  Status fatal_ = Status::Ok();  // of the running round: stops the batch
  bool retry_later_ = false;     // a node said TRYAGAIN (or alike) in the last round
  std::map<std::string, std::unique_ptr<Connection>> conns_;  // by host:port
  SteadyClock::time_point deadline_ = SteadyClock::time_point::max();
  ReadCommand read_;
  // Per call, kept for their capacity.
  std::vector<std::string> keys_;
  std::vector<std::pair<size_t, size_t>> items_;
  std::vector<size_t> pending_, next_;
  std::vector<std::pair<Connection*, const std::vector<size_t>*>> sent_;
  struct Redirected {
    Node node;
    bool asking = false;  // ASK: send ASKING first
  };
  std::map<size_t, Redirected> redirect_;  // commands sent where a node said, next round
};

}  // namespace

std::unique_ptr<StoreSession> NewClusterSession(const RedisOptions& o, const Clock& clock) {
  return std::make_unique<ClusterSession>(o, clock);
}

}  // namespace rtml::features::redis
