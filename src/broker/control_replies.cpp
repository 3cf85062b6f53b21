#include "broker/control_replies.hpp"

#include <fnmatch.h>
#include <sys/resource.h>

#include <algorithm>

namespace ccmulti::broker {

using nlohmann::json;

namespace {

double seconds(const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

json rusage_reply() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return {{"utime", seconds(usage.ru_utime)}, {"stime", seconds(usage.ru_stime)}, {"maxrss", usage.ru_maxrss},
            {"ixrss", usage.ru_ixrss},          {"idrss", usage.ru_idrss},          {"isrss", usage.ru_isrss},
            {"minflt", usage.ru_minflt},        {"majflt", usage.ru_majflt},        {"nswap", usage.ru_nswap},
            {"inblock", usage.ru_inblock},      {"oublock", usage.ru_oublock},      {"msgsnd", usage.ru_msgsnd},
            {"msgrcv", usage.ru_msgrcv},        {"nsignals", usage.ru_nsignals},    {"nvcsw", usage.ru_nvcsw},
            {"nivcsw", usage.ru_nivcsw}};
}

bool names_node(const json& request, const std::string& node) {
    const json& destination = request.value("destination", json(nullptr));
    if (destination.is_array() && !destination.empty()) {
        for (const auto& name : destination)
            if (name.is_string() && name.get<std::string>() == node) return true;
        return false;
    }
    const json& pattern = request.value("pattern", json(nullptr));
    const json& matcher = request.value("matcher", json(nullptr));
    if (pattern.is_string() && matcher.is_string()) {
        // kombu's matchers: "glob" (fnmatch) and "pcre"; a regex is not worth a dependency here.
        if (matcher.get<std::string>() == "glob")
            return ::fnmatch(pattern.get<std::string>().c_str(), node.c_str(), 0) == 0;
        return false;
    }
    return true;
}

}  // namespace

std::optional<json> answer_control_request(const json& request, const json& headers, const std::string& node,
                                           const RemoteControl::Handler& handler, long long& clock) {
    if (!request.is_object() || !request.contains("method") || !request["method"].is_string()) return std::nullopt;
    if (headers.is_object()) {
        if (auto it = headers.find("clock"); it != headers.end() && it->is_number_integer())
            clock = std::max(clock, it->get<long long>());
        if (auto expires = headers.find("expires"); expires != headers.end() && expires->is_number()) {
            double when = expires->get<double>();
            if (when > 0 && when < protocol::to_unix(protocol::now())) return std::nullopt;
        }
    }
    if (!names_node(request, node)) return std::nullopt;
    std::string method = request["method"].get<std::string>();
    if (method == "ping") return json{{"ok", "pong"}};
    json arguments = request.value("arguments", json::object());
    if (arguments.is_null()) arguments = json::object();
    try {
        auto answer = handler ? handler(method, arguments) : std::nullopt;
        return answer ? *answer : json{{"error", "KeyError('" + method + "')"}};
    } catch (const std::exception& error) {
        return json{{"error", error.what()}};
    }
}

json active_reply(const std::vector<ActiveTask>& tasks) {
    json out = json::array();
    for (const auto& task : tasks) {
        const TaskMessage& message = task.message;
        out.push_back({{"id", message.id},
                       {"name", message.task},
                       {"args", message.args},
                       {"kwargs", message.kwargs},
                       {"type", message.task},
                       {"hostname", task.hostname},
                       {"time_start", protocol::to_unix(task.started)},
                       {"acknowledged", task.acknowledged},
                       {"delivery_info",
                        {{"exchange", ""},
                         {"routing_key", message.queue},
                         {"priority", message.priority},
                         {"redelivered", message.redelivered}}},
                       {"worker_pid", task.worker_pid}});
    }
    return out;
}

json registered_reply(std::vector<std::string> names) {
    std::sort(names.begin(), names.end());
    return names;
}

json stats_reply(const NodeStats& stats, json broker) {
    json total = json::object();
    for (const auto& [name, count] : stats.total) total[name] = count;
    auto limit = [](const std::optional<double>& value) { return value ? json(*value) : json(0); };
    return {
        {"total", total},
        {"pid", stats.pid},
        {"clock", std::to_string(stats.clock)},  // Celery sends the Lamport clock as a string
        {"uptime", stats.uptime_seconds},
        {"pool",
         {{"implementation", "ccmulti:prefork"},
          {"max-concurrency", stats.concurrency},
          {"processes", stats.processes},
          {"max-tasks-per-child", stats.max_tasks_per_child > 0 ? json(stats.max_tasks_per_child) : json("N/A")},
          {"put-guarded-by-semaphore", false},
          {"timeouts", json::array({limit(stats.soft_time_limit), limit(stats.hard_time_limit)})}}},
        {"broker", std::move(broker)},
        {"prefetch_count", stats.prefetch_count},
        {"rusage", rusage_reply()},
    };
}

void add_node_reply(std::map<std::string, nlohmann::json>& replies, const std::string& node, nlohmann::json reply) {
    auto [it, fresh] = replies.try_emplace(node, reply);
    if (fresh) return;
    nlohmann::json& have = it->second;
    auto is_error = [](const nlohmann::json& value) { return value.is_object() && value.contains("error"); };
    if (is_error(reply)) return;
    if (is_error(have)) {
        have = std::move(reply);
        return;
    }
    if (have.is_array() && reply.is_array()) {
        for (auto& item : reply)
            if (std::find(have.begin(), have.end(), item) == have.end()) have.push_back(std::move(item));
        return;
    }
    auto uptime = [](const nlohmann::json& value) {
        return value.is_object() && value.contains("uptime") && value["uptime"].is_number()
                   ? value["uptime"].get<double>()
                   : -1.0;
    };
    if (uptime(reply) >= 0 && (uptime(have) < 0 || uptime(reply) < uptime(have))) have = std::move(reply);
}

}  // namespace ccmulti::broker
