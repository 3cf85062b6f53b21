#include "worker/pending_writes.hpp"

#include <spdlog/spdlog.h>

#include "util/error.hpp"

namespace ccmulti::worker {

namespace {

constexpr std::chrono::milliseconds first_delay{250};
constexpr std::chrono::milliseconds max_delay{10'000};

}  // namespace

void PendingWrites::add(Settlement settlement) {
    if (settlement.publish) publishes_.push_back(std::move(*settlement.publish));
    if (settlement.result) results_queue_.push_back(std::move(*settlement.result));
    if (settlement.ack) acks_.push_back(std::move(*settlement.ack));
    schedule();
}

void PendingWrites::schedule() {
    if (deferred_ || timer_) return;  // while a retry is scheduled, order is kept by waiting for it
    deferred_ = true;
    loop_.defer([this] {
        deferred_ = false;
        flush();
    });
}

void PendingWrites::flush() {
    try {
        // One at a time: a new message is rare (a retry), and one sent is one never sent again.
        while (!publishes_.empty()) {
            broker_.publish(publishes_.front());
            publishes_.erase(publishes_.begin());
        }
        if (!results_queue_.empty() || !acks_.empty()) consumer_.settle(results_, results_queue_, acks_);
        results_queue_.clear();
        acks_.clear();
        delay_ = first_delay;
        if (failures_ > 0) spdlog::info("finished tasks written to the broker after {} failed attempt(s)", failures_);
        failures_ = 0;
        last_error_.clear();
    } catch (const Error& e) {
        // Once per episode, and again when the reason changes: a full disk retried for an hour is one line.
        if (e.what() != last_error_)
            spdlog::warn(
                "cannot write to the broker now ({}); {} finished task(s) stay unacked, trying again in "
                "{}ms, doubling to {}s",
                e.what(), acks_.size(), delay_.count(), max_delay.count() / 1000);
        last_error_ = e.what();
        ++failures_;
        timer_ = loop_.after(delay_, [this] {
            timer_ = 0;
            flush();
        });
        delay_ = std::min(delay_ * 2, max_delay);
    }
}

}  // namespace ccmulti::worker
