// Small string helpers shared by every module.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ccmulti {

std::vector<std::string> split(std::string_view text, char separator);
std::string join(const std::vector<std::string>& parts, std::string_view separator);
bool is_digits(std::string_view text);  // non-empty and every char is 0-9

// Quotes an argument for a POSIX shell only when it needs it, so `show` output can be pasted.
std::string shell_quote(std::string_view arg);
std::string shell_join(const std::vector<std::string>& argv);

// Levenshtein distance, for "did you mean" suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word`, or "" when none is close enough to be a plausible typo.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

// A duration as the watch options take it: "300ms", "0.5s", or plain seconds ("0.5"). Milliseconds, rounded;
// nullopt for anything else, a negative or non-finite value, or more than `max_ms`.
std::optional<std::int64_t> parse_duration_ms(std::string_view text, std::int64_t max_ms);

}  // namespace ccmulti
