// The fast path of decode_string(): a busy node decodes one kombu envelope per task, and building nlohmann's DOM
// of it (a map node and a string per header) cost a third of the node's CPU (bench/profile.md). This reads the
// envelope with simdjson's validating parser (about 40 times as fast on a 740-byte envelope) and takes only the
// fields a TaskMessage has; the body ([args, kwargs, embed], small) is still nlohmann JSON, as TaskMessage holds it.
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

}  // namespace ccmulti::protocol::detail
