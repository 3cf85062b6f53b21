#include "worker/pending_writes.hpp"

#include <spdlog/spdlog.h>

#include "util/error.hpp"

namespace ccmulti::worker {

namespace {

constexpr std::chrono::milliseconds first_delay{250};
constexpr std::chrono::milliseconds max_delay{10'000};

}  // namespace

void PendingWrites::add(std::deque<Step> steps) {
    pending_.push_back(std::move(steps));
    if (!timer_) flush();  // while a retry is scheduled, order is kept by waiting for it
}

void PendingWrites::flush() {
    while (!pending_.empty()) {
        auto& steps = pending_.front();
        try {
            for (; !steps.empty(); steps.pop_front()) steps.front()();
        } catch (const Error& e) {
            spdlog::warn("cannot reach the broker now ({}); {} finished task(s) stay unacked, trying again in {}ms",
                         e.what(), pending_.size(), delay_.count());
            timer_ = loop_.after(delay_, [this] {
                timer_ = 0;
                flush();
            });
            delay_ = std::min(delay_ * 2, max_delay);
            return;
        }
        pending_.pop_front();
    }
    delay_ = first_delay;
}

}  // namespace ccmulti::worker
