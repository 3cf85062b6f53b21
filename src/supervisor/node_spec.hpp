// Everything the master needs to run one node, already resolved: no templates, no relative paths, no
// configuration layers. The CLI builds these (cli/node_spec.cpp); the supervisor never looks at options.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "platform/users.hpp"

namespace ccmulti::supervisor {

struct NodeSpec {
    std::string name;                 // "w1@host"
    std::vector<std::string> argv;    // the program and its arguments (argv[0] looked up on $PATH)
    std::vector<std::string> env;     // extra "KEY=VALUE" on top of the master's environment
    std::filesystem::path cwd;        // absolute
    std::filesystem::path pidfile;    // absolute
    std::filesystem::path logfile;    // absolute
    std::vector<std::string> queues;  // for the title and CCMULTI_QUEUES
    int concurrency = 0;              // 0: not set
    // Warm → KILL for this node; nullopt: a warm stop waits as long as the running tasks take.
    std::optional<std::chrono::milliseconds> stop_timeout;
    std::chrono::milliseconds start_secs{1'000};  // up this long without READY=1 counts as ready
    bool notifies = false;  // it says READY=1 itself (the native worker, once it consumes): start_secs does not apply
    // Not ready this long after it was started: `start` says so (exit 3) and the master keeps it starting.
    std::chrono::milliseconds start_timeout{60'000};
    // When set, the node is ready once this text appears in what it writes to its log this run (Celery's
    // "w1@host ready."); start_secs then does not apply.
    std::string ready_pattern;
    std::optional<Owner> run_as;  // root started it with --uid/--gid or `user`: the node runs as this user
    // Hot reload (supervisor/code_watch.hpp): a change below these absolute paths (directories, recursive, or
    // files) replaces the node; empty: nothing watched. `watch_ignore` is added to the built-in ignores
    // (platform/watch_ignore.hpp), ccmulti's own run, log and state files included (as absolute patterns).
    std::vector<std::filesystem::path> watch;
    std::vector<std::string> watch_ignore;
    std::chrono::milliseconds watch_debounce{300};  // quiet time after the last change of a burst
    // A second process of this node may run beside the first for a moment: a reload starts the replacement
    // before it stops the old one (docs/supervisor.md, Reload). False: stop, then start, as a restart does.
    bool can_overlap = false;
};

// Whether two specs run the same node the same way (a reload replaces a node only when its spec changed).
bool same_spec(const NodeSpec& a, const NodeSpec& b);

// For the control socket (`start` adding nodes to a running master). from_json throws on a missing field.
void to_json(nlohmann::json& out, const NodeSpec& spec);
void from_json(const nlohmann::json& in, NodeSpec& spec);

// Process titles, which the pid-file identity check relies on.
std::string node_title(const NodeSpec& spec);            // "ccmulti: node w1@host -Q high,low"
std::string node_title_prefix(const std::string& name);  // "ccmulti: node w1@host"
inline constexpr const char* any_node_title_prefix = "ccmulti: node";
inline constexpr const char* master_title_prefix = "ccmulti: master";

}  // namespace ccmulti::supervisor
