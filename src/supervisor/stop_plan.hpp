// When a stopping node gets which signal. One deadline for everything a stop request covers:
//
//   t = 0             SIGTERM to the node (warm: finish running tasks)      --cold: SIGQUIT instead
//   deadline - grace  SIGQUIT to the node (cold: abort tasks, requeue them)  grace = min(5 s, timeout / 4)
//   deadline          SIGKILL to the node's whole process group
//   deadline + 5 s    give up waiting and report the process (e.g. stuck in D state) by name
//
// Without a timeout a warm stop has no deadline: the node finishes its running tasks however long they take
// (celery multi's stopwait does the same; a service manager's own stop timeout is the deadline then). A cold stop
// without a timeout kills after cold_stop_deadline.
// A later, colder or shorter request only ever moves things earlier: a second Ctrl+C sends SIGQUIT now.
#pragma once

#include <chrono>
#include <optional>

namespace ccmulti::supervisor {

enum class StopMode { warm, cold, kill };

struct StopPlan {
    using Clock = std::chrono::steady_clock;
    static constexpr Clock::time_point never = Clock::time_point::max();
    Clock::time_point quit_at, kill_at, give_up_at;  // `never` for a warm stop without a deadline
};

inline constexpr std::chrono::milliseconds max_cold_grace{5'000};
inline constexpr std::chrono::milliseconds kill_grace{5'000};
inline constexpr std::chrono::milliseconds cold_stop_deadline{60'000};

// `timeout`: nullopt for no deadline.
StopPlan plan_stop(StopPlan::Clock::time_point now, std::optional<std::chrono::milliseconds> timeout, StopMode mode);

// The plan that applies when `later` is requested while `current` runs: each step at the earlier time.
StopPlan merge_plans(const StopPlan& current, const StopPlan& later);

}  // namespace ccmulti::supervisor
