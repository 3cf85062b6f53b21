#include "protocol/iso_time.hpp"

#include <cmath>
#include <cstdio>
#include <ctime>

namespace ccmulti::protocol {

namespace {

// Reads exactly `width` digits at `pos`.
bool read_digits(std::string_view text, std::size_t& pos, int width, int& value) {
    if (pos + static_cast<std::size_t>(width) > text.size()) return false;
    value = 0;
    for (int i = 0; i < width; ++i) {
        char c = text[pos++];
        if (c < '0' || c > '9') return false;
        value = value * 10 + (c - '0');
    }
    return true;
}

bool expect(std::string_view text, std::size_t& pos, char c) {
    if (pos >= text.size() || text[pos] != c) return false;
    ++pos;
    return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm): no timegm/TZ involved.
long long days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const int yoe = y - era * 400;
    const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return static_cast<long long>(era) * 146097 + doe - 719468;
}

}  // namespace

TimePoint now() {
    return std::chrono::time_point_cast<std::chrono::microseconds>(Clock::now());
}

std::string format_iso8601(TimePoint time) {
    auto micros = time.time_since_epoch().count();
    auto seconds = static_cast<std::time_t>(micros >= 0 ? micros / 1000000 : (micros - 999999) / 1000000);
    long fraction = static_cast<long>(micros - static_cast<long long>(seconds) * 1000000);
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    const int year = tm.tm_year + 1900;
    if (year < 0 || year > 9999) {  // outside what the fixed layout below holds
        char buffer[64];
        std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld+00:00", year, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, fraction);
        return buffer;
    }
    // By hand: a node formats one per result, and snprintf showed in its profile.
    std::string out = "0000-00-00T00:00:00.000000+00:00";
    auto put = [&out](std::size_t end, long value, int digits) {
        for (int i = 0; i < digits; ++i, value /= 10)
            out[end - static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
    };
    put(3, year, 4);
    put(6, tm.tm_mon + 1, 2);
    put(9, tm.tm_mday, 2);
    put(12, tm.tm_hour, 2);
    put(15, tm.tm_min, 2);
    put(18, tm.tm_sec, 2);
    put(25, fraction, 6);
    return out;
}

std::optional<TimePoint> parse_iso8601(std::string_view text) {
    std::size_t pos = 0;
    int year, month, day, hour, minute, second = 0;
    if (!read_digits(text, pos, 4, year) || !expect(text, pos, '-') || !read_digits(text, pos, 2, month) ||
        !expect(text, pos, '-') || !read_digits(text, pos, 2, day))
        return std::nullopt;
    if (pos >= text.size() || (text[pos] != 'T' && text[pos] != ' ')) return std::nullopt;
    ++pos;
    if (!read_digits(text, pos, 2, hour) || !expect(text, pos, ':') || !read_digits(text, pos, 2, minute))
        return std::nullopt;
    long long micros = 0;
    if (pos < text.size() && text[pos] == ':') {
        ++pos;
        if (!read_digits(text, pos, 2, second)) return std::nullopt;
        if (pos < text.size() && text[pos] == '.') {
            ++pos;
            int digits = 0;
            for (; pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++pos, ++digits)
                if (digits < 6) micros = micros * 10 + (text[pos] - '0');
            if (digits == 0) return std::nullopt;
            for (; digits < 6; ++digits) micros *= 10;
        }
    }
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
    long long offset_minutes = 0;
    if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
        ++pos;
    } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
        int sign = text[pos++] == '-' ? -1 : 1;
        int oh, om;
        if (!read_digits(text, pos, 2, oh)) return std::nullopt;
        expect(text, pos, ':');
        if (!read_digits(text, pos, 2, om)) return std::nullopt;
        offset_minutes = sign * (oh * 60 + om);
    }
    if (pos != text.size()) return std::nullopt;
    long long seconds =
        days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    return TimePoint(std::chrono::microseconds(seconds * 1000000 + micros));
}

double to_unix(TimePoint time) {
    return static_cast<double>(time.time_since_epoch().count()) / 1e6;
}

TimePoint from_unix(double seconds) {
    return TimePoint(std::chrono::microseconds(static_cast<long long>(std::llround(seconds * 1e6))));
}

}  // namespace ccmulti::protocol
