#include "supervisor/restart_backoff.hpp"

#include <gtest/gtest.h>

namespace ccmulti::supervisor {

using namespace std::chrono_literals;

TEST(RestartBackoff, DoublesFromInitialToTheCap) {
    RestartPolicy policy;
    EXPECT_EQ(RestartBackoff::base_delay(policy, 1), 500ms);
    EXPECT_EQ(RestartBackoff::base_delay(policy, 2), 1000ms);
    EXPECT_EQ(RestartBackoff::base_delay(policy, 8), 60000ms);  // 64 s capped
    EXPECT_EQ(RestartBackoff::base_delay(policy, 500), 60000ms);
}

TEST(RestartBackoff, JitterStaysWithinItsBandAndTheCap) {
    RestartPolicy policy;
    RestartBackoff backoff(policy, 42);
    for (int n = 1; n <= 20; ++n) {
        auto delay = backoff.next_delay(0s);
        auto base = RestartBackoff::base_delay(policy, n);
        EXPECT_GE(delay.count(), static_cast<long>(static_cast<double>(base.count()) * 0.8) - 1) << n;
        EXPECT_LE(delay, std::min<std::chrono::milliseconds>(policy.max, base * 6 / 5 + 1ms)) << n;
    }
    EXPECT_EQ(backoff.attempts(), 20);  // never gives up
}

TEST(RestartBackoff, AHealthyRunResetsTheCount) {
    RestartPolicy policy;
    policy.jitter = 0;
    RestartBackoff backoff(policy, 1);
    EXPECT_EQ(backoff.next_delay(1s), 500ms);
    EXPECT_EQ(backoff.next_delay(1s), 1000ms);
    EXPECT_EQ(backoff.next_delay(59s), 2000ms);
    EXPECT_EQ(backoff.next_delay(60s), 500ms);
    EXPECT_EQ(backoff.attempts(), 1);
}

}  // namespace ccmulti::supervisor
