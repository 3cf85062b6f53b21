// The configuration schema: every key ccmulti understands, its type, its limits and its message when wrong.
// One set of rules for TOML, YAML, CCMULTI_* variables and node options, because all of them arrive as a
// document tree (document.hpp). Problems are collected, never thrown one by one.
//
//   top level   app run_dir log_dir state_dir workdir user group
//               [defaults] [nodes.NAME] [broker] [results] [tasks."NAME"] [watch]
//   per node    concurrency queues loglevel logfile pidfile exec stop_timeout start_timeout
//               max_tasks_per_child max_memory_per_child env watch watch_ignore watch_debounce
//
// docs/configuration.md documents each key; keep the two in step.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/document.hpp"
#include "config/settings.hpp"

namespace ccmulti::config {

// Reads a whole document into Settings. `root` is a table (null counts as empty); its positions name the file.
Settings read_settings(const Value& root, ConfigErrors& errors);

// Reads a table of per-node keys as found in [defaults] or [nodes.NAME]; `section` names it in messages
// ("[nodes.w1]"). Tables built from variables or flags (positions without lines) get messages without it.
NodeSettings read_node_settings(const Value& table, const std::string& section, ConfigErrors& errors);

// A per-node key and the node options that set it, as celery multi spells them (canonical flag first).
struct NodeKey {
    std::string_view key;
    std::vector<std::string_view> flags;
    bool typed;  // text from a flag or variable is typed like a plain YAML scalar (numbers); else verbatim
};
const std::vector<NodeKey>& node_keys();

// Known keys of a section: "" (top level), "node" ([defaults], [nodes.NAME]), "broker", "results", "task",
// "watch".
std::vector<std::string> known_keys(std::string_view section);

// How messages name a node's table: [nodes.w1], [nodes."w1@%h"].
std::string node_section(const std::string& name);

// Limits, shared with the documentation.
inline constexpr std::int64_t max_concurrency = 1024;
inline constexpr double max_node_timeout = 86400;         // seconds
inline constexpr double max_task_time_limit = 7 * 86400;  // seconds
inline constexpr std::int64_t max_debounce_ms = 60000;
inline constexpr std::int64_t max_result_expires = 10LL * 365 * 86400;

}  // namespace ccmulti::config
