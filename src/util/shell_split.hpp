// Splitting a command line written as one string (`--exec 'python3 -m app --name %n'`) into argv the way a
// POSIX shell would tokenise it, without running a shell: whitespace separates words, '...' is literal,
// "..." allows \" \\ \$ \` escapes, a backslash outside quotes escapes the next character. No variables,
// globs or operators: `$HOME` and `*` stay as written.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ccmulti {

// Throws UsageError naming `origin` for an unterminated quote or a trailing backslash.
std::vector<std::string> shell_split(std::string_view line, std::string_view origin);

}  // namespace ccmulti
