// Configuration problems are collected, not thrown one at a time: `ccmulti config check` reports every
// mistake in a file at once, each on its own line as "FILE:LINE:COLUMN: message", the way compilers do, so
// editors can jump to them. Once reading is done, throw_if_any() raises one ConfigError (exit 2) holding them.
#pragma once

#include <string>
#include <vector>

#include "util/error.hpp"

namespace ccmulti::config {

// Where a value came from: a position in a file, or a source without lines ("$CCMULTI_CONCURRENCY",
// "command line -c").
struct Location {
    std::string source;
    int line = 0;  // 1-based; 0 for sources without lines
    int column = 0;

    std::string str() const;     // "ccmulti.toml:3:15", "$CCMULTI_CONCURRENCY"
    std::string origin() const;  // "ccmulti.toml:3": what `config show` prints as a value's origin
};

// All the problems of one configuration, one line each.
class ConfigError : public UsageError {
public:
    explicit ConfigError(std::vector<std::string> lines);
    const std::vector<std::string>& lines() const noexcept { return lines_; }

private:
    std::vector<std::string> lines_;
};

// Problems in the order a reader meets them: sources in the order they first reported, and within a file by
// line and column, whatever order the checks ran in.
class ConfigErrors {
public:
    void add(const Location& where, const std::string& message);  // "where: message"
    void add(const std::string& line);                            // already formatted, no position
    bool empty() const noexcept { return items_.empty(); }
    std::size_t size() const noexcept { return items_.size(); }
    std::vector<std::string> lines() const;
    void throw_if_any() const;  // throws ConfigError when anything was added

private:
    struct Item {
        std::size_t source;  // rank of the source, by first report
        int line, column;
        std::string text;
    };
    std::vector<std::string> sources_;
    std::vector<Item> items_;
};

}  // namespace ccmulti::config
