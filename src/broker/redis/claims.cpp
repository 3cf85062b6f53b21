#include "broker/redis/claims.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "broker/redis/keys.hpp"
#include "broker/redis/scripts.hpp"
#include "protocol/iso_time.hpp"
#include "protocol/task_message.hpp"

namespace ccmulti::broker::redis {

using nlohmann::json;

namespace {

constexpr std::size_t restore_batch = 1000;
// kombu holds unacked_mutex for up to 300 s; a holder SIGKILLed mid-restore would then block every restore for
// five minutes. One restore pass (at most restore_batch claims) takes well under a second on a LAN: 30 s is
// plenty, and the most a dead holder costs.
constexpr const char* mutex_expiry_ms = "30000";

std::string format_score(double seconds) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.6f", seconds);
    return buffer;
}

}  // namespace

double unix_now() {
    return protocol::to_unix(protocol::now());
}

std::string unacked_value(std::string_view payload, std::string_view exchange, std::string_view routing_key) {
    return "[" + std::string(payload) + ", " + json(exchange).dump() + ", " + json(routing_key).dump() + "]";
}

std::optional<UnackedEntry> parse_unacked(std::string_view value) {
    try {
        json entry = json::parse(value);
        if (!entry.is_array() || entry.size() < 3 || !entry[0].is_object()) return std::nullopt;
        return UnackedEntry{entry[0], entry[1].is_string() ? entry[1].get<std::string>() : "",
                            entry[2].is_string() ? entry[2].get<std::string>() : ""};
    } catch (const json::exception&) {
        return std::nullopt;
    }
}

std::pair<std::string, std::string> routing_of(const json& payload) {
    std::string exchange, routing_key;
    if (auto props = payload.find("properties"); props != payload.end() && props->is_object())
        if (auto info = props->find("delivery_info"); info != props->end() && info->is_object()) {
            if (auto it = info->find("exchange"); it != info->end() && it->is_string()) exchange = *it;
            if (auto it = info->find("routing_key"); it != info->end() && it->is_string()) routing_key = *it;
        }
    return {exchange, routing_key};
}

std::string redelivered_payload(json payload) {
    if (payload.contains("headers") && payload["headers"].is_object()) payload["headers"]["redelivered"] = true;
    if (payload.contains("properties") && payload["properties"].is_object()) {
        json& props = payload["properties"];
        if (props.contains("delivery_info") && props["delivery_info"].is_object())
            props["delivery_info"]["redelivered"] = true;
        if (props.contains("delivery_tag")) props["delivery_tag"] = protocol::new_uuid();
    }
    return payload.dump();
}

std::string restore_queue(Connection& connection, const std::string& exchange, const std::string& routing_key) {
    if (exchange.empty()) return routing_key.empty() ? "celery" : routing_key;
    Reply members = connection.command({"SMEMBERS", binding_key(exchange)});
    for (std::size_t i = 0; i < members.size(); ++i) {
        std::string member = members[i].string();
        auto first = member.find(sep);
        if (first == std::string::npos) continue;
        auto second = member.find(sep, first + sep.size());
        if (second == std::string::npos) continue;
        if (member.substr(0, first) == routing_key) return member.substr(second + sep.size());
    }
    return routing_key.empty() ? exchange : routing_key;
}

std::string restore_key(const json& payload, const std::string& queue) {
    int priority = 0;
    if (auto props = payload.find("properties"); props != payload.end() && props->is_object())
        if (auto it = props->find("priority"); it != props->end() && it->is_number_integer()) priority = *it;
    return queue_key(queue, priority);
}

std::size_t restore_visible(Connection& connection, std::chrono::seconds age) {
    const std::string token = protocol::new_uuid();
    Reply locked = connection.command({"SET", unacked_mutex_key, token, "NX", "PX", mutex_expiry_ms});
    if (locked.is_nil()) return 0;  // someone else is restoring now
    std::size_t restored = 0;
    try {
        const std::string ceiling = format_score(unix_now() - static_cast<double>(age.count()));
        Reply expired = connection.command(
            {"ZRANGEBYSCORE", unacked_index_key, "-inf", ceiling, "LIMIT", "0", std::to_string(restore_batch)});
        for (std::size_t i = 0; i < expired.size(); ++i) {
            std::string tag = expired[i].string();
            Reply value = connection.command({"HGET", unacked_key, tag});
            auto entry = value.is_nil() ? std::nullopt : parse_unacked(value.text());
            if (!entry) {
                // A stale index entry, or a claim nobody can read: drop it rather than trip on it for ever.
                if (!value.is_nil()) spdlog::error("{}dropping unreadable unacked entry {}", connection.prefix(), tag);
                connection.pipeline(
                    {{"MULTI"}, {"ZREM", unacked_index_key, tag}, {"HDEL", unacked_key, tag}, {"EXEC"}});
                continue;
            }
            std::string queue = restore_queue(connection, entry->exchange, entry->routing_key);
            // Only if still as old: its holder may have refreshed it since (a live node back from an outage).
            Reply done =
                eval(connection, restore_script, {unacked_key, unacked_index_key, restore_key(entry->payload, queue)},
                     {tag, redelivered_payload(entry->payload), value.string(), ceiling});
            restored += static_cast<std::size_t>(done.integer());
        }
    } catch (...) {
        try {
            eval(connection, release_lock_script, {unacked_mutex_key}, {token});
        } catch (...) {
        }
        throw;
    }
    eval(connection, release_lock_script, {unacked_mutex_key}, {token});
    if (restored)
        spdlog::warn("{}restored {} unacknowledged message(s) of a node presumed dead", connection.prefix(), restored);
    return restored;
}

}  // namespace ccmulti::broker::redis
