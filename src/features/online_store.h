// OnlineStore: the low-latency store of the latest feature values per entity,
// behind one interface with three backends: RocksDB in a local folder (the
// embedded default), Redis (shared by replicas; hiredis, pipelined) and memory
// (unit tests).
//
// A record is one entity's values for one feature view plus the event
// timestamp they were observed at. Writes are last-writer-wins by event time:
// a record older than the stored one is skipped, never applied. Values travel
// encoded as text (EncodeValue) so every backend stores them the same way;
// an absent value is null.
//
// Thread-safety: an OnlineStore may be shared; each thread takes its own
// StoreSession (Redis needs a connection per thread) and uses it alone.
// Key layout per backend: docs/operations.md ("Feature store").
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "features/definitions.h"

namespace boost::asio {
class io_context;
}

namespace rtml::features {

class AsyncReads;  // async_reads.h
using EncodedValue = std::optional<std::string>;  // nullopt: null

struct WriteRecord {
  std::string entity_key;  // EntityKeyOf()
  int64_t event_ts_us = 0;
  std::vector<EncodedValue> values;  // one per view feature, in view order
};

struct StoredRecord {
  bool found = false;
  int64_t event_ts_us = 0;
  std::vector<EncodedValue> values;  // one per view feature, in view order
};

// Reads of one view for many entities; `out` is filled by Read().
struct ReadRequest {
  const FeatureView* view = nullptr;
  std::span<const std::string> entity_keys;
  std::vector<StoredRecord>* out = nullptr;
};

struct WriteCounts {
  size_t written = 0;
  size_t stale = 0;  // older than what the store holds: skipped
};

class StoreSession {
 public:
  virtual ~StoreSession() = default;
  // Writes records last-writer-wins; adds to *counts.
  virtual Status Write(const FeatureView& view, std::span<const WriteRecord> records,
                       WriteCounts* counts) = 0;
  // Answers every request, in one round trip where the backend has trips.
  virtual Status Read(std::span<const ReadRequest> requests) = 0;
  // The next Read() gives up at `deadline` (a request's; max(): none) when
  // that is sooner than the backend's own timeout, failing Unavailable
  // without holding the dependency responsible. For backends with no
  // network trip (memory, RocksDB) there is nothing to cut.
  virtual void SetDeadline(std::chrono::steady_clock::time_point deadline) {}
  // Replaces `records` (not last-writer-wins: each entity's state has one
  // writer, the replica owning its partition) and sets the `meta` keys, in
  // one atomic write: all of it lands or none does. For stream feature views:
  // entity states and the partition offsets they include.
  virtual Status WriteState(const FeatureView& view, std::span<const WriteRecord> records,
                            std::span<const std::pair<std::string, std::string>> meta) = 0;
  // Small metadata (the registry, materialization watermarks).
  virtual Status PutMeta(std::string_view key, std::string_view value) = 0;
  virtual Result<std::optional<std::string>> GetMeta(std::string_view key) = 0;
};

class OnlineStore {
 public:
  virtual ~OnlineStore();
  virtual std::string_view backend() const = 0;
  virtual std::unique_ptr<StoreSession> NewSession() = 0;
  // Reads issued from the event loop `io` runs, without blocking it
  // (async_reads.h); null for backends whose reads are local (a session's
  // Read is then used, on the loop).
  virtual std::unique_ptr<AsyncReads> NewAsyncReads(boost::asio::io_context& io);
};

// Memory backend, for unit tests.
std::unique_ptr<OnlineStore> NewMemoryStore();

// Text encoding of values, shared by all backends.
std::string EncodeFloat(double v);
std::string EncodeInt(int64_t v);
std::string EncodeBool(bool v);
// The suffix that makes an encoded float read as a float: ".0" when the
// shortest form is whole ("3000"), else empty. Every read path writes
// encoded + FloatSuffix(encoded), so clients that type values by their JSON
// or CSV token (Feast's SDK, pandas) see a float column.
std::string_view FloatSuffix(std::string_view encoded);

// The storage key of an entity: its join key values joined by '\x1f'.
std::string EntityKeyOf(std::span<const std::string> join_values);

// Serializes a record for byte-oriented backends (RocksDB, memory):
// [ts int64 LE][n u16] then per value [present u8][len u32 LE][bytes].
std::string SerializeRecord(int64_t event_ts_us, std::span<const EncodedValue> values);
// REQUIRES: bytes came from SerializeRecord. Returns false when malformed.
bool ParseRecord(std::string_view bytes, StoredRecord* out);
// Only the timestamp of a serialized record (0 when malformed).
int64_t RecordTimestamp(std::string_view bytes);

}  // namespace rtml::features
