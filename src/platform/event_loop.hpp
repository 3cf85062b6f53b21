// The one event loop of a process: epoll over fds, signals through a signalfd (so handlers never run and
// nothing is lost to EINTR), and timers as deadlines that set epoll_wait's timeout. No busy polling: the
// loop sleeps in epoll_wait until an fd, a signal or the nearest deadline wakes it.
//
// Callbacks may add or remove watches and timers, and call stop(), while the loop dispatches.
#pragma once

#include <signal.h>
#include <sys/signalfd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "platform/fd.hpp"

namespace ccmulti {

class EventLoop {
public:
    using Clock = std::chrono::steady_clock;
    using FdCallback = std::function<void(std::uint32_t events)>;
    using SignalCallback = std::function<void(const signalfd_siginfo&)>;
    using TimerCallback = std::function<void()>;
    using TimerId = std::uint64_t;

    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // `events` are EPOLLIN/EPOLLOUT...; the fd stays owned by the caller and must be unwatched before closing.
    void watch(int fd, std::uint32_t events, FdCallback callback);
    void modify(int fd, std::uint32_t events);
    void unwatch(int fd);

    // Blocks `sig` in this process and delivers it here. The block is inherited across fork: children
    // must call reset_signals_for_exec() (spawn does).
    void on_signal(int sig, SignalCallback callback);

    TimerId after(Clock::duration delay, TimerCallback callback);
    TimerId at(Clock::time_point when, TimerCallback callback);
    void cancel(TimerId id);  // no-op for an unknown or fired timer

    // Runs `callback` once the current round of fd, signal and timer callbacks is done, before the loop sleeps
    // again (and before run() returns): work that many callbacks of one round add to (broker writes) is done
    // once, in a batch.
    void defer(TimerCallback callback) { deferred_.push_back(std::move(callback)); }

    void run();  // until stop()
    void stop() { running_ = false; }

private:
    void dispatch_signals();
    int next_timeout_ms() const;
    void fire_due_timers();
    void run_deferred();

    // A watch's epoch travels in its epoll events with the fd: when a callback unwatches and closes an fd and a
    // new one gets the same number and a watch, events still pending for the old one in this round are dropped
    // instead of reaching the new callback.
    struct Watch {
        std::uint32_t epoch = 0;
        std::shared_ptr<FdCallback> callback;
    };

    UniqueFd epoll_;
    UniqueFd signal_fd_;
    sigset_t signals_;
    std::map<int, Watch> watches_;
    std::uint32_t next_epoch_ = 1;
    std::map<int, SignalCallback> signal_callbacks_;
    std::multimap<Clock::time_point, TimerId> deadlines_;
    std::map<TimerId, std::pair<Clock::time_point, TimerCallback>> timers_;
    std::vector<TimerCallback> deferred_;
    TimerId next_timer_ = 1;
    bool running_ = false;
};

}  // namespace ccmulti
