#include "protocol/task_message.hpp"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <random>
#include <vector>

#include "protocol/base64.hpp"
#include "protocol/fast_decode.hpp"
#include "protocol/json_fields.hpp"

namespace ccmulti::protocol {

using nlohmann::json;

namespace {

json optional_time(const std::optional<TimePoint>& value) {
    return value ? json(format_iso8601(*value)) : json(nullptr);
}

json optional_number(const std::optional<double>& value) {
    return value ? json(*value) : json(nullptr);
}

std::string this_host() {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0) return "localhost";
    return name;
}

// Reads an optional header; a wrong type is a protocol error rather than a crash or a silent default.
std::optional<std::string> read_string(const json& object, const char* key, const std::string& id) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) throw ProtocolError(std::string("message field '") + key + "' is not a string", id);
    return it->get<std::string>();
}

// eta/expires: an ISO-8601 string, kombu >= 5.3's {"__type__": "datetime", "__value__": ...}, or null.
std::optional<TimePoint> read_time(const json& object, const char* key, const std::string& id) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return std::nullopt;
    const json* value = &*it;
    if (value->is_object() && value->contains("__value__")) value = &(*value)["__value__"];
    if (value->is_string()) {
        if (auto time = parse_iso8601(value->get<std::string>())) return time;
    }
    throw ProtocolError(std::string("message field '") + key + "' is not an ISO-8601 time: " + it->dump(), id);
}

// Seconds, or null. 0 is no limit, as Celery takes it; a negative or absurd limit (past max_message_seconds) is
// refused rather than turned into a kill at once or an overflowed deadline.
constexpr double max_message_seconds = 1e9;  // about 31 years; larger ones overflow the clocks' ranges

std::optional<double> read_limit(const json& value, const std::string& id) {
    if (value.is_null()) return std::nullopt;
    if (!value.is_number()) throw ProtocolError("message field 'timelimit' holds a non-number", id);
    double seconds = value.get<double>();
    if (!(seconds >= 0 && seconds <= max_message_seconds))
        throw ProtocolError("message field 'timelimit' holds " + value.dump() + ": time limits are seconds from 0 to " +
                                std::to_string(static_cast<long long>(max_message_seconds)),
                            id);
    if (seconds == 0) return std::nullopt;
    return seconds;
}

TimeLimit read_timelimit(const json& object, const std::string& id) {
    auto it = object.find("timelimit");
    if (it == object.end() || it->is_null()) return {};
    if (!it->is_array() || it->size() != 2) throw ProtocolError("message field 'timelimit' is not [hard, soft]", id);
    return {read_limit((*it)[0], id), read_limit((*it)[1], id)};
}

int read_int(const json& object, const char* key, int fallback, const std::string& id) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return fallback;
    if (!it->is_number_integer()) throw ProtocolError(std::string("message field '") + key + "' is not an integer", id);
    return it->get<int>();
}

bool read_bool(const json& object, const char* key) {
    auto it = object.find(key);
    return it != object.end() && it->is_boolean() && it->get<bool>();
}

// Fields common to v2 headers and the v1 body dict.
void read_task_fields(const json& source, TaskMessage& message) {
    const std::string& id = message.id;
    message.task = read_string(source, "task", id).value_or("");
    if (message.task.empty()) throw ProtocolError("message names no task", id);
    message.eta = read_time(source, "eta", id);
    message.expires = read_time(source, "expires", id);
    message.retries = read_int(source, "retries", 0, id);
    message.group = read_string(source, "group", id);
    if (auto it = source.find("group_index"); it != source.end() && it->is_number_integer())
        message.group_index = it->get<int>();
    message.timelimit = read_timelimit(source, id);
}

json parse_body(const json& envelope, const std::string& id) {
    auto body_it = envelope.find("body");
    if (body_it == envelope.end()) throw ProtocolError("message has no body", id);
    std::string content_type = envelope.value("content-type", "application/json");
    if (content_type != "application/json")
        throw ProtocolError("unsupported serializer '" + content_type + "' (only JSON is supported)", id);
    const json& headers =
        envelope.contains("headers") && envelope["headers"].is_object() ? envelope["headers"] : json::object();
    if (headers.contains("compression")) throw ProtocolError("compressed message bodies are not supported", id);
    std::string body_encoding = "utf-8";
    if (auto props = envelope.find("properties"); props != envelope.end() && props->is_object())
        body_encoding = props->value("body_encoding", "utf-8");
    if (body_it->is_string()) {
        std::string text = body_it->get<std::string>();
        if (body_encoding == "base64") text = base64_decode(text);
        try {
            return json::parse(text);
        } catch (const json::exception&) {
            throw ProtocolError("message body is not valid JSON", id);
        }
    }
    return *body_it;  // already-decoded JSON body (some transports embed it)
}

}  // namespace

namespace {

// Bumped in every child fork() makes (pthread_atfork): new_uuid reseeds then, without a getpid() system call
// per id (glibc no longer caches the pid).
std::atomic<unsigned> fork_generation{1};

void note_fork_in_child() {
    fork_generation.fetch_add(1, std::memory_order_relaxed);
}

void put_hex(char* out, std::uint64_t value, int digits) {
    static constexpr char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; --i, value >>= 4) out[i] = hex[value & 0xf];
}

}  // namespace

std::string new_uuid() {
    // Reseeded after a fork: a child must never repeat its parent's ids (consumer ids, task ids).
    static const bool registered = ::pthread_atfork(nullptr, nullptr, note_fork_in_child) == 0;
    static thread_local std::mt19937_64 engine;
    static thread_local unsigned seeded_generation = 0;
    static thread_local pid_t seeded_for = 0;
    const unsigned generation = fork_generation.load(std::memory_order_relaxed);
    // Without the fork handler (it could not be registered) the pid is compared every time, as before.
    if (seeded_generation != generation || !registered) {
        pid_t pid = ::getpid();
        if (seeded_for != pid || seeded_generation == 0) {
            std::random_device device;
            std::seed_seq seed{device(), device(), device(), device(), static_cast<unsigned>(pid)};
            engine.seed(seed);
            seeded_for = pid;
        }
        seeded_generation = generation;
    }
    std::uint64_t hi = engine(), lo = engine();
    hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
    lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
    // xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx, lower case
    std::string out(36, '-');
    put_hex(&out[0], hi >> 32, 8);
    put_hex(&out[9], hi >> 16 & 0xffff, 4);
    put_hex(&out[14], hi & 0xffff, 4);
    put_hex(&out[19], lo >> 48, 4);
    put_hex(&out[24], lo & 0xffffffffffffULL, 12);
    return out;
}

TaskMessage make_message(std::string task, json args, json kwargs) {
    TaskMessage message;
    message.id = new_uuid();
    message.task = std::move(task);
    message.args = std::move(args);
    message.kwargs = std::move(kwargs);
    message.root_id = message.id;
    message.delivery_tag = new_uuid();
    message.origin = "gen" + std::to_string(getpid()) + "@" + this_host();
    return message;
}

json encode(const TaskMessage& message) {
    json body = json::array({message.args, message.kwargs, message.embed});
    json headers = {
        {"lang", "py"},  // what Celery workers expect; the body is plain JSON either way
        {"task", message.task},
        {"id", message.id},
        {"shadow", nullptr},
        {"eta", optional_time(message.eta)},
        {"expires", optional_time(message.expires)},
        {"group", or_null(message.group)},
        {"group_index", message.group_index ? json(*message.group_index) : json(nullptr)},
        {"retries", message.retries},
        {"timelimit", json::array({optional_number(message.timelimit.hard), optional_number(message.timelimit.soft)})},
        {"root_id", or_null(message.root_id)},
        {"parent_id", or_null(message.parent_id)},
        {"argsrepr", message.args.dump()},
        {"kwargsrepr", message.kwargs.dump()},
        {"origin", message.origin},
        {"ignore_result", message.ignore_result},
    };
    if (message.redelivered) headers["redelivered"] = true;
    json properties = {
        {"correlation_id", message.id},
        {"delivery_mode", 2},
        {"delivery_info", {{"exchange", ""}, {"routing_key", message.queue}}},
        {"priority", message.priority},
        {"body_encoding", "base64"},
        {"delivery_tag", message.delivery_tag},
    };
    if (!message.reply_to.empty()) properties["reply_to"] = message.reply_to;
    return {{"body", base64_encode(body.dump())},
            {"content-encoding", "utf-8"},
            {"content-type", "application/json"},
            {"headers", std::move(headers)},
            {"properties", std::move(properties)}};
}

std::string encode_string(const TaskMessage& message) {
    return encode(message).dump();
}

bool nests_deeper_than(const json& value, std::size_t limit) {
    std::vector<std::pair<const json*, std::size_t>> todo{{&value, 1}};  // a value and its depth
    while (!todo.empty()) {
        auto [node, depth] = todo.back();
        todo.pop_back();
        if (!node->is_structured()) continue;
        if (depth > limit) return true;
        for (const auto& child : *node)
            if (child.is_structured()) todo.emplace_back(&child, depth + 1);
    }
    return false;
}

namespace {

// The task id as decode() reads it, for an error found after it: "" when there is none.
std::string id_of(const json& envelope) {
    for (const auto& [section, key] : {std::pair{"headers", "id"}, std::pair{"properties", "correlation_id"}})
        if (auto it = envelope.find(section); it != envelope.end() && it->is_object())
            if (auto id = it->find(key); id != it->end() && id->is_string()) return id->get<std::string>();
    return "";
}

TaskMessage decode_envelope(const json& envelope) {
    TaskMessage message;
    const json empty = json::object();
    const json& headers = envelope.contains("headers") && envelope["headers"].is_object() ? envelope["headers"] : empty;
    const json& properties =
        envelope.contains("properties") && envelope["properties"].is_object() ? envelope["properties"] : empty;

    // The id first, so every later error can name the task it belongs to.
    message.id = read_string(headers, "id", "").value_or(read_string(properties, "correlation_id", "").value_or(""));
    const std::string too_deep = "message nested deeper than " + std::to_string(max_message_depth) + " levels";
    if (nests_deeper_than(envelope, max_message_depth)) throw ProtocolError(too_deep, message.id);
    json body = parse_body(envelope, message.id);
    if (nests_deeper_than(body, max_message_depth)) throw ProtocolError(too_deep + " (in its body)", message.id);

    if (headers.contains("task")) {
        message.protocol = 2;
        if (message.id.empty()) throw ProtocolError("message has no task id");
        read_task_fields(headers, message);
        if (!body.is_array() || body.size() < 2)
            throw ProtocolError("protocol v2 body is not [args, kwargs, embed]", message.id);
        message.args = std::move(body[0]);
        message.kwargs = std::move(body[1]);
        if (body.size() > 2 && body[2].is_object()) message.embed = std::move(body[2]);
        message.root_id = read_string(headers, "root_id", message.id);
        message.parent_id = read_string(headers, "parent_id", message.id);
        message.ignore_result = read_bool(headers, "ignore_result");
        message.origin = read_string(headers, "origin", message.id).value_or("");
    } else {
        message.protocol = 1;
        if (!body.is_object()) throw ProtocolError("protocol v1 body is not an object", message.id);
        message.id = read_string(body, "id", "").value_or(message.id);
        if (message.id.empty()) throw ProtocolError("message has no task id");
        read_task_fields(body, message);
        message.args = body.value("args", json::array());
        message.kwargs = body.value("kwargs", json::object());
        message.embed = {{"callbacks", body.value("callbacks", json(nullptr))},
                         {"errbacks", body.value("errbacks", json(nullptr))},
                         {"chain", nullptr},
                         {"chord", body.value("chord", json(nullptr))}};
        message.root_id = message.id;
    }
    if (message.args.is_null()) message.args = json::array();
    if (message.kwargs.is_null()) message.kwargs = json::object();
    if (!message.args.is_array()) throw ProtocolError("task args are not a JSON array", message.id);
    if (!message.kwargs.is_object()) throw ProtocolError("task kwargs are not a JSON object", message.id);

    if (auto info = properties.find("delivery_info"); info != properties.end() && info->is_object())
        if (auto key = info->find("routing_key"); key != info->end() && key->is_string() && !key->empty())
            message.queue = key->get<std::string>();
    if (auto priority = properties.find("priority"); priority != properties.end() && priority->is_number_integer())
        message.priority = priority->get<int>();
    message.delivery_tag = read_string(properties, "delivery_tag", message.id).value_or("");
    message.reply_to = read_string(properties, "reply_to", message.id).value_or("");
    message.redelivered = read_bool(headers, "redelivered");
    if (auto info = properties.find("delivery_info"); info != properties.end() && info->is_object())
        message.redelivered = message.redelivered || read_bool(*info, "redelivered");
    return message;
}

}  // namespace

TaskMessage decode(const json& envelope) {
    if (!envelope.is_object()) throw ProtocolError("message is not a JSON object");
    try {
        return decode_envelope(envelope);
    } catch (const json::exception& e) {
        // A field of another JSON type than the one read (a number where a string belongs, found by fuzzing):
        // the message is malformed, which is that task's FAILURE, never the node's end.
        throw ProtocolError(std::string("malformed message: ") + e.what(), id_of(envelope));
    }
}

TaskMessage decode_string(std::string_view text) {
    if (auto message = detail::fast_decode(text)) return std::move(*message);  // the common case, without a DOM
    json envelope;
    try {
        envelope = json::parse(text);
    } catch (const json::exception&) {
        throw ProtocolError("message is not valid JSON");
    }
    return decode(envelope);
}

}  // namespace ccmulti::protocol
