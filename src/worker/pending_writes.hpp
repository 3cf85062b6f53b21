// Broker writes that must succeed before a message may be acked: a task's result (for a retry, first the new
// message, then the RETRY state), and last the ack itself. They run at once, in order; while the broker is
// unreachable (Redis restarting) they wait here and are tried again with a growing delay (0.25 s doubling to
// 10 s), their messages unacked meanwhile. An outage costs time, never a task or a result. Each step is dropped
// once done, so a retry is never published twice.
#pragma once

#include <chrono>
#include <deque>
#include <functional>

#include "platform/event_loop.hpp"

namespace ccmulti::worker {

class PendingWrites {
public:
    using Step = std::function<void()>;  // throws Error when the broker cannot be reached

    explicit PendingWrites(EventLoop& loop) : loop_(loop) {}

    // Runs `steps` after everything added before them.
    void add(std::deque<Step> steps);
    std::size_t size() const noexcept { return pending_.size(); }

private:
    void flush();

    EventLoop& loop_;
    std::deque<std::deque<Step>> pending_;
    EventLoop::TimerId timer_ = 0;
    std::chrono::milliseconds delay_{250};
};

}  // namespace ccmulti::worker
