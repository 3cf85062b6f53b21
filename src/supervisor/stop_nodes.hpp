// `ccmulti stop` / `stopwait` / `kill` from the client's side. Through the master when one answers on the
// control socket (it owns the stop plan and its children); from the pid files alone when none does: every
// pid is verified first (lock held, start time, process title), then signalled through a pidfd, so neither
// a recycled pid nor an unrelated process named by a stale file is ever signalled.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/stop_plan.hpp"

namespace ccmulti::supervisor {

struct StopTarget {
    std::string name;  // "w1@host"
    std::filesystem::path pidfile;
    std::optional<std::chrono::milliseconds> stop_timeout;  // nullopt: a warm stop has no deadline
};

struct StopRequest {
    std::vector<StopTarget> targets;  // empty: every node of the group (the master's, or every *.pid in run_dir)
    StopMode mode = StopMode::warm;
    std::optional<std::chrono::milliseconds> timeout;  // one deadline for all; default each node's stop_timeout
    bool wait = false;
};

struct StopOutcome {
    struct Line {
        std::string node, detail;
    };
    std::vector<Line> stopped;      // gone (with --wait), detail "exited with code 0 after 0.3s"
    std::vector<Line> signalled;    // without --wait: signal sent, detail "SIGTERM sent"
    std::vector<Line> not_running;  // detail: why (stale pid file ...)
    std::vector<Line> failed;       // could not be stopped
    std::vector<Line> leftovers;    // `kill` without a master: what a dead master's nodes left, killed
    bool through_master = false;
};

// `progress` receives lines worth showing while waiting (after the first second). A `kill` that finds no master
// also ends what a dead (SIGKILLed) master's nodes left behind (supervisor/containment.hpp: end_leftovers).
StopOutcome stop_nodes(const std::filesystem::path& run_dir, const StopRequest& request,
                       const std::function<void(const std::string&)>& progress);

}  // namespace ccmulti::supervisor
