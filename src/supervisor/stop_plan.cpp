#include "supervisor/stop_plan.hpp"

#include <algorithm>

namespace ccmulti::supervisor {

StopPlan plan_stop(StopPlan::Clock::time_point now, std::optional<std::chrono::milliseconds> deadline, StopMode mode) {
    if (!deadline && mode == StopMode::warm) return {StopPlan::never, StopPlan::never, StopPlan::never};
    auto timeout = std::max(deadline.value_or(cold_stop_deadline), std::chrono::milliseconds::zero());
    StopPlan plan;
    plan.kill_at = mode == StopMode::kill ? now : now + timeout;
    auto grace = std::min(max_cold_grace, timeout / 4);
    plan.quit_at = mode == StopMode::warm ? plan.kill_at - grace : now;
    plan.give_up_at = plan.kill_at + kill_grace;
    return plan;
}

StopPlan merge_plans(const StopPlan& current, const StopPlan& later) {
    return {std::min(current.quit_at, later.quit_at), std::min(current.kill_at, later.kill_at),
            std::min(current.give_up_at, later.give_up_at)};
}

}  // namespace ccmulti::supervisor
