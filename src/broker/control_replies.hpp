// Celery's replies to the inspect commands a node answers through its mailbox (broker.hpp: RemoteControl), in the
// exact shapes `celery inspect` and app.control.inspect() print and parse (celery/worker/control.py,
// Request.info()). The same on every transport; pure functions: the node supplies what it knows.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "broker/broker.hpp"

namespace ccmulti::broker {

struct ActiveTask {
    TaskMessage message;
    std::string hostname;  // the node
    TimePoint started;
    bool acknowledged = false;  // late acks: false while running
    int worker_pid = 0;
};

// inspect active: [{"id", "name", "args", "kwargs", "type", "hostname", "time_start", "acknowledged",
// "delivery_info": {"exchange", "routing_key", "priority", "redelivered"}, "worker_pid"}, ...]
nlohmann::json active_reply(const std::vector<ActiveTask>& tasks);

// inspect registered: the task names, sorted.
nlohmann::json registered_reply(std::vector<std::string> names);

struct NodeStats {
    std::map<std::string, long> total;  // tasks done per name
    int pid = 0;
    long long clock = 0;
    long uptime_seconds = 0;
    int concurrency = 1;
    std::vector<int> processes;  // pool children
    int prefetch_count = 0;
    std::optional<double> soft_time_limit, hard_time_limit;
    long max_tasks_per_child = 0;  // 0: no limit ("N/A")
};

// inspect stats: {"total", "pid", "clock", "uptime", "pool": {...}, "broker": {...}, "prefetch_count", "rusage"};
// `broker` is what RemoteControl::broker_info() (or broker_info(url)) says of the broker.
nlohmann::json stats_reply(const NodeStats& stats, nlohmann::json broker);

// A remote-control request as a node's mailbox receives it (the body {"method", "arguments", "destination",
// "pattern", "matcher", "ticket", "reply_to"}, the message headers {"clock", "expires"}): nullopt when this node
// must not answer (expired, or destination/pattern names other nodes; malformed); else the answer, computed by
// `handler` (`ping` answered here, an unknown method {"error": "KeyError('m')"}, a throwing handler
// {"error": what}). `clock` takes the request's Lamport clock. The caller replies only when the request has a
// reply_to object (broadcast casts such as revoke have none).
std::optional<nlohmann::json> answer_control_request(const nlohmann::json& request, const nlohmann::json& headers,
                                                     const std::string& node, const RemoteControl::Handler& handler,
                                                     long long& clock);

// Two processes answering for one node name (a node being replaced: its new process runs beside the old one's
// warm stop) read as one node: lists (active, reserved, registered, …) are joined without duplicates; of other
// replies (stats, ping) an error gives way to an answer, and the newest process's wins (the smaller "uptime").
void add_node_reply(std::map<std::string, nlohmann::json>& replies, const std::string& node, nlohmann::json reply);

}  // namespace ccmulti::broker
