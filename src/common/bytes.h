// Fixed-size values as raw bytes (the machine's byte order), for the compact
// records rtml keeps in its own stores (RocksDB values, aggregation state).
// Thread-safety: pure functions.
#pragma once

#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

namespace rtml {

template <typename T>
  requires std::is_trivially_copyable_v<T>
void PutRaw(std::string* out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out->append(buf, sizeof(T));
}

// Reads a T from the front of *in and consumes it; false when too short.
template <typename T>
  requires std::is_trivially_copyable_v<T>
bool TakeRaw(std::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  std::memcpy(v, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}

}  // namespace rtml
