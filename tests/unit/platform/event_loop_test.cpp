#include "platform/event_loop.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

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

}  // namespace ccmulti
