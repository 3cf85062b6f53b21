// Claims (kombu's "unacked" messages) and giving them back, shared by the consumer (requeue, close) and anyone
// restoring the claims of a dead node (kombu's restore_visible).
//
// A claim is `unacked[delivery_tag] = [payload, exchange, routing_key]` plus `unacked_index[delivery_tag] = time`.
// A claim whose time is older than the visibility timeout belongs to a node presumed dead: it is pushed back to
// the right end of its queue (consumed next) with `redelivered` set, under kombu's `unacked_mutex`, so Python
// workers and ccmulti nodes never restore the same claim twice. Live ccmulti nodes refresh the time of their
// claims on every heartbeat, so their long tasks and held eta tasks are never restored under them; the restore
// checks the time again in the same atomic step, so a claim refreshed meanwhile stays where it is.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "broker/redis/connection.hpp"

namespace ccmulti::broker::redis {

struct UnackedEntry {
    nlohmann::json payload;
    std::string exchange, routing_key;
};

// `[payload, "exchange", "routing_key"]` with the payload text kept byte for byte.
std::string unacked_value(std::string_view payload, std::string_view exchange, std::string_view routing_key);
std::optional<UnackedEntry> parse_unacked(std::string_view value);

// Where a payload's delivery_info says it was routed: {exchange, routing_key}.
std::pair<std::string, std::string> routing_of(const nlohmann::json& payload);

// The payload as it goes back to a queue: `redelivered` set in headers and delivery_info (as kombu does) and a
// fresh delivery tag, so a late ack by the presumed-dead holder cannot remove the new holder's claim.
std::string redelivered_payload(nlohmann::json payload);

// The queue a claim goes back to (kombu's _lookup): the routing key for the default exchange "", else the first
// queue `_kombu.binding.<exchange>` binds to that routing key, else the routing key itself.
std::string restore_queue(Connection& connection, const std::string& exchange, const std::string& routing_key);

// The list key `payload` (as JSON) waits in when given back to `queue`: by its priority.
std::string restore_key(const nlohmann::json& payload, const std::string& queue);

// Gives back every claim older than `age` (the visibility timeout), under `unacked_mutex` (skipped when another
// process holds it). Returns how many messages went back to their queues.
std::size_t restore_visible(Connection& connection, std::chrono::seconds age);

// After an outage every claim looks old, live nodes' too. A node back from one restores nothing for this long:
// time for every other live node, cut off as long, to reconnect (its longest backoff, 36 s, and a connection
// timeout, 5 s) and re-assert its claims at once (a heartbeat, 10 s at most, to spare). A client, which cannot
// tell whether there was an outage, restores only claims older than the visibility timeout and this.
inline constexpr std::chrono::seconds outage_grace{36 + 5 + 10};

double unix_now();

}  // namespace ccmulti::broker::redis
