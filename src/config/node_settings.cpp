#include "config/node_settings.hpp"

#include <algorithm>
#include <thread>
#include <type_traits>

#include "config/document.hpp"
#include "config/schema.hpp"
#include "naming/template.hpp"
#include "util/strings.hpp"

namespace ccmulti::config {

NodeSettings builtin_node_settings(const std::filesystem::path& run_dir, const std::filesystem::path& log_dir) {
    const std::string origin(default_origin);
    NodeSettings node;
    node.concurrency.set(std::max(1u, std::thread::hardware_concurrency()), origin + " (CPU count)");
    node.queues.set({"celery"}, origin);
    node.loglevel.set("WARNING", origin);
    node.pidfile.set((run_dir / "%n.pid").string(), origin + " (run dir)");
    node.logfile.set((log_dir / "%n%I.log").string(), origin + " (log dir)");
    node.start_timeout.set(60, origin);
    return node;
}

const std::string* node_table_name(const Settings& settings, const naming::Node& node) {
    for (const auto& name : settings.node_order) {
        if (name.find('@') == std::string::npos) continue;
        if (name == node.name) return &name;
        try {
            if (naming::expand(name, naming::host_keys(node.host), "node name") == node.name) return &name;
        } catch (const Error&) {
            // a bad template was reported when the file was read
        }
    }
    for (const auto& name : settings.node_order)
        if (name == node.shortname) return &name;
    return nullptr;
}

NodeSettings command_line_settings(const naming::Options& options, ConfigErrors& errors) {
    Value table;
    table.kind = Value::Kind::table;
    for (const auto& key : node_keys()) {
        // The last of a key's spellings on the line wins, like a repeated option.
        const naming::Option* given = nullptr;
        for (const auto& option : options.items())
            if (std::find(key.flags.begin(), key.flags.end(), option.name) != key.flags.end()) given = &option;
        if (!given) continue;
        Location at{"command line " + given->name, 0, 0};
        if (naming::is_repeatable(given->name)) {  // --watch A --watch B: an array, each value checked
            Value list;
            list.kind = Value::Kind::array;
            list.at = at;
            for (const auto& option : options.items()) {
                if (option.name != given->name) continue;
                Value item;
                item.kind = Value::Kind::string;
                item.string = option.value.value_or("");
                item.at = at;
                list.array.push_back(std::move(item));
            }
            table.table.push_back({std::string(key.key), at, std::move(list)});
            continue;
        }
        if (!given->value) {
            errors.add(at, "needs a value");
            continue;
        }
        table.table.push_back({std::string(key.key), at, text_value(*given->value, at, key.typed, errors)});
    }
    return read_node_settings(table, "", errors);
}

NodeSettings effective_node_settings(const Settings& settings, const naming::Node& node, const NodeSettings& builtin) {
    NodeSettings effective = builtin;
    effective.watch.overlay(settings.watch.paths);  // [watch]: every node's, below [defaults]
    effective.watch_ignore.overlay(settings.watch.ignore);
    effective.watch_debounce_ms.overlay(settings.watch.debounce_ms);
    effective.overlay(settings.defaults);
    if (const std::string* name = node_table_name(settings, node)) effective.overlay(settings.nodes.at(*name));
    effective.overlay(settings.overrides);
    ConfigErrors errors;
    effective.overlay(command_line_settings(node.options, errors));
    errors.throw_if_any();
    return effective;
}

std::vector<std::string> configured_node_names(const Settings& settings) {
    return settings.node_order;
}

void add_worker_options(const NodeSettings& effective, naming::Options& options) {
    auto add = [&](std::string_view key, const auto& setting, const std::string& text) {
        if (!setting.is_set()) return;
        const auto& all = node_keys();
        auto it = std::find_if(all.begin(), all.end(), [&](const NodeKey& k) { return k.key == key; });
        for (auto flag : it->flags)
            if (options.contains(std::string(flag))) return;  // given on the command line: leave as written
        bool always = key == "pidfile" || key == "logfile";
        if (!always && setting.origin.starts_with(default_origin)) return;
        options.set(std::string(it->flags.front()), text);
    };
    auto text_of = [](const auto& setting) {
        if constexpr (std::is_same_v<std::decay_t<decltype(*setting)>, std::string>)
            return setting.is_set() ? *setting : std::string();
        else
            return setting.is_set() ? std::to_string(*setting) : std::string();
    };
    add("concurrency", effective.concurrency, text_of(effective.concurrency));
    add("queues", effective.queues, effective.queues.is_set() ? join(*effective.queues, ",") : "");
    add("loglevel", effective.loglevel, text_of(effective.loglevel));
    add("max_tasks_per_child", effective.max_tasks_per_child, text_of(effective.max_tasks_per_child));
    add("max_memory_per_child", effective.max_memory_per_child, text_of(effective.max_memory_per_child));
    add("stop_timeout", effective.stop_timeout, text_of(effective.stop_timeout));
    add("start_timeout", effective.start_timeout, text_of(effective.start_timeout));
    add("exec", effective.exec, text_of(effective.exec));
    add("pidfile", effective.pidfile, text_of(effective.pidfile));
    add("logfile", effective.logfile, text_of(effective.logfile));
    add("watch_debounce", effective.watch_debounce_ms, std::to_string(effective.watch_debounce_ms.value_or(0)) + "ms");
    // Repeatable: one --watch per path, unless the command line gave its own.
    for (auto [flag, setting] :
         {std::pair{"--watch", &effective.watch}, std::pair{"--watch-ignore", &effective.watch_ignore}})
        if (setting->is_set() && !options.contains(flag))
            for (const auto& item : **setting) options.set(flag, item);
}

}  // namespace ccmulti::config
