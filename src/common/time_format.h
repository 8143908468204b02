// Timestamps as users write them: RFC 3339 / ISO 8601 text
// ("2026-11-26T06:00:00Z", "2026-11-26 06:00:00.123+01:00", "2026-11-26")
// or Unix epoch seconds (integer or fractional). Internally int64 microseconds
// since the epoch, UTC.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace rtml {

Result<int64_t> ParseTimestamp(std::string_view text);
Result<int64_t> EpochSecondsToMicros(double seconds);
// "2026-11-26T06:00:00Z", with ".ffffff" when there are microseconds.
std::string FormatTimestamp(int64_t micros);

}  // namespace rtml
