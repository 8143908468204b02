#include "features/rocksdb_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <array>
#include <functional>
#include <mutex>

namespace rtml::features {
namespace {

// Writes the key into `key`, reusing its capacity.
void RecordKeyInto(const FeatureView& view, std::string_view entity, std::string* key) {
  key->assign("fv");
  key->push_back('\0');
  *key += view.name;
  key->push_back('\0');
  *key += entity;
}

std::string RecordKey(const FeatureView& view, std::string_view entity) {
  std::string key;
  RecordKeyInto(view, entity, &key);
  return key;
}

std::string MetaKey(std::string_view key) {
  std::string k = "meta";
  k.push_back('\0');
  k += key;
  return k;
}

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  return Status(StatusCode::kUnavailable, "RocksDB " + std::string(what) + ": " + s.ToString());
}

class RocksDbStore final : public OnlineStore, public StoreSession {
 public:
  explicit RocksDbStore(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}

  std::string_view backend() const override { return "rocksdb"; }
  // A session per thread: the DB is shared, the read buffers are not.
  std::unique_ptr<StoreSession> NewSession() override {
    return std::make_unique<SharedSession>(this);
  }

  Status Write(const FeatureView& view, std::span<const WriteRecord> records,
               WriteCounts* counts) override {
    for (const WriteRecord& r : records) {
      const std::string key = RecordKey(view, r.entity_key);
      std::lock_guard lock(stripes_[std::hash<std::string>{}(key) % stripes_.size()]);
      rocksdb::PinnableSlice current;
      rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), key,
                                   &current);
      if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "read before write");
      if (s.ok() && RecordTimestamp(current.ToStringView()) > r.event_ts_us) {
        ++counts->stale;
        continue;
      }
      RETURN_IF_ERROR(FromRocks(
          db_->Put(rocksdb::WriteOptions(), key, SerializeRecord(r.event_ts_us, r.values)),
          "write"));
      ++counts->written;
    }
    return Status::Ok();
  }

  // What one MultiGet needs, kept by a session so that reads allocate
  // nothing once it has grown.
  struct ReadScratch {
    std::vector<std::string> keys;
    std::vector<rocksdb::Slice> slices;
    std::vector<rocksdb::PinnableSlice> values;
    std::vector<rocksdb::Status> statuses;
  };

  Status Read(std::span<const ReadRequest> requests) override {
    ReadScratch scratch;
    return Read(requests, &scratch);
  }

  Status Read(std::span<const ReadRequest> requests, ReadScratch* s) {
    size_t n = 0;
    for (const ReadRequest& req : requests) n += req.entity_keys.size();
    if (s->keys.size() < n) s->keys.resize(n);
    s->slices.clear();
    for (const ReadRequest& req : requests) {
      for (const std::string& e : req.entity_keys) {
        std::string& key = s->keys[s->slices.size()];
        RecordKeyInto(*req.view, e, &key);
        s->slices.emplace_back(key);
      }
    }
    s->values.clear();  // releases the previous read's pinned blocks
    s->values.resize(n);
    s->statuses.assign(n, rocksdb::Status());
    db_->MultiGet(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), n, s->slices.data(),
                  s->values.data(), s->statuses.data());
    size_t k = 0;
    Status result = Status::Ok();
    for (const ReadRequest& req : requests) {
      req.out->resize(req.entity_keys.size());
      for (size_t i = 0; i < req.entity_keys.size(); ++i, ++k) {
        StoredRecord& record = (*req.out)[i];
        record.found = false;
        record.event_ts_us = 0;
        record.values.clear();
        if (s->statuses[k].IsNotFound() || !result.ok()) continue;
        result = FromRocks(s->statuses[k], "read");
        if (result.ok() && !ParseRecord(s->values[k].ToStringView(), &record)) {
          result = Internal("corrupt record for " + req.view->name + " in RocksDB");
        }
      }
    }
    s->values.clear();  // no block stays pinned between reads
    return result;
  }

  // One WriteBatch: RocksDB applies it atomically (and it survives a crash
  // of the process as a whole or not at all).
  Status WriteState(const FeatureView& view, std::span<const WriteRecord> records,
                    std::span<const std::pair<std::string, std::string>> meta) override {
    rocksdb::WriteBatch batch;
    for (const WriteRecord& r : records) {
      RETURN_IF_ERROR(FromRocks(batch.Put(RecordKey(view, r.entity_key),
                                          SerializeRecord(r.event_ts_us, r.values)),
                                "batch"));
    }
    for (const auto& [k, v] : meta) RETURN_IF_ERROR(FromRocks(batch.Put(MetaKey(k), v), "batch"));
    return FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "write state");
  }

  Status PutMeta(std::string_view key, std::string_view value) override {
    return FromRocks(db_->Put(rocksdb::WriteOptions(), MetaKey(key), value), "write metadata");
  }

  Result<std::optional<std::string>> GetMeta(std::string_view key) override {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), MetaKey(key), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    RETURN_IF_ERROR(FromRocks(s, "read metadata"));
    return std::optional<std::string>(std::move(value));
  }

 private:
  // Forwards to the store (the DB is thread-safe), with reusable read buffers.
  class SharedSession final : public StoreSession {
   public:
    explicit SharedSession(RocksDbStore* s) : s_(s) {}
    Status Write(const FeatureView& v, std::span<const WriteRecord> r, WriteCounts* c) override {
      return s_->Write(v, r, c);
    }
    Status Read(std::span<const ReadRequest> r) override { return s_->Read(r, &scratch_); }
    Status WriteState(const FeatureView& v, std::span<const WriteRecord> r,
                      std::span<const std::pair<std::string, std::string>> m) override {
      return s_->WriteState(v, r, m);
    }
    Status PutMeta(std::string_view k, std::string_view v) override { return s_->PutMeta(k, v); }
    Result<std::optional<std::string>> GetMeta(std::string_view k) override {
      return s_->GetMeta(k);
    }

   private:
    RocksDbStore* s_;
    ReadScratch scratch_;
  };

  std::unique_ptr<rocksdb::DB> db_;
  std::array<std::mutex, 64> stripes_;
};

}  // namespace

Result<std::unique_ptr<OnlineStore>> OpenRocksDbStore(const RocksDbOptions& options) {
  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.IncreaseParallelism(2);
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(opts, options.path, &raw);
  if (!s.ok()) {
    std::string hint;
    if (s.ToString().find("lock") != std::string::npos) {
      hint = " (another process, e.g. a running `rtml serve`, has it open: stop it, or write "
             "through that server's POST /push)";
    }
    return Status(StatusCode::kUnavailable,
                  "cannot open the RocksDB feature store at '" + options.path + "': " +
                      s.ToString() + hint);
  }
  return std::unique_ptr<OnlineStore>(new RocksDbStore(std::unique_ptr<rocksdb::DB>(raw)));
}

}  // namespace rtml::features
