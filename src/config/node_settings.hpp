// Effective settings of one node, merged layer by layer, each value keeping its origin:
//   built-in < [defaults] < [nodes.NAME] < CCMULTI_* variables < command line (-c, -c:w1, …)
// The command line is the celery-multi grammar's (naming/), so node options given there and [nodes.w1]
// tables merge by the same rules, and a bad option value fails with the same message as in a file.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "config/errors.hpp"
#include "config/settings.hpp"
#include "naming/cluster.hpp"

namespace ccmulti::config {

// Origins of values nobody set start with this.
inline constexpr std::string_view default_origin = "default";

// Built-in per-node values; pid and log files go to the run and log dirs the caller resolved.
NodeSettings builtin_node_settings(const std::filesystem::path& run_dir, const std::filesystem::path& log_dir);

// The [nodes] name configuring `node`: its full name ("w1@host", or "w1@%h" expanding to it), else its short
// name; nullptr when no table names it.
const std::string* node_table_name(const Settings& settings, const naming::Node& node);

// The per-node keys set by node options (-c, --queues, …), checked like a file's values; origins read
// "command line -c". Problems go to `errors`.
NodeSettings command_line_settings(const naming::Options& options, ConfigErrors& errors);

// All layers merged. Throws ConfigError (exit 2) when an option value is bad.
NodeSettings effective_node_settings(const Settings& settings, const naming::Node& node, const NodeSettings& builtin);

// The [nodes] names in file order: the nodes a bare `ccmulti start` manages.
std::vector<std::string> configured_node_names(const Settings& settings);

// Puts settings that did not come from the command line into `options` under their canonical flag
// (--concurrency=4), so a node's worker command line shows them; pid and log files always, other built-in
// values never. exec, the timeouts and env are the supervisor's business and are not worker options.
void add_worker_options(const NodeSettings& effective, naming::Options& options);

}  // namespace ccmulti::config
