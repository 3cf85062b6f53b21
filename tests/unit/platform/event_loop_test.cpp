#include "platform/event_loop.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <utility>

namespace ccmulti {

TEST(EventLoop, TimersFireInOrderAndCancelledOnesDoNot) {
    EventLoop loop;
    std::vector<int> fired;
    loop.after(std::chrono::milliseconds(30), [&] { fired.push_back(3); });
    loop.after(std::chrono::milliseconds(10), [&] { fired.push_back(1); });
    auto cancelled = loop.after(std::chrono::milliseconds(20), [&] { fired.push_back(2); });
    loop.cancel(cancelled);
    loop.after(std::chrono::milliseconds(40), [&] { loop.stop(); });
    auto began = EventLoop::Clock::now();
    loop.run();
    EXPECT_EQ(fired, (std::vector<int>{1, 3}));
    EXPECT_GE(EventLoop::Clock::now() - began, std::chrono::milliseconds(40));
}

TEST(EventLoop, FdsAndSignalsWakeIt) {
    EventLoop loop;
    Pipe pipe = make_pipe();
    std::string got;
    loop.watch(pipe.read.get(), EPOLLIN, [&](std::uint32_t) {
        char c;
        ASSERT_EQ(read(pipe.read.get(), &c, 1), 1);
        got += c;
        loop.unwatch(pipe.read.get());
        kill(getpid(), SIGUSR1);
    });
    int signals = 0;
    loop.on_signal(SIGUSR1, [&](const signalfd_siginfo& info) {
        EXPECT_EQ(info.ssi_signo, static_cast<std::uint32_t>(SIGUSR1));
        ++signals;
        loop.stop();
    });
    ASSERT_EQ(write(pipe.write.get(), "x", 1), 1);
    loop.after(std::chrono::seconds(5), [&] { loop.stop(); });  // a safety net, not a sleep
    loop.run();
    EXPECT_EQ(got, "x");
    EXPECT_EQ(signals, 1);
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &unblock, nullptr);
}

TEST(EventLoop, DeferredWorkRunsOnceAfterTheRoundThatAddedIt) {
    EventLoop loop;
    Pipe first = make_pipe(), second = make_pipe();
    std::vector<std::string> order;
    int flushes = 0;
    auto flush = [&] {
        ++flushes;
        order.push_back("flush");
        loop.stop();
    };
    bool scheduled = false;
    auto on_readable = [&](const Pipe& pipe, const char* name) {
        return [&, name](std::uint32_t) {
            char c;
            ASSERT_EQ(read(pipe.read.get(), &c, 1), 1);
            order.push_back(name);
            if (!std::exchange(scheduled, true)) loop.defer(flush);
        };
    };
    loop.watch(first.read.get(), EPOLLIN, on_readable(first, "first"));
    loop.watch(second.read.get(), EPOLLIN, on_readable(second, "second"));
    // Both readable before the loop starts: one epoll round reports both, and the flush follows both.
    ASSERT_EQ(write(first.write.get(), "x", 1), 1);
    ASSERT_EQ(write(second.write.get(), "y", 1), 1);
    loop.after(std::chrono::seconds(5), [&] { loop.stop(); });  // a safety net, not a sleep
    loop.run();
    ASSERT_EQ(order.size(), 3u);
    EXPECT_EQ(order.back(), "flush");
    EXPECT_EQ(flushes, 1);
}

TEST(EventLoop, WorkDeferredBeforeRunIsDoneFirst) {
    EventLoop loop;
    bool done = false;
    loop.defer([&] {
        done = true;
        loop.defer([&] { loop.stop(); });  // deferred from deferred work: same round
    });
    loop.after(std::chrono::seconds(5), [&] { loop.stop(); });
    auto began = EventLoop::Clock::now();
    loop.run();
    EXPECT_TRUE(done);
    EXPECT_LT(EventLoop::Clock::now() - began, std::chrono::seconds(4));
}

TEST(EventLoop, AStaleEventForAReusedFdNumberIsDropped) {
    // Both pipes are readable, so one epoll_wait returns both events. Whichever callback runs first closes the
    // other pipe and watches a fresh one that gets the same fd number; the event still pending for the closed
    // pipe must not reach the fresh pipe's callback (nothing was written to it).
    EventLoop loop;
    Pipe first = make_pipe(), second = make_pipe(), fresh;
    ASSERT_EQ(::write(first.write.get(), "x", 1), 1);
    ASSERT_EQ(::write(second.write.get(), "x", 1), 1);
    int fresh_calls = 0, reused_number = -1, closed_number = -1;
    bool swapped = false;
    auto swap_other = [&](Pipe& other) {
        if (swapped) return;
        swapped = true;
        closed_number = other.read.get();
        loop.unwatch(closed_number);
        other.read.reset();
        fresh = make_pipe();
        reused_number = fresh.read.get();
        loop.watch(fresh.read.get(), EPOLLIN, [&](std::uint32_t) { ++fresh_calls; });
    };
    loop.watch(first.read.get(), EPOLLIN, [&](std::uint32_t) { swap_other(second); });
    loop.watch(second.read.get(), EPOLLIN, [&](std::uint32_t) { swap_other(first); });
    loop.after(std::chrono::milliseconds(0), [&] { loop.stop(); });
    loop.run();
    ASSERT_TRUE(swapped);
    EXPECT_EQ(reused_number, closed_number);  // the premise: the kernel handed out the same number
    EXPECT_EQ(fresh_calls, 0);
}

}  // namespace ccmulti
