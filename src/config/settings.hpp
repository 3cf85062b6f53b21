// The typed settings of ccmulti, whatever file format, variable or flag they came from. Every value is a
// Setting<T>: empty until some layer sets it, and then remembering which one did ("ccmulti.toml:12",
// "$CCMULTI_CONCURRENCY", "command line -c", "default"), which `ccmulti config show` prints.
//
// Layers, lowest first: built-in defaults < configuration file < CCMULTI_* environment < command line.
// Per node: built-in < [defaults] < [nodes.NAME] < environment < command line (see node_settings.hpp).
// This issue only validates and stores these; later modules give them behaviour.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ccmulti::config {

template <class T>
struct Setting {
    std::optional<T> value;
    std::string origin;  // empty while unset

    bool is_set() const noexcept { return value.has_value(); }
    const T& operator*() const { return *value; }
    const T* operator->() const { return &*value; }
    T value_or(T fallback) const { return value ? *value : std::move(fallback); }
    void set(T v, std::string from) {
        value = std::move(v);
        origin = std::move(from);
    }
    // The merge rule of every layer: a value set higher up replaces this one, an unset one does not.
    void overlay(const Setting& over) {
        if (over.value) *this = over;
    }
};

// A task's program: a string is one shell command line (`shell`), an array is an argv run directly.
struct Command {
    std::vector<std::string> argv;
    bool shell = false;
    bool operator==(const Command&) const = default;
};

// What each node can set in [defaults], [nodes.NAME], CCMULTI_* variables and node options.
struct NodeSettings {
    Setting<std::int64_t> concurrency;                // pool processes, 1..1024
    Setting<std::vector<std::string>> queues;         // non-empty names without spaces or commas
    Setting<std::string> loglevel;                    // DEBUG, INFO, WARNING, ERROR or CRITICAL
    Setting<std::string> logfile, pidfile;            // templates: %n %N %h %p %d %i %I %%
    Setting<std::string> exec;                        // program line run instead of the native worker
    Setting<double> stop_timeout, start_timeout;      // seconds
    Setting<std::int64_t> max_tasks_per_child;        // tasks; unset = no limit
    Setting<std::int64_t> max_memory_per_child;       // KiB resident; unset = no limit
    std::map<std::string, Setting<std::string>> env;  // extra environment variables, merged name by name
    // Hot reload: [watch] gives every node's, these a node's own (supervisor/code_watch.hpp).
    Setting<std::vector<std::string>> watch, watch_ignore;  // paths; globs (added to the built-in ignores)
    Setting<std::int64_t> watch_debounce_ms;

    void overlay(const NodeSettings& over);
};

// kombu's transport options that ccmulti's Redis transport knows (Celery's broker_transport_options and
// result_backend_transport_options); the CLI adds them to the URL's query (broker/redis/url.hpp).
struct TransportSettings {
    Setting<std::string> master_name;          // Sentinel: the monitored master's name
    Setting<std::int64_t> visibility_timeout;  // seconds
};

struct BrokerSettings {
    Setting<std::string> url;  // unset: the embedded SQLite broker in the state dir
    TransportSettings transport_options;
};

struct ResultSettings {
    Setting<std::string> url;       // unset: the broker's store
    Setting<std::int64_t> expires;  // seconds; 0 = never
    TransportSettings transport_options;
};

struct TaskSettings {
    Setting<Command> command;
    Setting<std::string> plugin;  // shared object defining the task
    Setting<double> time_limit, soft_time_limit;
    Setting<bool> acks_late, ignore_result;
    Setting<std::string> queue;
};

// [watch]: what every node watches unless [defaults]/[nodes.NAME] or the command line say otherwise.
struct WatchSettings {
    Setting<std::vector<std::string>> paths, ignore;
    Setting<std::int64_t> debounce_ms;  // `debounce` (a duration) or `debounce_ms`
};

// [dashboard]: `ccmulti dashboard`'s defaults (its options win), and whether the master serves it.
struct DashboardSettings {
    Setting<bool> serve;                   // the group's master serves the dashboard (`start --dashboard`)
    Setting<std::string> bind;             // HOST:PORT
    Setting<std::string> auth_token_file;  // the token's file (a token itself does not belong in a config file)
};

struct Settings {
    std::string file;  // the configuration file read, as named in messages; empty when there is none

    Setting<std::string> app;  // name shown in process titles
    Setting<std::string> run_dir, log_dir, state_dir;
    Setting<std::string> workdir;  // base of relative paths
    Setting<std::string> user, group;
    // Celery's event settings: native nodes send task events (-E); `ccmulti call` sends task-sent.
    Setting<bool> worker_send_task_events, task_send_sent_event;

    NodeSettings defaults;                      // [defaults]
    std::map<std::string, NodeSettings> nodes;  // [nodes.NAME], by NAME as written
    std::vector<std::string> node_order;        // NAMEs in file order: what a bare `ccmulti start` starts
    NodeSettings overrides;                     // per-node values from CCMULTI_* variables: above every table

    BrokerSettings broker;
    ResultSettings results;
    std::map<std::string, TaskSettings> tasks;  // [tasks."NAME"]
    WatchSettings watch;
    DashboardSettings dashboard;
};

// Built-in values of the settings that have one outside a node (results.expires, watch.debounce_ms), with
// origin "default": the lowest layer. Per-node built-ins depend on the dirs: builtin_node_settings().
Settings builtin_settings();

// `over`'s top-level values replace `base`'s; tables merge key by key. Used to put the environment on top
// of the file.
void overlay(Settings& base, const Settings& over);

}  // namespace ccmulti::config
