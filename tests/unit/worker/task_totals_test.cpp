#include "worker/task_totals.hpp"

#include <gtest/gtest.h>

#include "worker/task_runtimes.hpp"

namespace ccmulti::worker {

TEST(TaskTotals, TenThousandUnknownNamesStayBounded) {
    TaskTotals totals([](const std::string& task) { return task.starts_with("known."); });
    for (int i = 0; i < 10000; ++i) totals.count("made.up." + std::to_string(i));
    totals.count("known.a");
    totals.count("known.a");
    EXPECT_EQ(totals.totals().size(), TaskTotals::max_unregistered + 2);  // + known.a + the bucket
    EXPECT_EQ(totals.totals().at("known.a"), 2);
    EXPECT_EQ(totals.totals().at("made.up.0"), 1);
    EXPECT_EQ(totals.totals().at(TaskTotals::other_unregistered), 10000 - long(TaskTotals::max_unregistered));
    long sum = 0;
    for (const auto& [name, count] : totals.totals()) sum += count;
    EXPECT_EQ(sum, 10002);
    totals.count("made.up.1");  // one with its own line keeps counting there
    EXPECT_EQ(totals.totals().at("made.up.1"), 2);
}

TEST(TaskTotals, TheBucketNameFromTheBrokerIsNotASeparateLine) {
    TaskTotals totals([](const std::string&) { return false; });
    totals.count(TaskTotals::other_unregistered);
    EXPECT_EQ(totals.totals().size(), 1u);
    EXPECT_EQ(totals.totals().at(TaskTotals::other_unregistered), 1);
}

TEST(TaskRuntimes, TheTableIsCapped) {
    TaskRuntimes runtimes;
    for (std::size_t i = 0; i < TaskRuntimes::max_names + 50; ++i)
        for (int run = 0; run < TaskRuntimes::runs_to_know; ++run) runtimes.record(std::to_string(i), 0.0001);
    EXPECT_TRUE(runtimes.is_quick("0"));
    EXPECT_FALSE(runtimes.is_quick(std::to_string(TaskRuntimes::max_names + 10)));  // never recorded
}

}  // namespace ccmulti::worker
