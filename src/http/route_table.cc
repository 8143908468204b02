#include "http/route_table.h"

#include <algorithm>

namespace rtml::http {

void PathSegments(std::string_view target, std::vector<std::string_view>* out) {
  target = target.substr(0, target.find('?'));
  std::vector<std::string_view>& parts = *out;
  parts.clear();
  while (!target.empty()) {
    if (target.front() == '/') {
      target.remove_prefix(1);
      continue;
    }
    const size_t slash = target.find('/');
    parts.push_back(target.substr(0, slash));
    target = slash == std::string_view::npos ? std::string_view() : target.substr(slash);
  }
}

size_t PathSegments(std::string_view target, std::span<std::string_view> out) {
  target = target.substr(0, target.find('?'));
  size_t n = 0;
  for (size_t i = 0; i < target.size();) {
    const size_t end = std::min(target.find('/', i), target.size());
    if (end > i) {
      if (n == out.size()) return n + 1;
      out[n++] = target.substr(i, end - i);
    }
    i = end + 1;
  }
  return n;
}

uint8_t MethodBit(std::string_view method) {
  if (method == "GET" || method == "HEAD") return kGet;
  if (method == "POST") return kPost;
  return 0;
}

std::string AllowHeader(uint8_t methods) {
  std::string allow;
  if (methods & kGet) allow = "GET";
  if (methods & kPost) allow += allow.empty() ? "POST" : ", POST";
  return allow;
}

}  // namespace rtml::http
