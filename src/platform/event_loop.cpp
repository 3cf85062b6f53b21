#include "platform/event_loop.hpp"

#include <sys/epoll.h>

#include <array>
#include <cerrno>
#include <utility>

#include "util/error.hpp"

namespace ccmulti {

namespace {

std::uint64_t event_data(int fd, std::uint32_t epoch) {
    return (static_cast<std::uint64_t>(epoch) << 32) | static_cast<std::uint32_t>(fd);
}

}  // namespace

EventLoop::EventLoop() : epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (!epoll_) throw SystemError("epoll_create1", errno);
    sigemptyset(&signals_);
}

EventLoop::~EventLoop() = default;

void EventLoop::watch(int fd, std::uint32_t events, FdCallback callback) {
    const std::uint32_t epoch = next_epoch_++;
    if (next_epoch_ == 0) next_epoch_ = 1;  // 0 is no watch's
    epoll_event event{};
    event.events = events;
    event.data.u64 = event_data(fd, epoch);
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) throw SystemError("epoll_ctl(ADD)", errno);
    watches_[fd] = {epoch, std::make_shared<FdCallback>(std::move(callback))};
}

void EventLoop::modify(int fd, std::uint32_t events) {
    auto it = watches_.find(fd);
    epoll_event event{};
    event.events = events;
    event.data.u64 = event_data(fd, it == watches_.end() ? 0 : it->second.epoch);
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &event) != 0) throw SystemError("epoll_ctl(MOD)", errno);
}

void EventLoop::unwatch(int fd) {
    if (watches_.erase(fd)) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::on_signal(int sig, SignalCallback callback) {
    sigaddset(&signals_, sig);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, sig);
    if (::sigprocmask(SIG_BLOCK, &block, nullptr) != 0) throw SystemError("sigprocmask", errno);
    // An inherited SIG_IGN (a shell starts background jobs with INT and QUIT ignored) would discard the signal
    // before signalfd sees it; with SIG_DFL and the signal blocked, it waits for us instead.
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    ::sigaction(sig, &action, nullptr);
    signal_callbacks_[sig] = std::move(callback);
    const bool first = !signal_fd_;
    int fd = ::signalfd(first ? -1 : signal_fd_.get(), &signals_, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) throw SystemError("signalfd", errno);
    if (first) {
        signal_fd_.reset(fd);
        watch(fd, EPOLLIN, [this](std::uint32_t) { dispatch_signals(); });
    }
}

void EventLoop::dispatch_signals() {
    signalfd_siginfo info{};
    for (;;) {
        ssize_t n = ::read(signal_fd_.get(), &info, sizeof info);
        if (n < 0 && errno == EINTR) continue;
        if (n != static_cast<ssize_t>(sizeof info)) return;  // EAGAIN: drained
        auto it = signal_callbacks_.find(static_cast<int>(info.ssi_signo));
        if (it != signal_callbacks_.end()) {
            auto callback = it->second;  // the callback may replace itself
            callback(info);
        }
    }
}

EventLoop::TimerId EventLoop::after(Clock::duration delay, TimerCallback callback) {
    return at(Clock::now() + delay, std::move(callback));
}

EventLoop::TimerId EventLoop::at(Clock::time_point when, TimerCallback callback) {
    TimerId id = next_timer_++;
    timers_[id] = {when, std::move(callback)};
    deadlines_.emplace(when, id);
    return id;
}

void EventLoop::cancel(TimerId id) {
    auto it = timers_.find(id);
    if (it == timers_.end()) return;
    auto [first, last] = deadlines_.equal_range(it->second.first);
    for (auto d = first; d != last; ++d)
        if (d->second == id) {
            deadlines_.erase(d);
            break;
        }
    timers_.erase(it);
}

int EventLoop::next_timeout_ms() const {
    if (deadlines_.empty()) return -1;
    auto left = deadlines_.begin()->first - Clock::now();
    if (left <= Clock::duration::zero()) return 0;
    // Round up, so the loop never wakes a little early and spins until the deadline.
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    return ms > 86'400'000 ? 86'400'000 : static_cast<int>(ms);
}

void EventLoop::fire_due_timers() {
    const auto now = Clock::now();
    while (!deadlines_.empty() && deadlines_.begin()->first <= now && running_) {
        TimerId id = deadlines_.begin()->second;
        deadlines_.erase(deadlines_.begin());
        auto node = timers_.extract(id);
        if (!node.empty()) node.mapped().second();
    }
}

void EventLoop::run_deferred() {
    while (!deferred_.empty()) {
        auto batch = std::exchange(deferred_, {});
        for (auto& callback : batch) callback();
    }
}

void EventLoop::run() {
    running_ = true;
    std::array<epoll_event, 32> events{};
    while (running_) {
        run_deferred();
        if (!running_) break;
        int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), next_timeout_ms());
        if (n < 0) {
            if (errno == EINTR) continue;
            throw SystemError("epoll_wait", errno);
        }
        for (int i = 0; i < n && running_; ++i) {
            const auto& event = events[static_cast<std::size_t>(i)];
            auto it = watches_.find(static_cast<int>(event.data.u64 & 0xffffffffU));
            // Unwatched by an earlier callback in this round, or unwatched and the number watched again since.
            if (it == watches_.end() || it->second.epoch != static_cast<std::uint32_t>(event.data.u64 >> 32)) continue;
            auto callback = it->second.callback;  // keeps it alive if the callback unwatches itself
            (*callback)(event.events);
        }
        fire_due_timers();
    }
    run_deferred();  // what the last round left: the loop owner expects it done when run() returns
}

}  // namespace ccmulti
