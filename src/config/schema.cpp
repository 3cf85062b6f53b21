#include "config/schema.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>

#include "config/value_reader.hpp"
#include "naming/template.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace ccmulti::config {

namespace {

// ---- sections ----

const std::vector<Key<NodeSettings>>& node_table_keys() {
    static const std::vector<Key<NodeSettings>> keys = {
        {"concurrency",
         [](Reader& r, const Field& f, NodeSettings& n) { store(n.concurrency, r.integer(f, 1, max_concurrency), f); }},
        {"queues", [](Reader& r, const Field& f, NodeSettings& n) { store(n.queues, read_queues(r, f), f); }},
        {"loglevel", [](Reader& r, const Field& f, NodeSettings& n) { store(n.loglevel, read_loglevel(r, f), f); }},
        {"logfile", [](Reader& r, const Field& f, NodeSettings& n) { store(n.logfile, read_template(r, f), f); }},
        {"pidfile", [](Reader& r, const Field& f, NodeSettings& n) { store(n.pidfile, read_template(r, f), f); }},
        {"exec", [](Reader& r, const Field& f, NodeSettings& n) { store(n.exec, r.nonempty(f), f); }},
        {"stop_timeout",
         [](Reader& r, const Field& f, NodeSettings& n) { store(n.stop_timeout, r.seconds(f, max_node_timeout), f); }},
        {"start_timeout",
         [](Reader& r, const Field& f, NodeSettings& n) { store(n.start_timeout, r.seconds(f, max_node_timeout), f); }},
        {"max_tasks_per_child",
         [](Reader& r, const Field& f, NodeSettings& n) {
             store(n.max_tasks_per_child, r.integer(f, 1, 1'000'000'000), f);
         }},
        {"max_memory_per_child",
         [](Reader& r, const Field& f, NodeSettings& n) {
             store(n.max_memory_per_child, r.integer(f, 1, std::int64_t{1} << 40), f);
         }},
        {"env", read_env},
        {"watch", [](Reader& r, const Field& f, NodeSettings& n) { store(n.watch, read_watch_list(r, f, "path"), f); }},
        {"watch_ignore", [](Reader& r, const Field& f,
                            NodeSettings& n) { store(n.watch_ignore, read_watch_list(r, f, "pattern"), f); }},
        {"watch_debounce",
         [](Reader& r, const Field& f, NodeSettings& n) {
             store(n.watch_debounce_ms, read_debounce(r, f, max_debounce_ms), f);
         }},
    };
    return keys;
}

// Defined with the section readers below; a key whose value is a table of its own reads it with them.
template <class Target>
void read_table(Reader& reader, const Value& table, const std::string& section, std::string_view section_id,
                const std::vector<Key<Target>>& keys, Target& target);
bool section_table(Reader& reader, const Field& field);

// A Sentinel master name as `sentinel monitor NAME …` takes it: one word.
std::optional<std::string> read_master_name(Reader& reader, const Field& field) {
    auto text = reader.nonempty(field);
    if (!text) return std::nullopt;
    if (has_space(*text) || has_control(*text) || text->find_first_of("&#;?=") != std::string::npos) {
        reader.problem(field, "not a Sentinel master name: " + describe(field.value));
        return std::nullopt;
    }
    return text;
}

const std::vector<Key<TransportSettings>>& transport_keys() {
    static const std::vector<Key<TransportSettings>> keys = {
        {"master_name",
         [](Reader& r, const Field& f, TransportSettings& t) { store(t.master_name, read_master_name(r, f), f); }},
        {"visibility_timeout",
         [](Reader& r, const Field& f, TransportSettings& t) {
             store(t.visibility_timeout, r.integer(f, 1, std::int64_t{1} << 30), f);
         }},
    };
    return keys;
}

void read_transport_options(Reader& reader, const Field& field, const std::string& section, TransportSettings& target) {
    if (section_table(reader, field))
        read_table(reader, field.value, "[" + section + ".transport_options]", "transport_options", transport_keys(),
                   target);
}

const std::vector<Key<BrokerSettings>>& broker_keys() {
    static const std::vector<Key<BrokerSettings>> keys = {
        {"url",
         [](Reader& r, const Field& f, BrokerSettings& b) {
             store(b.url, read_url(r, f, {"redis", "rediss", "sentinel", "amqp", "amqps", "pyamqp", "sqlite"}), f);
         }},
        {"transport_options", [](Reader& r, const Field& f,
                                 BrokerSettings& b) { read_transport_options(r, f, "broker", b.transport_options); }},
    };
    return keys;
}

const std::vector<Key<ResultSettings>>& result_keys() {
    static const std::vector<Key<ResultSettings>> keys = {
        {"url",
         [](Reader& r, const Field& f, ResultSettings& s) {
             store(s.url, read_url(r, f, {"redis", "rediss", "sentinel", "sqlite", "rpc"}), f);
         }},
        {"transport_options", [](Reader& r, const Field& f,
                                 ResultSettings& s) { read_transport_options(r, f, "results", s.transport_options); }},
        {"expires", [](Reader& r, const Field& f,
                       ResultSettings& s) { store(s.expires, r.integer(f, 0, max_result_expires), f); }},
    };
    return keys;
}

std::optional<Command> read_command(Reader& reader, const Field& field) {
    if (field.value.kind == Value::Kind::string) {
        auto text = reader.nonempty(field);
        if (!text) return std::nullopt;
        return Command{{*text}, true};
    }
    if (field.value.kind != Value::Kind::array) {
        reader.problem(field, "expected string (a shell command) or array (an argv), got " + describe(field.value));
        return std::nullopt;
    }
    auto argv = reader.strings(field, "argument");
    if (!argv) return std::nullopt;
    if (argv->empty()) {
        reader.problem(field, "needs at least the program to run");
        return std::nullopt;
    }
    return Command{*argv, false};
}

const std::vector<Key<TaskSettings>>& task_keys() {
    static const std::vector<Key<TaskSettings>> keys = {
        {"command", [](Reader& r, const Field& f, TaskSettings& t) { store(t.command, read_command(r, f), f); }},
        {"plugin", [](Reader& r, const Field& f, TaskSettings& t) { store(t.plugin, r.nonempty(f), f); }},
        {"time_limit",
         [](Reader& r, const Field& f, TaskSettings& t) { store(t.time_limit, r.seconds(f, max_task_time_limit), f); }},
        {"soft_time_limit", [](Reader& r, const Field& f,
                               TaskSettings& t) { store(t.soft_time_limit, r.seconds(f, max_task_time_limit), f); }},
        {"acks_late", [](Reader& r, const Field& f, TaskSettings& t) { store(t.acks_late, r.boolean(f), f); }},
        {"queue",
         [](Reader& r, const Field& f, TaskSettings& t) {
             auto name = r.string(f);
             if (name && check_queue_name(r, f, *name, false)) t.queue.set(*name, f.value.at.origin());
         }},
        {"ignore_result", [](Reader& r, const Field& f, TaskSettings& t) { store(t.ignore_result, r.boolean(f), f); }},
    };
    return keys;
}

const std::vector<Key<WatchSettings>>& watch_keys() {
    static const std::vector<Key<WatchSettings>> keys = {
        {"paths", [](Reader& r, const Field& f, WatchSettings& w) { store(w.paths, r.strings(f, "path"), f); }},
        {"ignore", [](Reader& r, const Field& f, WatchSettings& w) { store(w.ignore, r.strings(f, "pattern"), f); }},
        {"debounce", [](Reader& r, const Field& f,
                        WatchSettings& w) { store(w.debounce_ms, read_debounce(r, f, max_debounce_ms), f); }},
        {"debounce_ms", [](Reader& r, const Field& f,
                           WatchSettings& w) { store(w.debounce_ms, r.integer(f, 0, max_debounce_ms), f); }},
    };
    return keys;
}

const std::vector<Key<DashboardSettings>>& dashboard_keys() {
    static const std::vector<Key<DashboardSettings>> keys = {
        {"serve", [](Reader& r, const Field& f, DashboardSettings& d) { store(d.serve, r.boolean(f), f); }},
        {"bind", [](Reader& r, const Field& f, DashboardSettings& d) { store(d.bind, r.nonempty(f), f); }},
        {"auth_token_file",
         [](Reader& r, const Field& f, DashboardSettings& d) { store(d.auth_token_file, r.nonempty(f), f); }},
    };
    return keys;
}

// Where a key would have been valid, for "unknown key 'concurrency' at the top level — it belongs in …".
std::string home_of(const std::string& key, std::string_view section) {
    static const std::vector<std::pair<std::string_view, std::string_view>> sections = {
        {"", "the top level"},        {"node", "[defaults] or [nodes.NAME]"}, {"broker", "[broker]"},
        {"results", "[results]"},     {"task", "[tasks.\"NAME\"]"},           {"watch", "[watch]"},
        {"dashboard", "[dashboard]"},
    };
    std::vector<std::string> homes;
    for (const auto& [id, display] : sections) {
        if (id == section) continue;
        auto keys = known_keys(id);
        if (std::find(keys.begin(), keys.end(), key) != keys.end()) homes.emplace_back(display);
    }
    return join(homes, " or ");
}

void unknown_key(Reader& reader, const Entry& entry, const std::string& section, std::string_view section_id) {
    auto keys = known_keys(section_id);
    std::string where = section.empty() ? "at the top level" : "in " + section;
    std::string message = "unknown key '" + entry.key + "' " + where;
    if (auto guess = closest_match(entry.key, keys); !guess.empty())
        message += " — did you mean '" + guess + "'?";
    else if (auto home = home_of(entry.key, section_id); !home.empty())
        message += " — it belongs in " + home;
    else
        message += " (known keys: " + join(keys, ", ") + ")";
    reader.problem(entry.key_at, "", message);
}

// Reads each entry of `table` with the matching key of `keys`; unknown and repeated keys are errors.
template <class Target>
void read_table(Reader& reader, const Value& table, const std::string& section, std::string_view section_id,
                const std::vector<Key<Target>>& keys, Target& target) {
    std::map<std::string, int> seen;
    for (const auto& entry : table.table) {
        if (auto [it, fresh] = seen.emplace(entry.key, entry.key_at.line); !fresh) {
            reader.problem(entry.key_at, "",
                           "duplicate key '" + entry.key + "' " +
                               (section.empty() ? "at the top level" : "in " + section) + " (first at line " +
                               std::to_string(it->second) + ")");
            continue;
        }
        auto key = std::find_if(keys.begin(), keys.end(), [&](const auto& k) { return k.name == entry.key; });
        if (key == keys.end()) {
            unknown_key(reader, entry, section, section_id);
            continue;
        }
        key->read(reader, Field{entry.value, entry.key, label_for(entry, section)}, target);
    }
}

// A section's value: a table, or null (an empty YAML mapping such as "defaults:").
bool section_table(Reader& reader, const Field& field) {
    if (field.value.kind == Value::Kind::null) return false;
    return reader.expect(field, Value::Kind::table);
}

// What ccmulti accepts as a node name in [nodes]: what the command line can name and a pid file can carry.
bool check_node_name(Reader& reader, const Entry& entry) {
    const std::string& name = entry.key;
    auto bad = [&](const std::string& why) {
        reader.problem(entry.key_at, "", "bad node name \"" + name + "\" in [nodes]: " + why);
        return false;
    };
    if (name.empty()) return bad("empty");
    if (has_space(name) || has_control(name)) return bad("contains a space or control character");
    if (name.find_first_of("/:,") != std::string::npos) return bad("contains '/', ':' or ','");
    if (name.front() == '-') return bad("starts with '-', which the command line reads as an option");
    if (is_digits(name)) return bad("all digits, which the command line reads as a node count; use e.g. w" + name);
    if (std::count(name.begin(), name.end(), '@') > 1) return bad("more than one '@'");
    if (name.front() == '@') return bad("nothing before '@'");
    try {
        naming::expand(name, naming::host_keys("host.example"), "node name");
    } catch (const UsageError& e) {
        return bad(e.what());
    }
    return true;
}

void read_nodes(Reader& reader, const Field& field, Settings& settings) {
    if (!section_table(reader, field)) return;
    // "w1" and "w1@%h" name the same node: a name without a host gets this machine's.
    std::map<std::string, const Entry*> seen;
    for (const auto& entry : field.value.table) {
        if (!check_node_name(reader, entry)) continue;
        std::string same = entry.key.find('@') == std::string::npos ? entry.key + "@%h" : entry.key;
        if (auto [it, fresh] = seen.emplace(same, &entry); !fresh) {
            const Entry& first = *it->second;
            std::string where = " (first at line " + std::to_string(first.key_at.line) + ")";
            if (first.key != entry.key)
                where = " (same node as '" + first.key + "' at line " + std::to_string(first.key_at.line) + ")";
            reader.problem(entry.key_at, "", "duplicate node '" + entry.key + "' in [nodes]" + where);
            continue;
        }
        std::string section = node_section(entry.key);
        NodeSettings node;
        Field sub{entry.value, entry.key, label_for(entry, "[nodes]")};
        if (entry.value.kind != Value::Kind::null) {  // "w1:" alone in YAML lists a node with no settings
            if (!reader.expect(sub, Value::Kind::table)) continue;
            read_table(reader, entry.value, section, "node", node_table_keys(), node);
        }
        settings.nodes[entry.key] = std::move(node);
        settings.node_order.push_back(entry.key);
    }
}

void check_task(Reader& reader, const Entry& entry, const TaskSettings& task) {
    auto line_of = [&](const char* key) -> const Entry* {
        for (const auto& e : entry.value.table)
            if (e.key == key) return &e;
        return nullptr;
    };
    if (task.command.is_set() && task.plugin.is_set()) {
        const Entry* later = line_of("command");
        const Entry* plugin = line_of("plugin");
        if (plugin && later && plugin->key_at.line > later->key_at.line) later = plugin;
        reader.problem(later ? later->key_at : entry.key_at, "",
                       "task '" + entry.key + "' sets both 'command' and 'plugin'; a task runs one or the other");
    }
    if (task.time_limit.is_set() && task.soft_time_limit.is_set() && *task.soft_time_limit >= *task.time_limit) {
        const Entry* soft = line_of("soft_time_limit");
        reader.problem(soft ? soft->value.at : entry.key_at, "",
                       "task '" + entry.key + "': soft_time_limit (" + number_text(*task.soft_time_limit) +
                           ") must be less than time_limit (" + number_text(*task.time_limit) + ")");
    }
}

void read_tasks(Reader& reader, const Field& field, Settings& settings) {
    if (!section_table(reader, field)) return;
    for (const auto& entry : field.value.table) {
        if (entry.key.empty() || has_space(entry.key) || has_control(entry.key)) {
            reader.problem(entry.key_at, "", "bad task name \"" + entry.key + "\" in [tasks]: empty or has spaces");
            continue;
        }
        if (settings.tasks.contains(entry.key)) {
            reader.problem(entry.key_at, "", "duplicate task '" + entry.key + "' in [tasks]");
            continue;
        }
        Field sub{entry.value, entry.key, label_for(entry, "[tasks]")};
        if (!reader.expect(sub, Value::Kind::table)) continue;
        TaskSettings task;
        read_table(reader, entry.value, "[tasks." + toml_key(entry.key) + "]", "task", task_keys(), task);
        check_task(reader, entry, task);
        settings.tasks[entry.key] = std::move(task);
    }
}

template <class Section>
void read_section(Reader& reader, const Field& field, const char* id, const std::vector<Key<Section>>& keys,
                  Section& target) {
    if (section_table(reader, field)) read_table(reader, field.value, "[" + field.key + "]", id, keys, target);
}

const std::vector<Key<Settings>>& top_keys() {
    static const std::vector<Key<Settings>> keys = {
        {"app", [](Reader& r, const Field& f, Settings& s) { store(s.app, r.nonempty(f), f); }},
        {"run_dir", [](Reader& r, const Field& f, Settings& s) { store(s.run_dir, r.nonempty(f), f); }},
        {"log_dir", [](Reader& r, const Field& f, Settings& s) { store(s.log_dir, r.nonempty(f), f); }},
        {"state_dir", [](Reader& r, const Field& f, Settings& s) { store(s.state_dir, r.nonempty(f), f); }},
        {"workdir", [](Reader& r, const Field& f, Settings& s) { store(s.workdir, r.nonempty(f), f); }},
        {"user", [](Reader& r, const Field& f, Settings& s) { store(s.user, read_account(r, f), f); }},
        {"group", [](Reader& r, const Field& f, Settings& s) { store(s.group, read_account(r, f), f); }},
        {"worker_send_task_events",
         [](Reader& r, const Field& f, Settings& s) { store(s.worker_send_task_events, r.boolean(f), f); }},
        {"task_send_sent_event",
         [](Reader& r, const Field& f, Settings& s) { store(s.task_send_sent_event, r.boolean(f), f); }},
        {"defaults",
         [](Reader& r, const Field& f, Settings& s) { read_section(r, f, "node", node_table_keys(), s.defaults); }},
        {"nodes", read_nodes},
        {"broker",
         [](Reader& r, const Field& f, Settings& s) { read_section(r, f, "broker", broker_keys(), s.broker); }},
        {"results",
         [](Reader& r, const Field& f, Settings& s) { read_section(r, f, "results", result_keys(), s.results); }},
        {"tasks", read_tasks},
        {"watch", [](Reader& r, const Field& f, Settings& s) { read_section(r, f, "watch", watch_keys(), s.watch); }},
        {"dashboard", [](Reader& r, const Field& f,
                         Settings& s) { read_section(r, f, "dashboard", dashboard_keys(), s.dashboard); }},
    };
    return keys;
}

}  // namespace

std::string node_section(const std::string& name) {
    return "[nodes." + toml_key(name) + "]";
}

std::vector<std::string> known_keys(std::string_view section) {
    if (section.empty()) return names_of(top_keys());
    if (section == "node") return names_of(node_table_keys());
    if (section == "broker") return names_of(broker_keys());
    if (section == "results") return names_of(result_keys());
    if (section == "task") return names_of(task_keys());
    if (section == "watch") return names_of(watch_keys());
    if (section == "dashboard") return names_of(dashboard_keys());
    if (section == "transport_options") return names_of(transport_keys());
    return {};
}

const std::vector<NodeKey>& node_keys() {
    static const std::vector<NodeKey> keys = {
        {"concurrency", {"--concurrency", "-c"}, true},
        {"queues", {"--queues", "-Q"}, false},
        {"loglevel", {"--loglevel", "-l"}, false},
        {"logfile", {"--logfile", "-f"}, false},
        {"pidfile", {"--pidfile", "-p"}, false},
        {"exec", {"--exec"}, false},
        {"stop_timeout", {"--stop-timeout"}, true},
        {"start_timeout", {"--start-timeout"}, true},
        {"max_tasks_per_child", {"--max-tasks-per-child"}, true},
        {"max_memory_per_child", {"--max-memory-per-child"}, true},
        {"watch", {"--watch"}, false},
        {"watch_ignore", {"--watch-ignore"}, false},
        {"watch_debounce", {"--watch-debounce"}, true},
    };
    return keys;
}

Settings read_settings(const Value& root, ConfigErrors& errors) {
    Reader reader(errors);
    Settings settings;
    settings.file = root.at.source;
    if (root.kind == Value::Kind::null) return settings;
    if (root.kind != Value::Kind::table) {
        reader.problem(root.at, "", "expected a table of settings at the top level, got " + describe(root));
        return settings;
    }
    read_table(reader, root, "", "", top_keys(), settings);
    return settings;
}

NodeSettings read_node_settings(const Value& table, const std::string& section, ConfigErrors& errors) {
    Reader reader(errors);
    NodeSettings node;
    read_table(reader, table, section, "node", node_table_keys(), node);
    return node;
}

}  // namespace ccmulti::config
