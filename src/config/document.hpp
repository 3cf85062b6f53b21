// A configuration file as both loaders deliver it: one tree shape for TOML and YAML, every value and key
// with its position. The schema (schema.hpp) reads only this shape, so one set of rules and one set of
// messages serves both formats, and the environment and the command line (text turned into a Value by
// text_value()) go through the same checks.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/errors.hpp"

namespace ccmulti::config {

struct Entry;

struct Value {
    enum class Kind { null, boolean, integer, floating, string, datetime, array, table };

    Kind kind = Kind::null;
    bool boolean = false;
    std::int64_t integer = 0;
    double floating = 0;
    std::string string;  // a string's value; a date-time as written
    std::vector<Value> array;
    std::vector<Entry> table;  // in document order; YAML may repeat a key, the schema reports it
    Location at;
};

struct Entry {
    std::string key;
    Location key_at;
    Value value;
};

// "string \"four\"", "integer 5", "array": what a value is, for "expected integer, got …".
std::string describe(const Value& value);
std::string kind_name(Value::Kind kind);
std::string quote(const std::string& text);  // "\"four\"", control characters escaped, long text shortened

// The value a plain (unquoted) YAML scalar stands for under the YAML 1.2 core schema: null, true/false,
// integers (decimal, 0x, 0o), floats (.inf, .nan too), else a string. Integers that do not fit in 64 bits
// are reported to `errors` and come back null.
Value plain_scalar(const std::string& text, const Location& at, ConfigErrors& errors);

// Text from the environment or the command line: typed like a plain YAML scalar when `typed`, so that
// CCMULTI_CONCURRENCY=four fails as "expected integer, got string \"four\"" just as a file does; taken
// verbatim otherwise (paths, program lines). Text that is not UTF-8 is reported and comes back null.
Value text_value(const std::string& text, const Location& at, bool typed, ConfigErrors& errors);

// Strict UTF-8: no overlong forms, surrogates or code points past U+10FFFF. toml++ checks this itself;
// yaml-cpp, variables and flags do not, and every string ends up in JSON (`config show --json`).
bool valid_utf8(std::string_view text);

// Guards against hostile documents (fuzzing, YAML alias bombs): deeper nesting or more values than any real
// configuration has are reported instead of converted.
inline constexpr int max_depth = 32;
inline constexpr std::size_t max_values = 100000;

}  // namespace ccmulti::config
