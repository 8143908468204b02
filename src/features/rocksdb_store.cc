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

std::string RecordKey(const FeatureView& view, std::string_view entity) {
  std::string key = "fv";
  key.push_back('\0');
  key += view.name;
  key.push_back('\0');
  key += entity;
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
  // The DB is thread-safe; every thread may share this one session object.
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

  Status Read(std::span<const ReadRequest> requests) override {
    std::vector<std::string> keys;
    for (const ReadRequest& req : requests) {
      for (const std::string& e : req.entity_keys) keys.push_back(RecordKey(*req.view, e));
    }
    std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
    std::vector<rocksdb::PinnableSlice> values(keys.size());
    std::vector<rocksdb::Status> statuses(keys.size());
    db_->MultiGet(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), keys.size(), slices.data(),
                  values.data(), statuses.data());
    size_t k = 0;
    for (const ReadRequest& req : requests) {
      req.out->assign(req.entity_keys.size(), StoredRecord{});
      for (size_t i = 0; i < req.entity_keys.size(); ++i, ++k) {
        if (statuses[k].IsNotFound()) continue;
        RETURN_IF_ERROR(FromRocks(statuses[k], "read"));
        if (!ParseRecord(values[k].ToStringView(), &(*req.out)[i])) {
          return Internal("corrupt record for " + req.view->name + " in RocksDB");
        }
      }
    }
    return Status::Ok();
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
  // Forwards to the store: sessions are free for RocksDB.
  class SharedSession final : public StoreSession {
   public:
    explicit SharedSession(RocksDbStore* s) : s_(s) {}
    Status Write(const FeatureView& v, std::span<const WriteRecord> r, WriteCounts* c) override {
      return s_->Write(v, r, c);
    }
    Status Read(std::span<const ReadRequest> r) override { return s_->Read(r); }
    Status PutMeta(std::string_view k, std::string_view v) override { return s_->PutMeta(k, v); }
    Result<std::optional<std::string>> GetMeta(std::string_view k) override {
      return s_->GetMeta(k);
    }

   private:
    RocksDbStore* s_;
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
