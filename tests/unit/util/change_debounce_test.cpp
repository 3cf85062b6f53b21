#include "util/change_debounce.hpp"

#include <gtest/gtest.h>

namespace ccmulti {

using namespace std::chrono_literals;

namespace {
const ChangeDebounce::Clock::time_point t0{};  // any origin: the debounce never reads the clock
}

TEST(ChangeDebounce, NothingPendingNothingDue) {
    ChangeDebounce debounce;
    EXPECT_FALSE(debounce.pending());
    EXPECT_FALSE(debounce.due());
    EXPECT_FALSE(debounce.take(t0 + 10s));
}

TEST(ChangeDebounce, OneChangeIsDueAfterTheQuietPeriod) {
    ChangeDebounce debounce;  // 300 ms, 2 s
    debounce.note(t0);
    EXPECT_EQ(debounce.due(), t0 + 300ms);
    EXPECT_FALSE(debounce.take(t0 + 299ms));
    EXPECT_TRUE(debounce.pending());
    EXPECT_TRUE(debounce.take(t0 + 300ms));
    EXPECT_FALSE(debounce.pending());
    EXPECT_FALSE(debounce.take(t0 + 301ms));  // delivered once
}

TEST(ChangeDebounce, ABurstMovesTheTrailingEdgeAndIsOneBatch) {
    ChangeDebounce debounce;
    for (int i = 0; i < 20; ++i) debounce.note(t0 + i * 5ms);  // 20 writes in 100 ms
    EXPECT_EQ(debounce.due(), t0 + 95ms + 300ms);
    EXPECT_FALSE(debounce.take(t0 + 300ms));  // a timer armed for the first change finds it not due yet
    EXPECT_TRUE(debounce.take(t0 + 395ms));
    EXPECT_FALSE(debounce.due());
}

TEST(ChangeDebounce, TheCeilingBoundsAWriterThatNeverPauses) {
    ChangeDebounce debounce;
    std::vector<ChangeDebounce::Clock::time_point> fired;
    // A change every 50 ms for 5 s, and the caller's timer checked at each change and at the due time.
    for (auto now = t0; now <= t0 + 5s; now += 10ms) {
        if ((now - t0) % 50ms == 0ms) debounce.note(now);
        if (debounce.take(now)) fired.push_back(now);
    }
    ASSERT_EQ(fired.size(), 2u);
    EXPECT_EQ(fired[0], t0 + 2s);           // first change + ceiling
    EXPECT_EQ(fired[1], t0 + 2050ms + 2s);  // the next batch starts with the next change
    // After the writer stops, what is left comes on the trailing edge.
    debounce.note(t0 + 5s + 50ms);
    EXPECT_EQ(debounce.due(), t0 + 5s + 50ms + 300ms);
}

TEST(ChangeDebounce, AnOlderTimeDoesNotPullTheDeadlineEarlier) {
    ChangeDebounce debounce;
    debounce.note(t0 + 100ms);
    debounce.note(t0 + 50ms);
    EXPECT_EQ(debounce.due(), t0 + 400ms);
}

TEST(ChangeDebounce, PolicyIsTheCallers) {
    ChangeDebounce debounce({.quiet = 50ms, .ceiling = 120ms});
    debounce.note(t0);
    debounce.note(t0 + 100ms);
    EXPECT_EQ(debounce.due(), t0 + 120ms);
}

}  // namespace ccmulti
