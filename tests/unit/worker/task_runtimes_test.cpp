#include "worker/task_runtimes.hpp"

#include <gtest/gtest.h>

namespace ccmulti::worker {

TEST(TaskRuntimes, QuickOnlyAfterEnoughQuickRuns) {
    TaskRuntimes runtimes;
    EXPECT_FALSE(runtimes.is_quick("echo"));  // never seen
    for (int i = 1; i < TaskRuntimes::runs_to_know; ++i) runtimes.record("echo", 0.0001);
    EXPECT_FALSE(runtimes.is_quick("echo"));
    runtimes.record("echo", 0.0001);
    EXPECT_TRUE(runtimes.is_quick("echo"));
    EXPECT_FALSE(runtimes.is_quick("other"));
}

TEST(TaskRuntimes, SlowRunsEndIt) {
    TaskRuntimes runtimes;
    for (int i = 0; i < 20; ++i) runtimes.record("mixed", 0.0001);
    ASSERT_TRUE(runtimes.is_quick("mixed"));
    runtimes.record("mixed", 0.05);  // one slow run is enough to stop queueing behind it
    EXPECT_FALSE(runtimes.is_quick("mixed"));
    for (int i = 0; i < 30; ++i) runtimes.record("mixed", 0.0001);
    EXPECT_TRUE(runtimes.is_quick("mixed"));  // and quick again once recent runs are

    for (int i = 0; i < 10; ++i) runtimes.record("slow", 1.0);
    EXPECT_FALSE(runtimes.is_quick("slow"));
}

}  // namespace ccmulti::worker
