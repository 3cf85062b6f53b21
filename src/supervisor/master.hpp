// The master: one process per group of nodes, one event loop, one reaper. It starts every node (through the
// node shim, supervisor/node_shim.hpp), tells `start` when each is ready or why it died, stops nodes on
// request (control socket), on SIGTERM/SIGINT/SIGQUIT, escalating by the stop plan, and exits when its last
// node is gone. It is a child subreaper, so orphans of its nodes come back to it and are reaped.
//
// A node's lifecycle (starting, ready, replacing, stopping, backoff…) is one table in supervisor/node_lifecycle.hpp:
// the master turns what happens into events and carries out the actions the table returns. A reload (`ccmulti
// reload`, SIGHUP, a code change) replaces nodes start-before-stop (MasterControl::reload). The master's code is
// split by concept over master*.cpp (supervisor/master_impl.hpp says which file holds what).
// A node in backoff keeps its pid-file lock (held by the master) so nobody else takes its name meanwhile.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "supervisor/group_locks.hpp"
#include "supervisor/node_spec.hpp"
#include "supervisor/restart_backoff.hpp"
#include "supervisor/stop_plan.hpp"

namespace ccmulti::supervisor {

// Something the master runs beside its nodes, on its own threads (the dashboard, `[dashboard] serve`): made on
// the master's process before its nodes and its control socket (what it throws fails the start; it must not
// wait for the master), logging into the master's log, told to stop() after the last node is gone, and
// destroyed after the control socket is closed (so a request of its own to the master is answered, or fails,
// instead of waiting). Its url() is in `status`.
class Companion {
public:
    virtual ~Companion() = default;
    virtual std::string url() const = 0;
    virtual void stop() = 0;
};

struct MasterConfig {
    std::vector<NodeSpec> nodes;
    std::filesystem::path run_dir;
    std::filesystem::path log_file;  // the master's own log
    bool foreground = false;         // print to the terminal; Ctrl+C semantics
    RestartPolicy restart;           // after a crash
    std::string app;                 // the `app` setting: the title's "[app]"; empty shows the node names
    // How the group was started (`ccmulti ARGS…` run in `invocation_cwd`), for a reload to build the nodes'
    // specs again from the same command line and configuration file: empty, a reload replaces nodes as they are.
    std::vector<std::string> invocation;
    std::filesystem::path invocation_cwd;
    std::function<std::unique_ptr<Companion>()> dashboard;  // none: no dashboard in the master
};

// The planner's switch: `ccmulti start …` with this set in its environment prints the nodes' specs as one JSON
// line ({"nodes":[…]}) and exits, starting nothing (a reload re-reads the configuration this way).
inline constexpr const char* reload_plan_env = "CCMULTI_RELOAD_PLAN";

// Receives the start report (supervisor/start_report.hpp); "done" comes last, once.
using ReportSink = std::function<void(const nlohmann::json& event)>;

// Runs the master until its last node is gone. Returns the exit code: 0, or 1 when a node failed to start.
int run_master(const MasterConfig& config, GroupLocks locks, ReportSink report);

// What the control server asks of the master (supervisor/control_server.hpp).
class MasterControl {
public:
    virtual ~MasterControl() = default;
    virtual nlohmann::json describe() const = 0;  // {"master": {...}, "nodes": [{...}]}

    struct StopResult {
        std::vector<std::string> stopping;     // now stopping (or already were)
        std::vector<std::string> not_running;  // known but already gone, or unknown to this master
    };
    // Names may be full ("w1@host") or short ("w1"); none means every node.
    virtual StopResult stop(const std::vector<std::string>& names, StopMode mode,
                            std::optional<std::chrono::milliseconds> timeout) = 0;

    // Node events for waiting clients: {"event":"signal","node","signal","pid"}, {"event":"gone","node",
    // "status","seconds"}, {"event":"stuck","node","error"}. Returns an id for unsubscribe.
    virtual int subscribe(std::function<void(const nlohmann::json&)> listener) = 0;
    virtual void unsubscribe(int id) = 0;
    virtual bool is_gone(const std::string& name) const = 0;  // terminal state (or unknown)

    // Restarts nodes: rolling (one at a time, the next once the replacement is ready; stops at the first
    // that does not come back), or all at once. Events carry "job": {"event":"restarting","job","node"},
    // {"event":"restarted","job","node","pid"}, and last {"event":"restart_done","job","ok","restarted":[...],
    // "failed":[{"node","error"}],"skipped":[...]}.
    // `specs`, when given, replace the restarted nodes' specs (`restart` with a changed command line, as celery
    // multi restart uses the options given): each takes effect when its node starts again. A spec whose pid file
    // differs from the running node's is refused (the lock could not move with it).
    struct RestartResult {
        int job = 0;  // 0: nothing to restart (restart_done is not emitted)
        std::vector<std::string> restarting;
        std::vector<std::string> not_running;
        std::vector<nlohmann::json> refused;  // {"node","error"}
    };
    virtual RestartResult restart(const std::vector<std::string>& names, bool all_at_once,
                                  const std::vector<NodeSpec>& specs) = 0;

    // Reloads nodes, the careful way (docs/supervisor.md, Reload): one at a time, each replacement started
    // beside the node and the old process stopped warm only once the replacement is ready (stop, then start,
    // for a node that cannot overlap); a replacement that fails is killed, the node serves on untouched, and the
    // job stops there. `configuration` (`ccmulti reload`, SIGHUP) reads the group's configuration again first:
    // nodes added to it start, nodes removed from it stop warm, nodes whose spec changed are replaced,
    // unchanged nodes are left alone unless named (or `everything`: `reload --all`); an invalid configuration
    // changes nothing. `code` (a code change: supervisor/code_watch) replaces the named nodes (all when none)
    // with the spec they run.
    // `reason` is logged ("SIGHUP", "change: proj/tasks.py (+3 more)"). Events carry "job":
    // {"event":"replacing","job","node","pid"}, {"event":"replaced","job","node","old_pid","pid"}, and last
    // {"event":"reload_done","job","ok","replaced":[{"node","old_pid","pid"}],"failed":[{"node","error",
    // "log_tail"}],"skipped":[...],"added":[...],"removed":[...],"config_errors":[...]}.
    struct ReloadResult {
        int job = 0;  // reload_done always follows (after the configuration was read again, when it is)
        std::vector<std::string> unknown;  // names this master does not have
    };
    enum class ReloadKind {
        code,           // a code change: the named nodes (all when none) with the spec they run
        configuration,  // the configuration read again: added, removed and changed nodes (and those named)
        everything,     // the same, and every other node replaced too (new code deployed: `reload --all`)
    };
    virtual ReloadResult reload(const std::vector<std::string>& names, const std::string& reason, ReloadKind kind) = 0;

    // Adds nodes to the running group (a second `ccmulti start` in the same run dir). Started nodes emit
    // {"event":"ready",...} or {"event":"failed",...} as in the start report.
    struct AddResult {
        std::vector<std::string> starting;
        std::vector<nlohmann::json> refused;  // {"node","error","pid"?}: already running, pid file held
    };
    virtual AddResult add(const std::vector<NodeSpec>& specs) = 0;
};

}  // namespace ccmulti::supervisor
