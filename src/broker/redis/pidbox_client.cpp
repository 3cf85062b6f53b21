#include "broker/redis/pidbox_client.hpp"

#include <algorithm>

#include "broker/control_replies.hpp"
#include "broker/redis/connection.hpp"
#include "broker/redis/keys.hpp"
#include "broker/redis/pidbox.hpp"
#include "protocol/base64.hpp"
#include "protocol/iso_time.hpp"
#include "protocol/task_message.hpp"

namespace ccmulti::broker::redis {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds duplicate_grace{100};

json request_envelope(const std::string& method, const std::vector<std::string>& destination,
                      const std::string& routing_key, const std::string& exchange, std::chrono::milliseconds timeout) {
    json body = {{"method", method},
                 {"arguments", json::object()},
                 {"destination", destination.empty() ? json(nullptr) : json(destination)},
                 {"pattern", nullptr},
                 {"matcher", nullptr},
                 {"ticket", protocol::new_uuid()},
                 {"reply_to", {{"exchange", exchange}, {"routing_key", routing_key}}}};
    double expires = protocol::to_unix(protocol::now()) + std::chrono::duration<double>(timeout).count();
    return {{"body", protocol::base64_encode(body.dump())},
            {"content-encoding", "utf-8"},
            {"content-type", "application/json"},
            {"headers", {{"clock", 1}, {"expires", expires}}},
            {"properties",
             {{"delivery_mode", 2},
              {"delivery_info", {{"exchange", "celery.pidbox"}, {"routing_key", ""}}},
              {"priority", 0},
              {"body_encoding", "base64"},
              {"delivery_tag", protocol::new_uuid()}}}};
}

// {"w1@host": reply} from a reply envelope; empty when it is not one.
json reply_body(const std::string& text) {
    json envelope = json::parse(text, nullptr, false);
    if (!envelope.is_object() || !envelope.contains("body") || !envelope["body"].is_string()) return json::object();
    json body = json::parse(protocol::base64_decode(envelope["body"].get<std::string>()), nullptr, false);
    return body.is_object() ? body : json::object();
}

}  // namespace

std::map<std::string, json> broadcast(const RedisUrl& url, const std::string& method,
                                      const std::vector<std::string>& destination, std::chrono::milliseconds timeout,
                                      const std::string& app) {
    Connection redis(url, timeout + std::chrono::seconds(5));
    const std::string exchange = "reply." + app + ".pidbox";
    const std::string routing_key = protocol::new_uuid();
    const std::string queue = routing_key + ".reply." + app + ".pidbox";
    const std::string binding = routing_key + std::string(sep) + std::string(sep) + queue;
    redis.command({"SADD", binding_key(exchange), binding});
    redis.command({"PUBLISH", RedisPidbox::channel(url.db, app),
                   request_envelope(method, destination, routing_key, exchange, timeout).dump()});

    std::map<std::string, json> replies;
    auto deadline = Clock::now() + timeout;
    auto everyone_answered = [&] {
        return !destination.empty() && std::all_of(destination.begin(), destination.end(),
                                                   [&](const std::string& node) { return replies.contains(node); });
    };
    bool grace = false;
    for (;;) {
        // Every node named has answered: wait a moment more for a second process of one name (a node being
        // replaced), whose reply joins the first (add_node_reply).
        if (!grace && everyone_answered()) {
            deadline = std::min(deadline, Clock::now() + duplicate_grace);
            grace = true;
        }
        auto left = std::chrono::duration<double>(deadline - Clock::now()).count();
        if (left <= 0) break;
        Reply popped = redis.command({"BRPOP", queue, std::to_string(std::max(left, 0.01))});
        if (popped.is_nil()) break;
        json body = reply_body(popped[1].string());  // named: items() of a temporary would dangle in the loop
        for (auto& [node, value] : body.items()) add_node_reply(replies, node, value);
    }
    redis.try_command({"SREM", binding_key(exchange), binding});
    redis.try_command({"DEL", queue});
    return replies;
}

}  // namespace ccmulti::broker::redis
