// RocksDB backend: the embedded, persistent default online store.
// Key: "fv" 0x00 <view> 0x00 <entity key>; value: SerializeRecord(). Metadata
// under "meta" 0x00 <key>. Reads use MultiGet with PinnableSlice; writes
// are read-compare-write under a striped lock (last-writer-wins), so one
// process owns the folder (RocksDB's own LOCK file enforces it).
// Thread-safety: the store and its sessions may be used from any threads.
#pragma once

#include <memory>
#include <string>

#include "features/online_store.h"

namespace rtml::features {

struct RocksDbOptions {
  std::string path;
  size_t block_cache_bytes = 64 << 20;
};

Result<std::unique_ptr<OnlineStore>> OpenRocksDbStore(const RocksDbOptions& options);

}  // namespace rtml::features
