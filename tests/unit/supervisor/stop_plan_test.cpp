#include "supervisor/stop_plan.hpp"

#include <gtest/gtest.h>

namespace ccmulti::supervisor {

using namespace std::chrono_literals;

TEST(StopPlan, WarmGetsMostOfTheTimeAndColdTheEnd) {
    auto now = StopPlan::Clock::now();
    auto plan = plan_stop(now, 60s, StopMode::warm);
    EXPECT_EQ(plan.kill_at, now + 60s);
    EXPECT_EQ(plan.quit_at, now + 55s);
    EXPECT_EQ(plan.give_up_at, now + 65s);
    auto short_plan = plan_stop(now, 2s, StopMode::warm);
    EXPECT_EQ(short_plan.quit_at, now + 1500ms);
}

TEST(StopPlan, ColdQuitsNowAndKillKillsNow) {
    auto now = StopPlan::Clock::now();
    EXPECT_EQ(plan_stop(now, 10s, StopMode::cold).quit_at, now);
    EXPECT_EQ(plan_stop(now, 10s, StopMode::cold).kill_at, now + 10s);
    EXPECT_EQ(plan_stop(now, 10s, StopMode::kill).kill_at, now);
}

TEST(StopPlan, LaterRequestsOnlyMoveThingsEarlier) {
    auto now = StopPlan::Clock::now();
    auto merged = merge_plans(plan_stop(now, 60s, StopMode::warm), plan_stop(now + 1s, 60s, StopMode::cold));
    EXPECT_EQ(merged.quit_at, now + 1s);
    EXPECT_EQ(merged.kill_at, now + 60s);
}

}  // namespace ccmulti::supervisor
