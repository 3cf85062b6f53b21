// JSON text written straight into a string, for the texts a busy node writes per task (a result, a pool
// request): building an nlohmann object first costs a tree of allocations (every key a std::map node, every
// argument copied) only to serialise and free it. Output is byte for byte what nlohmann's dump() writes
// (compact, UTF-8 kept, keys in the order the caller gives, which callers keep sorted as nlohmann's objects are).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ccmulti::protocol {

using JsonErrors = nlohmann::json::error_handler_t;

// Appends `text` as a JSON string. Invalid UTF-8 is refused (strict: throws nlohmann's type_error, as dump()
// does) or replaced by U+FFFD (replace).
void append_json_string(std::string& out, std::string_view text, JsonErrors errors = JsonErrors::strict);
// Appends `value` as compact JSON, as value.dump(-1, ' ', false, errors) would.
void append_json(std::string& out, const nlohmann::json& value, JsonErrors errors = JsonErrors::strict);

}  // namespace ccmulti::protocol
