#include "dashboard/event_monitor.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "util/error.hpp"

namespace ccmulti::dashboard {

namespace {

double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

EventMonitor::EventMonitor(broker::BrokerOptions broker, EventState& state)
    : broker_(std::move(broker)), state_(state), stop_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!stop_) throw SystemError("eventfd", errno);
    thread_ = std::thread([this] { run(); });
}

EventMonitor::~EventMonitor() {
    stop();
    if (thread_.joinable()) thread_.join();
}

void EventMonitor::stop() {
    const std::uint64_t one = 1;
    write_all(stop_.get(), &one, sizeof one);
}

bool EventMonitor::wait_stop(int fd, int timeout_ms) {
    pollfd fds[2] = {{stop_.get(), POLLIN, 0}, {fd, POLLIN, 0}};
    const nfds_t count = fd >= 0 ? 2 : 1;
    while (::poll(fds, count, timeout_ms) < 0)
        if (errno != EINTR) return true;  // cannot wait: give up rather than spin
    return (fds[0].revents & POLLIN) != 0;
}

void EventMonitor::run() {
    auto delay = std::chrono::milliseconds(500);
    std::string last_error;
    for (;;) {
        try {
            auto connection = broker::connect(broker_);
            auto receiver = connection.broker->event_stream();
            if (!receiver) {
                state_.set_source(false, "the broker (" + broker::display_url(broker_.url) +
                                             ") carries no Celery events; task states come from the result store");
                return;
            }
            state_.set_source(true, "");
            state_.set_problem(receiver->unavailable());
            last_error.clear();
            while (!wait_stop(receiver->fd(), -1)) {
                auto events = receiver->receive();
                const double now = unix_now();
                for (const auto& event : events) state_.apply(event, now);
                state_.set_problem(receiver->unavailable());
            }
            return;
        } catch (const std::exception& e) {
            std::string error = e.what();
            if (error != last_error) spdlog::warn("dashboard: cannot receive Celery events: {} (retrying)", error);
            last_error = error;
            state_.set_problem(error);
        }
        if (wait_stop(-1, static_cast<int>(delay.count()))) return;
        delay = std::min(delay * 2, std::chrono::milliseconds(10000));
    }
}

}  // namespace ccmulti::dashboard
