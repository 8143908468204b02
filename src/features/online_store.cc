#include "features/online_store.h"

#include <charconv>
#include <cstring>
#include <map>
#include <mutex>

#include "common/bytes.h"
#include "features/async_reads.h"

namespace rtml::features {

OnlineStore::~OnlineStore() = default;

std::unique_ptr<AsyncReads> OnlineStore::NewAsyncReads(boost::asio::io_context&) { return nullptr; }


std::string EncodeFloat(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

std::string_view FloatSuffix(std::string_view encoded) {
  return encoded.find_first_of(".eEni") == std::string_view::npos ? ".0" : "";
}

std::string EncodeInt(int64_t v) { return std::to_string(v); }
std::string EncodeBool(bool v) { return v ? "1" : "0"; }

std::string EntityKeyOf(std::span<const std::string> join_values) {
  std::string key;
  for (size_t i = 0; i < join_values.size(); ++i) {
    if (i > 0) key.push_back('\x1f');
    key += join_values[i];
  }
  return key;
}


std::string SerializeRecord(int64_t event_ts_us, std::span<const EncodedValue> values) {
  std::string out;
  PutRaw<int64_t>(&out, event_ts_us);
  PutRaw<uint16_t>(&out, static_cast<uint16_t>(values.size()));
  for (const EncodedValue& v : values) {
    PutRaw<uint8_t>(&out, v.has_value());
    PutRaw<uint32_t>(&out, v ? static_cast<uint32_t>(v->size()) : 0);
    if (v) out += *v;
  }
  return out;
}

bool ParseRecord(std::string_view in, StoredRecord* out) {
  uint16_t n = 0;
  if (!TakeRaw(&in, &out->event_ts_us) || !TakeRaw(&in, &n)) return false;
  out->values.assign(n, std::nullopt);
  for (uint16_t i = 0; i < n; ++i) {
    uint8_t present = 0;
    uint32_t len = 0;
    if (!TakeRaw(&in, &present) || !TakeRaw(&in, &len) || in.size() < len) return false;
    if (present) out->values[i] = std::string(in.substr(0, len));
    in.remove_prefix(len);
  }
  out->found = true;
  return true;
}

int64_t RecordTimestamp(std::string_view bytes) {
  int64_t ts = 0;
  return TakeRaw(&bytes, &ts) ? ts : 0;
}

namespace {

class MemoryStore;

class MemorySession final : public StoreSession {
 public:
  explicit MemorySession(MemoryStore* store) : store_(store) {}
  Status Write(const FeatureView& view, std::span<const WriteRecord> records,
               WriteCounts* counts) override;
  Status Read(std::span<const ReadRequest> requests) override;
  Status WriteState(const FeatureView& view, std::span<const WriteRecord> records,
                    std::span<const std::pair<std::string, std::string>> meta) override;
  Status PutMeta(std::string_view key, std::string_view value) override;
  Result<std::optional<std::string>> GetMeta(std::string_view key) override;

 private:
  MemoryStore* store_;
};

class MemoryStore final : public OnlineStore {
 public:
  std::string_view backend() const override { return "memory"; }
  std::unique_ptr<StoreSession> NewSession() override {
    return std::make_unique<MemorySession>(this);
  }

  std::mutex mu;
  std::map<std::string, std::string, std::less<>> data;  // GUARDED_BY(mu)
};

std::string MemoryKey(const FeatureView& view, std::string_view entity) {
  return view.name + '\0' + std::string(entity);
}

Status MemorySession::Write(const FeatureView& view, std::span<const WriteRecord> records,
                            WriteCounts* counts) {
  std::lock_guard lock(store_->mu);
  for (const WriteRecord& r : records) {
    std::string& slot = store_->data[MemoryKey(view, r.entity_key)];
    if (!slot.empty() && RecordTimestamp(slot) > r.event_ts_us) {
      ++counts->stale;
      continue;
    }
    slot = SerializeRecord(r.event_ts_us, r.values);
    ++counts->written;
  }
  return Status::Ok();
}

Status MemorySession::Read(std::span<const ReadRequest> requests) {
  std::lock_guard lock(store_->mu);
  for (const ReadRequest& req : requests) {
    req.out->assign(req.entity_keys.size(), StoredRecord{});
    for (size_t i = 0; i < req.entity_keys.size(); ++i) {
      auto it = store_->data.find(MemoryKey(*req.view, req.entity_keys[i]));
      if (it != store_->data.end() && !ParseRecord(it->second, &(*req.out)[i])) {
        return Internal("corrupt record in memory store");
      }
    }
  }
  return Status::Ok();
}

Status MemorySession::WriteState(const FeatureView& view, std::span<const WriteRecord> records,
                                 std::span<const std::pair<std::string, std::string>> meta) {
  std::lock_guard lock(store_->mu);
  for (const WriteRecord& r : records) {
    store_->data[MemoryKey(view, r.entity_key)] = SerializeRecord(r.event_ts_us, r.values);
  }
  for (const auto& [k, v] : meta) store_->data["\x01meta\x01" + k] = v;
  return Status::Ok();
}

Status MemorySession::PutMeta(std::string_view key, std::string_view value) {
  std::lock_guard lock(store_->mu);
  store_->data["\x01meta\x01" + std::string(key)] = std::string(value);
  return Status::Ok();
}

Result<std::optional<std::string>> MemorySession::GetMeta(std::string_view key) {
  std::lock_guard lock(store_->mu);
  auto it = store_->data.find("\x01meta\x01" + std::string(key));
  if (it == store_->data.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

}  // namespace

std::unique_ptr<OnlineStore> NewMemoryStore() { return std::make_unique<MemoryStore>(); }

}  // namespace rtml::features
