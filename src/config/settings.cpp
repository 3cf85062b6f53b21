#include "config/settings.hpp"

#include <algorithm>

namespace ccmulti::config {

void NodeSettings::overlay(const NodeSettings& over) {
    concurrency.overlay(over.concurrency);
    queues.overlay(over.queues);
    loglevel.overlay(over.loglevel);
    logfile.overlay(over.logfile);
    pidfile.overlay(over.pidfile);
    exec.overlay(over.exec);
    stop_timeout.overlay(over.stop_timeout);
    start_timeout.overlay(over.start_timeout);
    max_tasks_per_child.overlay(over.max_tasks_per_child);
    max_memory_per_child.overlay(over.max_memory_per_child);
    for (const auto& [name, value] : over.env) env[name].overlay(value);
    watch.overlay(over.watch);
    watch_ignore.overlay(over.watch_ignore);
    watch_debounce_ms.overlay(over.watch_debounce_ms);
}

namespace {

void overlay_task(TaskSettings& base, const TaskSettings& over) {
    base.command.overlay(over.command);
    base.plugin.overlay(over.plugin);
    base.time_limit.overlay(over.time_limit);
    base.soft_time_limit.overlay(over.soft_time_limit);
    base.acks_late.overlay(over.acks_late);
    base.ignore_result.overlay(over.ignore_result);
    base.queue.overlay(over.queue);
}

}  // namespace

Settings builtin_settings() {
    Settings settings;
    settings.results.expires.set(86400, "default");
    settings.watch.debounce_ms.set(300, "default");
    return settings;
}

void overlay(Settings& base, const Settings& over) {
    if (!over.file.empty()) base.file = over.file;
    base.app.overlay(over.app);
    base.run_dir.overlay(over.run_dir);
    base.log_dir.overlay(over.log_dir);
    base.state_dir.overlay(over.state_dir);
    base.workdir.overlay(over.workdir);
    base.user.overlay(over.user);
    base.group.overlay(over.group);
    base.worker_send_task_events.overlay(over.worker_send_task_events);
    base.task_send_sent_event.overlay(over.task_send_sent_event);
    base.defaults.overlay(over.defaults);
    for (const auto& name : over.node_order) {
        if (std::find(base.node_order.begin(), base.node_order.end(), name) == base.node_order.end())
            base.node_order.push_back(name);
        base.nodes[name].overlay(over.nodes.at(name));
    }
    base.overrides.overlay(over.overrides);
    base.broker.url.overlay(over.broker.url);
    for (auto [to, from] : {std::pair{&base.broker.transport_options, &over.broker.transport_options},
                            std::pair{&base.results.transport_options, &over.results.transport_options}}) {
        to->master_name.overlay(from->master_name);
        to->visibility_timeout.overlay(from->visibility_timeout);
    }
    base.results.url.overlay(over.results.url);
    base.results.expires.overlay(over.results.expires);
    for (const auto& [name, task] : over.tasks) overlay_task(base.tasks[name], task);
    base.watch.paths.overlay(over.watch.paths);
    base.watch.ignore.overlay(over.watch.ignore);
    base.watch.debounce_ms.overlay(over.watch.debounce_ms);
    base.dashboard.serve.overlay(over.dashboard.serve);
    base.dashboard.bind.overlay(over.dashboard.bind);
    base.dashboard.auth_token_file.overlay(over.dashboard.auth_token_file);
}

}  // namespace ccmulti::config
