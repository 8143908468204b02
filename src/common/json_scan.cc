#include "common/json_scan.h"

#include <cctype>
#include <cstring>
#include <vector>

namespace rtml {
namespace {

class Scanner {
 public:
  Scanner(std::string_view text, int max_depth) : s_(text), max_depth_(max_depth) {}

  std::optional<JsonSyntaxError> Run() {
    SkipSpace();
    if (!Value(0)) return error_;
    SkipSpace();
    if (i_ != s_.size()) Fail("unexpected content after the JSON value");
    return error_;
  }

 private:
  bool Fail(const char* what) {
    if (!error_) error_ = JsonSyntaxError{i_, what};
    return false;
  }
  bool AtEnd() const { return i_ >= s_.size(); }
  void SkipSpace() {
    while (!AtEnd() && std::strchr(" \t\r\n", s_[i_]) != nullptr && s_[i_] != '\0') ++i_;
  }
  bool Expect(char c, const char* what) {
    SkipSpace();
    if (AtEnd() || s_[i_] != c) return Fail(what);
    ++i_;
    return true;
  }

  bool Value(int depth) {
    SkipSpace();
    if (AtEnd()) return Fail("unexpected end of input, expected a value");
    switch (s_[i_]) {
      case '{': return Object(depth + 1);
      case '[': return Array(depth + 1);
      case '"': return String();
      case 't': return Literal("true");
      case 'f': return Literal("false");
      case 'n': return Literal("null");
      default: return Number();
    }
  }

  bool Object(int depth) {
    if (depth > max_depth_) return Fail("nesting too deep");
    ++i_;
    SkipSpace();
    if (!AtEnd() && s_[i_] == '}') return ++i_, true;
    while (true) {
      SkipSpace();
      if (AtEnd() || s_[i_] != '"') return Fail("expected a string key");
      if (!String()) return false;
      if (!Expect(':', "expected ':' after object key")) return false;
      if (!Value(depth)) return false;
      SkipSpace();
      if (!AtEnd() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      return Expect('}', "expected ',' or '}' in object");
    }
  }

  bool Array(int depth) {
    if (depth > max_depth_) return Fail("nesting too deep");
    ++i_;
    SkipSpace();
    if (!AtEnd() && s_[i_] == ']') return ++i_, true;
    while (true) {
      if (!Value(depth)) return false;
      SkipSpace();
      if (!AtEnd() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      return Expect(']', "expected ',' or ']' in array");
    }
  }

  bool Literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return Fail("invalid literal");
    i_ += word.size();
    return true;
  }

  bool Digits() {
    const size_t start = i_;
    while (!AtEnd() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    return i_ > start;
  }

  bool Number() {
    if (s_[i_] == '-') ++i_;
    if (AtEnd()) return Fail("invalid number");
    if (s_[i_] == '0') {
      ++i_;
    } else if (!Digits()) {
      return Fail("unexpected character, expected a value");
    }
    if (!AtEnd() && s_[i_] == '.') {
      ++i_;
      if (!Digits()) return Fail("invalid number: digits expected after '.'");
    }
    if (!AtEnd() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (!AtEnd() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (!Digits()) return Fail("invalid number: digits expected in exponent");
    }
    return true;
  }

  bool String() {
    ++i_;  // opening quote
    while (true) {
      if (AtEnd()) return Fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') return ++i_, true;
      if (c < 0x20) return Fail("control character in string");
      if (c == '\\') {
        ++i_;
        if (AtEnd()) return Fail("unterminated string");
        const char e = s_[i_];
        if (e == 'u') {
          for (int k = 1; k <= 4; ++k) {
            if (i_ + k >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_ + k]))) {
              return Fail("invalid \\u escape");
            }
          }
          i_ += 5;
          continue;
        }
        if (std::strchr("\"\\/bfnrt", e) == nullptr || e == '\0') return Fail("invalid escape");
        ++i_;
        continue;
      }
      if (c >= 0x80 && !Utf8()) return false;
      if (c < 0x80) ++i_;
    }
  }

  bool Utf8() {
    const unsigned char c = static_cast<unsigned char>(s_[i_]);
    int n = c >= 0xF0 && c <= 0xF4 ? 3 : c >= 0xE0 ? 2 : c >= 0xC2 && c <= 0xDF ? 1 : -1;
    if (n < 0 || c > 0xF4) return Fail("invalid UTF-8");
    for (int k = 1; k <= n; ++k) {
      if (i_ + k >= s_.size() || (static_cast<unsigned char>(s_[i_ + k]) & 0xC0) != 0x80) {
        return Fail("invalid UTF-8");
      }
    }
    i_ += n + 1;
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
  int max_depth_;
  std::optional<JsonSyntaxError> error_;
};

}  // namespace

std::optional<JsonSyntaxError> FindJsonSyntaxError(std::string_view text, int max_depth) {
  return Scanner(text, max_depth).Run();
}

Status MalformedJson(std::string_view body, std::string_view why) {
  if (auto e = FindJsonSyntaxError(body)) {
    return InvalidArgument("malformed JSON at byte " + std::to_string(e->offset) + ": " +
                               e->message,
                           "malformed_json");
  }
  return InvalidArgument(why.empty() ? "malformed JSON" : "malformed JSON: " + std::string(why),
                         "malformed_json");
}

}  // namespace rtml
