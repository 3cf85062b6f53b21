#include "config/json.hpp"

namespace ccmulti::config {

namespace {

template <class T>
nlohmann::json value_json(const T& value) {
    if constexpr (std::is_same_v<T, Command>)
        return value.shell ? nlohmann::json(value.argv.front()) : nlohmann::json(value.argv);
    else
        return value;
}

template <class T>
nlohmann::json sourced(const Setting<T>& setting) {
    if (!setting.is_set()) return {{"value", nullptr}, {"from", "default"}};
    return {{"value", value_json(*setting)}, {"from", setting.origin}};
}

nlohmann::json transport_json(const TransportSettings& options) {
    return {{"master_name", sourced(options.master_name)}, {"visibility_timeout", sourced(options.visibility_timeout)}};
}

}  // namespace

nlohmann::json to_json(const NodeSettings& node) {
    nlohmann::json env = nlohmann::json::object();
    for (const auto& [name, value] : node.env) env[name] = sourced(value);
    return {{"concurrency", sourced(node.concurrency)},
            {"queues", sourced(node.queues)},
            {"loglevel", sourced(node.loglevel)},
            {"logfile", sourced(node.logfile)},
            {"pidfile", sourced(node.pidfile)},
            {"exec", sourced(node.exec)},
            {"stop_timeout", sourced(node.stop_timeout)},
            {"start_timeout", sourced(node.start_timeout)},
            {"max_tasks_per_child", sourced(node.max_tasks_per_child)},
            {"max_memory_per_child", sourced(node.max_memory_per_child)},
            {"env", env},
            {"watch", sourced(node.watch)},
            {"watch_ignore", sourced(node.watch_ignore)},
            {"watch_debounce_ms", sourced(node.watch_debounce_ms)}};
}

nlohmann::json to_json(const TaskSettings& task) {
    return {{"command", sourced(task.command)},
            {"plugin", sourced(task.plugin)},
            {"time_limit", sourced(task.time_limit)},
            {"soft_time_limit", sourced(task.soft_time_limit)},
            {"acks_late", sourced(task.acks_late)},
            {"ignore_result", sourced(task.ignore_result)},
            {"queue", sourced(task.queue)}};
}

nlohmann::json to_json(const Settings& settings) {
    nlohmann::json nodes = nlohmann::json::object(), tasks = nlohmann::json::object();
    for (const auto& name : settings.node_order) nodes[name] = to_json(settings.nodes.at(name));
    for (const auto& [name, task] : settings.tasks) tasks[name] = to_json(task);
    return {{"file", settings.file.empty() ? nlohmann::json(nullptr) : nlohmann::json(settings.file)},
            {"app", sourced(settings.app)},
            {"run_dir", sourced(settings.run_dir)},
            {"log_dir", sourced(settings.log_dir)},
            {"state_dir", sourced(settings.state_dir)},
            {"workdir", sourced(settings.workdir)},
            {"user", sourced(settings.user)},
            {"group", sourced(settings.group)},
            {"worker_send_task_events", sourced(settings.worker_send_task_events)},
            {"task_send_sent_event", sourced(settings.task_send_sent_event)},
            {"defaults", to_json(settings.defaults)},
            {"nodes", nodes},
            {"node_order", settings.node_order},
            {"broker",
             {{"url", sourced(settings.broker.url)},
              {"transport_options", transport_json(settings.broker.transport_options)}}},
            {"results",
             {{"url", sourced(settings.results.url)},
              {"expires", sourced(settings.results.expires)},
              {"transport_options", transport_json(settings.results.transport_options)}}},
            {"tasks", tasks},
            {"watch",
             {{"paths", sourced(settings.watch.paths)},
              {"ignore", sourced(settings.watch.ignore)},
              {"debounce_ms", sourced(settings.watch.debounce_ms)}}},
            {"dashboard",
             {{"serve", sourced(settings.dashboard.serve)},
              {"bind", sourced(settings.dashboard.bind)},
              {"auth_token_file", sourced(settings.dashboard.auth_token_file)}}}};
}

nlohmann::json values_only(const nlohmann::json& document) {
    if (document.is_object()) {
        if (document.size() == 2 && document.contains("value") && document.contains("from")) return document["value"];
        nlohmann::json out = nlohmann::json::object();
        for (const auto& [key, value] : document.items()) out[key] = values_only(value);
        return out;
    }
    if (document.is_array()) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& item : document) out.push_back(values_only(item));
        return out;
    }
    return document;
}

}  // namespace ccmulti::config
