#include "common/time_format.h"

#include <charconv>
#include <cmath>

namespace rtml {
namespace {

// Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool ReadInt(std::string_view s, size_t pos, size_t len, int* out) {
  if (pos + len > s.size()) return false;
  for (size_t i = pos; i < pos + len; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return std::from_chars(s.data() + pos, s.data() + pos + len, *out).ec == std::errc();
}

Status Bad(std::string_view text) {
  return InvalidArgument("'" + std::string(text) +
                             "' is not a timestamp (use ISO 8601 like 2026-11-26T06:00:00Z, "
                             "or epoch seconds)",
                         "bad_timestamp");
}

bool LooksNumeric(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E')) {
      return false;
    }
  }
  return s.find('-', 1) == std::string_view::npos;  // "2026-11-26" is a date
}

}  // namespace

Result<int64_t> EpochSecondsToMicros(double seconds) {
  if (!std::isfinite(seconds) || std::fabs(seconds) > 9.2e12) {
    return InvalidArgument("epoch seconds out of range", "bad_timestamp");
  }
  return static_cast<int64_t>(std::llround(seconds * 1e6));
}

Result<int64_t> ParseTimestamp(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (LooksNumeric(s)) {
    double v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) return Bad(s);
    return EpochSecondsToMicros(v);
  }
  int y, mo, d, h = 0, mi = 0, sec = 0;
  if (!ReadInt(s, 0, 4, &y) || s.size() < 10 || s[4] != '-' || !ReadInt(s, 5, 2, &mo) ||
      s[7] != '-' || !ReadInt(s, 8, 2, &d) || mo < 1 || mo > 12 || d < 1 || d > 31) {
    return Bad(s);
  }
  size_t pos = 10;
  int64_t frac_us = 0, offset_s = 0;
  if (pos < s.size()) {
    if ((s[pos] != 'T' && s[pos] != ' ') || !ReadInt(s, pos + 1, 2, &h) ||
        s.size() < pos + 9 || s[pos + 3] != ':' || !ReadInt(s, pos + 4, 2, &mi) ||
        s[pos + 6] != ':' || !ReadInt(s, pos + 7, 2, &sec) || h > 23 || mi > 59 || sec > 60) {
      return Bad(s);
    }
    pos += 9;
    if (pos < s.size() && s[pos] == '.') {
      int64_t scale = 100000;
      ++pos;
      const size_t start = pos;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        if (scale > 0) frac_us += (s[pos] - '0') * scale;
        scale /= 10;
        ++pos;
      }
      if (pos == start) return Bad(s);
    }
    if (pos < s.size()) {
      if (s[pos] == 'Z' && pos + 1 == s.size()) {
        ++pos;
      } else if ((s[pos] == '+' || s[pos] == '-') && pos + 6 == s.size() && s[pos + 3] == ':') {
        int oh, om;
        if (!ReadInt(s, pos + 1, 2, &oh) || !ReadInt(s, pos + 4, 2, &om)) return Bad(s);
        offset_s = (s[pos] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
        pos = s.size();
      } else {
        return Bad(s);
      }
    }
  }
  if (pos != s.size()) return Bad(s);
  const int64_t seconds = DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
  return seconds * 1000000 + frac_us;
}

std::string FormatTimestamp(int64_t micros) {
  int64_t secs = micros >= 0 ? micros / 1000000 : -((-micros + 999999) / 1000000);
  const int64_t us = micros - secs * 1000000;
  int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
  int64_t rem = secs - days * 86400;
  // civil_from_days (H. Hinnant)
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp + (mp < 10 ? 3 : -9);
  char buf[40];
  int n = std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02uT%02lld:%02lld:%02lld",
                        static_cast<long long>(y + (m <= 2)), m, d,
                        static_cast<long long>(rem / 3600),
                        static_cast<long long>(rem % 3600 / 60),
                        static_cast<long long>(rem % 60));
  if (us != 0) n += std::snprintf(buf + n, sizeof(buf) - n, ".%06lld", static_cast<long long>(us));
  std::snprintf(buf + n, sizeof(buf) - n, "Z");
  return buf;
}

}  // namespace rtml
