#include "broker/redis/redis_broker.hpp"

#include <map>

#include "broker/redis/claims.hpp"
#include "broker/redis/event_publisher.hpp"
#include "broker/redis/event_receiver.hpp"
#include "broker/redis/keys.hpp"
#include "broker/redis/redis_consumer.hpp"

namespace ccmulti::broker::redis {

using nlohmann::json;

namespace {

constexpr std::size_t scan_chunk = 1000;

// Bindings of Celery's own plumbing (remote control, events) name queues no task goes to.
bool is_plumbing(std::string_view exchange) {
    return exchange.ends_with(".pidbox") || exchange == "celeryev";
}

std::string queue_of_member(std::string_view member) {
    auto last = member.rfind(sep);
    return std::string(last == std::string_view::npos ? member : member.substr(last + sep.size()));
}

bool future_eta(const json& payload) {
    if (!payload.contains("headers") || !payload["headers"].is_object()) return false;
    const json& headers = payload["headers"];
    auto it = headers.find("eta");
    if (it == headers.end() || !it->is_string()) return false;
    auto eta = protocol::parse_iso8601(it->get<std::string>());
    return eta && *eta > protocol::now();
}

// The task id a payload carries (v2 headers, else the correlation id, else a v1 body is not looked into).
std::string task_id_of(const json& payload) {
    if (payload.contains("headers") && payload["headers"].is_object())
        if (auto it = payload["headers"].find("id"); it != payload["headers"].end() && it->is_string()) return *it;
    if (payload.contains("properties") && payload["properties"].is_object())
        if (auto it = payload["properties"].find("correlation_id");
            it != payload["properties"].end() && it->is_string())
            return *it;
    return "";
}

}  // namespace

RedisBroker::RedisBroker(RedisUrl url) : url_(std::move(url)), connection_(url_) {}

void RedisBroker::publish(const TaskMessage& message) {
    std::string envelope = protocol::encode_string(message);
    connection_.with([&](Connection& connection) {
        std::vector<Command> commands;
        bool declare = !declared_.count(message.queue);
        if (declare)
            commands.push_back({"SADD", binding_key(message.queue), binding_member(message.queue, message.queue)});
        commands.push_back({"LPUSH", queue_key(message.queue, message.priority), envelope});
        auto replies = connection.pipeline(commands);
        for (const auto& reply : replies)
            if (reply.is_error()) connection.refuse("publish to " + message.queue, reply);
        if (declare) declared_.insert(message.queue);
    });
}

void RedisBroker::publish_many(const std::vector<TaskMessage>& messages) {
    constexpr std::size_t window = 1000;  // commands per round trip: replies stay small, the pipe stays full
    for (std::size_t first = 0; first < messages.size(); first += window) {
        std::vector<Command> commands;
        std::set<std::string> declaring;
        for (std::size_t i = first; i < std::min(messages.size(), first + window); ++i) {
            const TaskMessage& message = messages[i];
            if (!declared_.count(message.queue) && declaring.insert(message.queue).second)
                commands.push_back({"SADD", binding_key(message.queue), binding_member(message.queue, message.queue)});
            commands.push_back({"LPUSH", queue_key(message.queue, message.priority), protocol::encode_string(message)});
        }
        connection_.with([&](Connection& connection) {
            for (const auto& reply : connection.pipeline(commands))
                if (reply.is_error()) connection.refuse("publish", reply);
        });
        declared_.merge(declaring);
    }
}

std::unique_ptr<Consumer> RedisBroker::consume(const ConsumerInfo& info) {
    return std::make_unique<RedisConsumer>(url_, info);  // restores dead nodes' claims as it connects
}

// A client (`call`, `queues`) may come right after an outage, before the live nodes re-asserted their claims:
// it leaves them the grace the nodes give each other. Nodes restore dead nodes' claims on their heartbeats.
std::size_t RedisBroker::restore_orphans() {
    return connection_.with(
        [&](Connection& connection) { return restore_visible(connection, url_.visibility_timeout + outage_grace); });
}

std::size_t RedisBroker::purge(const std::string& queue) {
    return connection_.with([&](Connection& connection) {
        std::vector<Command> commands{{"MULTI"}};
        for (int step : priority_steps) {
            commands.push_back({"LLEN", queue_key(queue, step)});
            commands.push_back({"DEL", queue_key(queue, step)});
        }
        commands.push_back({"EXEC"});
        auto replies = connection.pipeline(commands);
        const Reply& exec = replies.back();
        for (const auto& reply : replies)
            if (reply.is_error()) connection.refuse("purge " + queue, reply);
        std::size_t purged = 0;
        for (std::size_t i = 0; i < exec.size(); i += 2) purged += static_cast<std::size_t>(exec[i].integer());
        return purged;
    });
}

std::vector<std::pair<std::string, std::vector<std::string>>> RedisBroker::live_consumers(Connection& connection) {
    std::vector<std::pair<std::string, std::vector<std::string>>> out;
    Reply all = connection.command({"HGETALL", consumers_key});
    const double now = unix_now();
    for (std::size_t i = 0; i + 1 < all.size(); i += 2) {
        json entry = json::parse(all[i + 1].text(), nullptr, false);
        bool valid = entry.is_object() && entry.value("expires", 0.0) > now && entry.contains("queues") &&
                     entry["queues"].is_array();
        if (!valid) {
            connection.command({"HDEL", consumers_key, all[i].string()});  // a node that stopped without saying so
            continue;
        }
        std::vector<std::string> queues;
        for (const auto& queue : entry["queues"])
            if (queue.is_string()) queues.push_back(queue);
        out.emplace_back(entry.value("node", std::string("?")), std::move(queues));
    }
    return out;
}

std::set<std::string> RedisBroker::known_queues(Connection& connection) {
    std::set<std::string> names;
    std::string cursor = "0";
    do {
        Reply page = connection.command(
            {"SCAN", cursor, "MATCH", std::string(binding_prefix) + "*", "COUNT", std::to_string(scan_chunk)});
        cursor = page[0].string();
        for (std::size_t i = 0; i < page[1].size(); ++i) {
            std::string key = page[1][i].string();
            if (is_plumbing(std::string_view(key).substr(std::string_view(binding_prefix).size()))) continue;
            Reply members = connection.command({"SMEMBERS", key});
            for (std::size_t j = 0; j < members.size(); ++j) names.insert(queue_of_member(members[j].text()));
        }
    } while (cursor != "0");
    for (const auto& [node, queues] : live_consumers(connection)) names.insert(queues.begin(), queues.end());
    return names;
}

std::vector<QueueStats> RedisBroker::queue_stats() {
    return connection_.with([&](Connection& connection) {
        std::map<std::string, QueueStats> stats;
        auto entry = [&stats](const std::string& name) -> QueueStats& {
            auto& item = stats[name];
            item.name = name;
            return item;
        };
        std::vector<std::string> names;
        for (const auto& name : known_queues(connection)) names.push_back(name);
        std::vector<Command> lengths;
        for (const auto& name : names)
            for (int step : priority_steps) lengths.push_back({"LLEN", queue_key(name, step)});
        auto replies = connection.pipeline(lengths);
        for (std::size_t i = 0; i < names.size(); ++i)
            for (std::size_t s = 0; s < priority_steps.size(); ++s)
                entry(names[i]).ready += static_cast<std::size_t>(replies[i * priority_steps.size() + s].integer());

        std::map<std::string, std::string> exchange_queue;  // (exchange + routing key) -> queue, looked up once
        Reply claims = connection.command({"HVALS", unacked_key});
        for (std::size_t i = 0; i < claims.size(); ++i) {
            auto claim = parse_unacked(claims[i].text());
            if (!claim) continue;
            std::string lookup = claim->exchange + std::string(sep) + claim->routing_key;
            auto found = exchange_queue.find(lookup);
            if (found == exchange_queue.end())
                found = exchange_queue.emplace(lookup, restore_queue(connection, claim->exchange, claim->routing_key))
                            .first;
            auto& item = entry(found->second);
            (future_eta(claim->payload) ? item.scheduled : item.reserved) += 1;
        }
        for (const auto& [node, queues] : live_consumers(connection))
            for (const auto& queue : queues) entry(queue).consumers.push_back(node);

        std::vector<QueueStats> out;
        for (auto& [name, item] : stats) {
            if (item.ready + item.scheduled + item.reserved == 0 && item.consumers.empty()) continue;
            std::sort(item.consumers.begin(), item.consumers.end());
            out.push_back(std::move(item));
        }
        return out;
    });
}

std::vector<std::string> RedisBroker::consumers_of(const std::string& queue) {
    return connection_.with([&](Connection& connection) {
        std::vector<std::string> nodes;
        for (const auto& [node, queues] : live_consumers(connection))
            if (std::find(queues.begin(), queues.end(), queue) != queues.end()) nodes.push_back(node);
        std::sort(nodes.begin(), nodes.end());
        return nodes;
    });
}

std::optional<MessageLocation> RedisBroker::locate(const std::string& task_id) {
    if (task_id.empty()) return std::nullopt;
    return connection_.with([&](Connection& connection) -> std::optional<MessageLocation> {
        // Claimed messages first: there are few of them.
        std::string cursor = "0";
        do {
            Reply page = connection.command({"HSCAN", unacked_key, cursor, "COUNT", std::to_string(scan_chunk)});
            cursor = page[0].string();
            for (std::size_t i = 1; i < page[1].size(); i += 2) {
                if (page[1][i].text().find(task_id) == std::string_view::npos) continue;
                auto claim = parse_unacked(page[1][i].text());
                if (claim && task_id_of(claim->payload) == task_id)
                    return MessageLocation{restore_queue(connection, claim->exchange, claim->routing_key), true};
            }
        } while (cursor != "0");
        auto names = known_queues(connection);
        names.insert("celery");
        for (const auto& name : names)
            for (int step : priority_steps) {
                std::string key = queue_key(name, step);
                for (long start = 0;; start += static_cast<long>(scan_chunk)) {
                    Reply items = connection.command({"LRANGE", key, std::to_string(start),
                                                      std::to_string(start + static_cast<long>(scan_chunk) - 1)});
                    for (std::size_t i = 0; i < items.size(); ++i) {
                        if (items[i].text().find(task_id) == std::string_view::npos) continue;
                        json payload = json::parse(items[i].text(), nullptr, false);
                        if (payload.is_object() && task_id_of(payload) == task_id) return MessageLocation{name, false};
                    }
                    if (items.size() < scan_chunk) break;
                }
            }
        return std::nullopt;
    });
}

std::unique_ptr<EventPublisher> RedisBroker::events(const std::string& hostname) {
    return std::make_unique<RedisEventPublisher>(url_, hostname);
}

std::unique_ptr<EventReceiver> RedisBroker::event_stream() {
    return std::make_unique<RedisEventReceiver>(url_);
}

}  // namespace ccmulti::broker::redis
