// The master: one process per group of nodes, one event loop, one reaper. It starts every node (through the
// node shim, supervisor/node_shim.hpp), tells `start` when each is ready or why it died, stops nodes on
// request (control socket), on SIGTERM/SIGINT/SIGQUIT, escalating by the stop plan, and exits when its last
// node is gone. It is a child subreaper, so orphans of its nodes come back to it and are reaped.
//
// Node states:  starting ──READY=1 or up start_secs──► ready ──stop──► stopping ──reaped──► stopped
//                  │ exits                                 │ exits unexpectedly
//                  ▼                                       ▼
//                failed                                  exited
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
#include "supervisor/stop_plan.hpp"

namespace ccmulti::supervisor {

struct MasterConfig {
    std::vector<NodeSpec> nodes;
    std::filesystem::path run_dir;
    std::filesystem::path log_file;  // the master's own log
    bool foreground = false;         // print to the terminal; Ctrl+C semantics
};

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
};

}  // namespace ccmulti::supervisor
