#include "dashboard/metrics.hpp"

#include <fmt/format.h>

namespace ccmulti::dashboard {

using nlohmann::json;

std::string escape_label(const std::string& value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

namespace {

class MetricsWriter {
public:
    // Every family once: HELP and TYPE, then its samples.
    void family(const std::string& name, const char* type, const std::string& help) {
        text_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    }
    void sample(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels, double value) {
        text_ += name;
        if (!labels.empty()) {
            text_ += '{';
            for (std::size_t i = 0; i < labels.size(); ++i)
                text_ += fmt::format("{}{}=\"{}\"", i ? "," : "", labels[i].first, escape_label(labels[i].second));
            text_ += '}';
        }
        text_ += fmt::format(" {}\n", value);
    }
    std::string take() { return std::move(text_); }

private:
    std::string text_;
};

double metric_number(const json& value) {
    return value.is_number() ? value.get<double>() : 0.0;
}

void render_event_metrics(MetricsWriter& out, const EventMetrics& events) {
    out.family("ccmulti_events_receiving", "gauge", "Whether the dashboard receives the broker's Celery events now.");
    out.sample("ccmulti_events_receiving", {}, events.receiving ? 1 : 0);
    out.family("ccmulti_events_total", "counter", "Celery events received since the dashboard started.");
    out.sample("ccmulti_events_total", {}, static_cast<double>(events.events));
    out.family("ccmulti_tasks_total", "counter", "Task events received, by task name and the state they report.");
    for (const auto& [key, count] : events.tasks)
        out.sample("ccmulti_tasks_total", {{"name", key.first}, {"state", key.second}}, count);
    out.family("ccmulti_task_runtime_seconds", "histogram", "Runtime of successful tasks, from their events.");
    for (const auto& [name, histogram] : events.runtime) {
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < EventMetrics::buckets.size(); ++i) {
            cumulative += histogram.counts[i];
            out.sample("ccmulti_task_runtime_seconds_bucket",
                       {{"name", name}, {"le", fmt::format("{}", EventMetrics::buckets[i])}},
                       static_cast<double>(cumulative));
        }
        out.sample("ccmulti_task_runtime_seconds_bucket", {{"name", name}, {"le", "+Inf"}},
                   static_cast<double>(histogram.count));
        out.sample("ccmulti_task_runtime_seconds_sum", {{"name", name}}, histogram.sum);
        out.sample("ccmulti_task_runtime_seconds_count", {{"name", name}}, static_cast<double>(histogram.count));
    }
    out.family("ccmulti_node_heartbeat_age_seconds", "gauge", "Seconds since the node's last Celery event.");
    for (const auto& [node, age] : events.heartbeat_age)
        out.sample("ccmulti_node_heartbeat_age_seconds", {{"node", node}}, age);
}

}  // namespace

std::string render_metrics(const Snapshot& snapshot, const EventMetrics* events) {
    MetricsWriter out;
    out.family("ccmulti_up", "gauge", "Whether the dashboard reached the master and the broker in its last round.");
    out.sample("ccmulti_up", {}, snapshot.master && snapshot.broker ? 1 : 0);
    out.family("ccmulti_master_up", "gauge", "Whether the master of the run dir answered.");
    out.sample("ccmulti_master_up", {}, snapshot.master ? 1 : 0);
    out.family("ccmulti_broker_up", "gauge", "Whether the broker and the result store answered.");
    out.sample("ccmulti_broker_up", {}, snapshot.broker ? 1 : 0);

    const json nodes = snapshot.status.is_object() ? snapshot.status.value("nodes", json::array()) : json::array();
    struct NodeFamily {
        const char* name;
        const char* type;
        const char* help;
        std::function<std::optional<double>(const json&)> value;
    };
    const std::vector<NodeFamily> families = {
        {"ccmulti_node_up", "gauge", "Whether the node is ready.",
         [](const json& node) { return std::optional<double>(node.value("state", "") == "ready" ? 1 : 0); }},
        {"ccmulti_node_restarts_total", "counter", "Times the master restarted the node.",
         [](const json& node) { return std::optional<double>(metric_number(node.value("restarts", json(0)))); }},
        {"ccmulti_node_resident_memory_bytes", "gauge", "Memory of the node (its cgroup's, else its resident set).",
         [](const json& node) -> std::optional<double> {
             if (node["pid"].is_null()) return std::nullopt;
             return metric_number(node.contains("memory") ? node["memory"] : node.value("rss", json(0)));
         }},
        {"ccmulti_node_uptime_seconds", "gauge", "Seconds since the node's process started.",
         [](const json& node) -> std::optional<double> {
             if (node["pid"].is_null()) return std::nullopt;
             return metric_number(node.value("uptime", json(0)));
         }},
        {"ccmulti_node_concurrency", "gauge", "Pool processes the node runs.",
         [](const json& node) -> std::optional<double> {
             if (!node.contains("concurrency") || node["concurrency"].is_null()) return std::nullopt;
             return metric_number(node["concurrency"]);
         }},
    };
    for (const auto& family : families) {
        out.family(family.name, family.type, family.help);
        for (const auto& node : nodes)
            if (auto value = family.value(node)) out.sample(family.name, {{"node", node.value("name", "")}}, *value);
    }
    out.family("ccmulti_node_state", "gauge", "1 for the state the node is in.");
    for (const auto& node : nodes)
        out.sample("ccmulti_node_state", {{"node", node.value("name", "")}, {"state", node.value("state", "")}}, 1);

    out.family("ccmulti_queue_messages", "gauge", "Messages in the queue: ready, scheduled (eta) or reserved.");
    for (const auto& queue : snapshot.queues)
        for (const char* state : {"ready", "scheduled", "reserved"})
            out.sample("ccmulti_queue_messages", {{"queue", queue.value("name", "")}, {"state", state}},
                       metric_number(queue.value(state, json(0))));
    out.family("ccmulti_queue_consumers", "gauge", "Nodes consuming the queue.");
    for (const auto& queue : snapshot.queues)
        out.sample("ccmulti_queue_consumers", {{"queue", queue.value("name", "")}},
                   static_cast<double>(queue.value("consumers", json::array()).size()));

    out.family("ccmulti_tasks_finished_total", "counter", "Tasks the node finished, by task name (inspect stats).");
    for (const auto& [node, reply] : snapshot.stats.items()) {
        if (!reply.is_object() || !reply.contains("total") || !reply["total"].is_object()) continue;
        for (const auto& [task, count] : reply["total"].items())
            out.sample("ccmulti_tasks_finished_total", {{"node", node}, {"task", task}}, metric_number(count));
    }
    out.family("ccmulti_recent_results", "gauge", "States among the most recently stored task results.");
    for (const auto& [state, count] : snapshot.results_by_state)
        out.sample("ccmulti_recent_results", {{"state", state}}, static_cast<double>(count));
    if (events) render_event_metrics(out, *events);
    return out.take();
}

}  // namespace ccmulti::dashboard
