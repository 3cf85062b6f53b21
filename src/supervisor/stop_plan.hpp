// When a stopping node gets which signal. One deadline for everything a stop request covers:
//
//   t = 0             SIGTERM to the node (warm: finish running tasks)      --cold: SIGQUIT instead
//   deadline - grace  SIGQUIT to the node (cold: abort tasks, requeue them)  grace = min(5 s, timeout / 4)
//   deadline          SIGKILL to the node's whole process group
//   deadline + 5 s    give up waiting and report the process (e.g. stuck in D state) by name
//
// A later, colder or shorter request only ever moves things earlier: a second Ctrl+C sends SIGQUIT now.
#pragma once

#include <chrono>

namespace ccmulti::supervisor {

enum class StopMode { warm, cold, kill };

struct StopPlan {
    using Clock = std::chrono::steady_clock;
    Clock::time_point quit_at, kill_at, give_up_at;
};

inline constexpr std::chrono::milliseconds max_cold_grace{5'000};
inline constexpr std::chrono::milliseconds kill_grace{5'000};

StopPlan plan_stop(StopPlan::Clock::time_point now, std::chrono::milliseconds timeout, StopMode mode);

// The plan that applies when `later` is requested while `current` runs: each step at the earlier time.
StopPlan merge_plans(const StopPlan& current, const StopPlan& later);

}  // namespace ccmulti::supervisor
