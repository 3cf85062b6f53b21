// The fast path of decode_string(): a busy node decodes one kombu envelope per task, and building nlohmann's DOM
// of it (a map node and a string per header) cost a third of the node's CPU (bench/profile.md). This reads the
// envelope with simdjson's validating parser (about 40 times as fast on a 740-byte envelope) and takes only the
// fields a TaskMessage has; the body ([args, kwargs, embed], small) is read with simdjson too and built as the
// nlohmann JSON TaskMessage holds (parse_json below).
//
// It handles the common case only: a well-formed protocol v2 envelope whose fields have the types Celery writes.
// For anything else (v1, a wrong type, a kombu datetime object, a duplicate key, deep nesting, any error) it
// returns nullopt and decode_string() decodes the DOM way, which gives the same message or the exact
// ProtocolError: the two paths never disagree (tests/fuzz/task_message_fuzz.cpp checks that).
#pragma once

#include <optional>
#include <string_view>

#include "protocol/task_message.hpp"

namespace ccmulti::protocol::detail {

std::optional<TaskMessage> fast_decode(std::string_view text);

// `text` parsed with simdjson and built as nlohmann JSON: the same value nlohmann::json::parse(text) gives (the
// same types: a non-negative integer unsigned, a negative one signed, a fraction or exponent a double; the last
// of duplicate keys kept), at a fraction of the cost of nlohmann's lexer. nullopt for anything simdjson refuses
// (invalid JSON, nesting past 64, an integer past 64 bits): parse it nlohmann's way then, for its value or its
// exact error. For small texts a node parses per task: message bodies, pool frames.
std::optional<nlohmann::json> parse_json(std::string_view text);

}  // namespace ccmulti::protocol::detail
