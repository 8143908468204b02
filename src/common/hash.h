// Small, stable (across runs and machines) string hashing: FNV-1a, 64-bit.
// Used where a hash is stored or must agree between processes (definition
// version hashes, traffic-split keys, distinct-count tokens), so never
// std::hash, which may change between library versions.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string_view>

namespace rtml {

inline uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace rtml
