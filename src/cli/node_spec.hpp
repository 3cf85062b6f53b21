// From a node of the celery-multi grammar to what the supervisor runs (supervisor::NodeSpec) or stops
// (supervisor::StopTarget). The one place that reads node options for the supervisor: when the strict
// configuration (config/node_settings.hpp) provides effective per-node settings, switch these over.
//
//   --exec 'PROGRAM ARGS'   split like a shell would (no shell runs), %n %h %d expanded, %i → 0, %I → ""
//   (no --exec)             the native worker: `ccmulti worker -n NAME …` with the node's other options
//   -A/--app, no --exec     a Celery worker: `python3 -m celery -A APP worker …` (cli/celery_runner.hpp)
//   --result-backend URL    native nodes: checked here (broker::check_result_url), stored in by the worker
//   -Q / --queues           CCMULTI_QUEUES and the title      -c / --concurrency   CCMULTI_CONCURRENCY
//   --stop-timeout S        warm → SIGKILL for this node (default: none, a warm stop waits for running tasks)
//   --uid / --gid           as root: the user the node runs as (resolved by the caller, NodeSpec::run_as)
//   --workdir DIR           the node's cwd, and the base of relative pid/log files (default: the caller's cwd)
//   --watch PATH            hot reload: replace the node when PATH changes (repeatable; resolved against the
//                           caller's cwd; must exist); --watch-ignore GLOB (repeatable), --watch-debounce 300ms
#pragma once

#include <chrono>
#include <filesystem>

#include "broker/transport_options.hpp"
#include "cli/context.hpp"
#include "naming/cluster.hpp"
#include "supervisor/node_spec.hpp"
#include "supervisor/stop_nodes.hpp"

namespace ccmulti::cli {

// How a node without --exec runs the native worker: this very program (a fresh image on every start, so a
// rebuilt ccmulti is picked up) with the global options that locate its dirs and configuration.
struct NativeWorker {
    std::filesystem::path program;         // /proc/self/exe
    std::vector<std::string> global_args;  // "--run-dir", "/run/user/1000/ccmulti", "-C", "/etc/ccmulti.toml", ...
    // [results] url or $CCMULTI_RESULT_BACKEND, "" when unset: the worker reads it itself (from -C and its
    // environment); make_node_spec checks it, so a bad one fails `start`, not the node.
    std::string result_backend;
    // [broker] url or $CCMULTI_BROKER_URL (else ""), and the configuration's transport options, for the same
    // check of a Sentinel broker URL (one without a master name fails `start`, not the node).
    std::string broker_url{};
    broker::TransportOptions broker_transport{}, result_transport{};
};

// The native worker as `start` runs it for this invocation: its dirs (not created here) and configuration.
NativeWorker native_worker(const Context& context);

// What `start` executes for the node: the argv of make_node_spec, for `show` and `get`.
std::vector<std::string> node_command_line(const naming::Node& node, const NativeWorker& native);

// --watch-debounce and [watch] debounce: "300ms", "0.5s" or seconds ("0.5"), 0 to 60 s. UsageError naming
// `what` otherwise.
inline constexpr std::chrono::milliseconds max_watch_debounce{60'000};
std::chrono::milliseconds parse_debounce(const std::string& text, const std::string& what);

// Options a node has that are the supervisor's, not the worker's: not passed to `ccmulti worker`.
bool is_supervisor_option(const std::string& flag);

// Throws UsageError for a bad value.
supervisor::NodeSpec make_node_spec(const naming::Node& node, const std::filesystem::path& cwd,
                                    std::chrono::milliseconds start_secs, const NativeWorker& native);

supervisor::StopTarget make_stop_target(const naming::Node& node, const std::filesystem::path& cwd);

// The node's pid and log files as its main process uses them: absolute, relative ones against its --workdir.
struct NodeFiles {
    std::filesystem::path pidfile, logfile;
};
NodeFiles node_files(const naming::Node& node, const std::filesystem::path& cwd);

// "%n%I.log" as the node's main process uses it: %I → "", %i → "0".
std::string main_process_template(std::string text);

}  // namespace ccmulti::cli
