// The task message model and its wire form: Celery message protocol v2 inside a kombu JSON envelope
// (docs: /work/shared/docs/celery-protocol.md §1). Every broker stores or sends this same envelope, so a message
// published by ccmulti is one Python Celery could consume and the other way round. Pure functions, no I/O.
//
//   envelope = {"body": base64(JSON [args, kwargs, embed]), "content-type": "application/json",
//               "content-encoding": "utf-8", "headers": {task, id, eta, expires, retries, timelimit, ...},
//               "properties": {correlation_id, delivery_tag, delivery_info: {exchange, routing_key}, ...}}
//
// decode() also reads protocol v1 (task metadata in the body dict, empty headers).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "protocol/iso_time.hpp"
#include "protocol/protocol_error.hpp"

namespace ccmulti::protocol {

// Celery's `timelimit` header: [hard, soft] seconds, each optional.
struct TimeLimit {
    std::optional<double> hard, soft;
    bool operator==(const TimeLimit&) const = default;
};

struct TaskMessage {
    std::string id;    // task id = result key = properties.correlation_id
    std::string task;  // registered task name, e.g. "tasks.add"
    nlohmann::json args = nlohmann::json::array();
    nlohmann::json kwargs = nlohmann::json::object();
    nlohmann::json embed = default_embed();  // callbacks/errbacks/chain/chord, kept opaque
    std::optional<TimePoint> eta;            // not to run before
    std::optional<TimePoint> expires;        // not to run after: stored as REVOKED ("expired")
    int retries = 0;
    std::optional<std::string> root_id, parent_id, group;
    std::optional<int> group_index;
    TimeLimit timelimit;
    bool ignore_result = false;
    std::string queue = "celery";  // delivery_info.routing_key (exchange "" routes by queue name)
    int priority = 0;
    std::string origin;        // "gen<pid>@<host>", informational
    std::string delivery_tag;  // producer-made uuid; brokers may key acks on it
    // properties.reply_to: the queue of the client that sent it, where a reply-queue result backend (Celery's
    // rpc://) sends its states; "" when none. Python clients always set it, whatever their backend.
    std::string reply_to;
    bool redelivered = false;  // set by a broker that gives a message out again after a restore/requeue
    int protocol = 2;          // the version decode() found (encode always writes 2)

    static nlohmann::json default_embed() {
        // A copy of one built once: every TaskMessage starts with it, and building it from an initializer list
        // each time showed in profiles of a busy node.
        static const nlohmann::json embed = {
            {"callbacks", nullptr}, {"errbacks", nullptr}, {"chain", nullptr}, {"chord", nullptr}};
        return embed;
    }
    bool operator==(const TaskMessage&) const = default;
};

// A message for `task` with a fresh id (also its root id and correlation id), delivery tag and origin.
TaskMessage make_message(std::string task, nlohmann::json args = nlohmann::json::array(),
                         nlohmann::json kwargs = nlohmann::json::object());

// Random RFC 4122 version-4 uuid, lower-case, as Celery makes task ids.
std::string new_uuid();

// The kombu JSON envelope of `message` (protocol v2).
nlohmann::json encode(const TaskMessage& message);
std::string encode_string(const TaskMessage& message);

inline constexpr std::size_t max_message_depth = 200;

// True when `value` has arrays/objects nested more than `limit` levels deep. Iterative: safe at any depth.
bool nests_deeper_than(const nlohmann::json& value, std::size_t limit);

// Reads an envelope (v2, or v1 when headers.task is absent). Throws ProtocolError for anything that cannot be
// run: bad JSON, a non-JSON serializer (pickle, msgpack, yaml), compression, a malformed body. The error carries
// the task id when the headers named one.
// Also for a message that nests arrays/objects deeper than max_message_depth anywhere (envelope or body):
// everything after decoding (dumps, copies, the pool's frames) recurses per level, so such a message would
// overflow a node's stack. Python's json gives up near 1,000 levels; real task arguments nest a handful.
TaskMessage decode(const nlohmann::json& envelope);
TaskMessage decode_string(std::string_view text);

}  // namespace ccmulti::protocol
