// ISO-8601 timestamps as Celery writes them ("2026-11-24T16:48:22.318198+00:00") and the clock they measure.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace ccmulti::protocol {

using Clock = std::chrono::system_clock;
using TimePoint = std::chrono::time_point<Clock, std::chrono::microseconds>;

TimePoint now();

// UTC with microseconds and an explicit "+00:00" offset.
std::string format_iso8601(TimePoint time);

// Accepts "YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]][Z|±HH:MM|±HHMM]"; no offset means UTC (Celery's naive dates are
// UTC). Returns nullopt when `text` is not such a timestamp.
std::optional<TimePoint> parse_iso8601(std::string_view text);

// Seconds since the Unix epoch, for storage and arithmetic.
double to_unix(TimePoint time);
TimePoint from_unix(double seconds);

}  // namespace ccmulti::protocol
