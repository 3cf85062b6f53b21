// The node reserving from its broker: the prefetch window, claims, heartbeats, and the broker's reachability
// (worker/node.hpp).
#include <spdlog/spdlog.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>


#include "protocol/task_message.hpp"
#include "platform/systemd_notify.hpp"
#include "util/error.hpp"
#include "worker/node.hpp"
#include "worker/pool_child.hpp"

namespace ccmulti::worker {

namespace {

// Clamped to ±100 years: an eta in the year 9999 (or 1) must not overflow the steady clock's nanoseconds.
Clock::time_point steady_of(protocol::TimePoint when) {
    constexpr auto century = std::chrono::microseconds(std::int64_t{100} * 366 * 86400 * 1000000);
    auto delta = std::clamp<std::chrono::microseconds>(when - protocol::now(), -century, century);
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(delta);
}

}  // namespace

std::size_t Node::prefetch_limit() const {
    auto base = static_cast<std::size_t>(std::max(1, options_.prefetch_multiplier) * options_.concurrency);
    return holds_only_quick_tasks() ? base * quick_prefetch_boost : base;
}

void Node::fill(bool batch) {
    if (state_ != State::running) return;
    std::size_t held = ready_.size() + running_.size();
    std::size_t limit = prefetch_limit();
    std::size_t room = held < limit ? limit - held : 0;
    bool worth_it = !batch || room * 2 >= limit || (ready_.empty() && pool_.idle());
    if (room > 0 && worth_it) {
        try {
            auto deliveries = consumer_->reserve(room);
            bool drained = deliveries.size() < room;
            for (auto& delivery : deliveries) accept(std::move(delivery));
            if (drained) arm_eta_timer();
            broker_ok();
        } catch (const Error& e) {
            broker_failed("claiming tasks", e);
        }
    }
    // Idle, the limit is the plain window whatever ran last: a broker that pushes keeps the last one until the
    // node holds tasks again (no basic.qos round trips around every single call).
    if (!ready_.empty() || !running_.empty()) consumer_->set_window(prefetch_limit());
    dispatch();
}

void Node::arm_eta_timer() {
    if (eta_timer_) loop_.cancel(eta_timer_);
    eta_timer_ = 0;
    if (auto eta = consumer_->next_eta()) {
        eta_timer_ = loop_.at(steady_of(*eta), [this] {
            eta_timer_ = 0;
            fill();
        });
    }
}

void Node::schedule_heartbeat() {
    loop_.after(consumer_->heartbeat_interval(), [this] {
        if (state_ != State::running && state_ != State::warm) return;
        schedule_heartbeat();  // first: whatever happens below, the heartbeat goes on
        try {
            consumer_->heartbeat();
            broker_ok();
        } catch (const Error& e) {
            broker_failed("heartbeat", e);
        }
        report_broker();
        fill();
    });
}

void Node::report_broker() {
    auto down = consumer_->unavailable();
    if (!ready_announced_) {
        if (down) {
            if (down != broker_down_)
                spdlog::warn("{}: not ready: broker unavailable ({}); trying again in the background", options_.name,
                             *down);
            broker_down_ = down;
            platform::systemd_notify(fmt::format("STATUS=not ready: broker unavailable: {}", *down));
            return;
        }
        broker_down_.reset();
        ready_announced_ = true;
        events_->online();
        const auto& results = options_.broker.results_url;
        spdlog::info("{} ready: queues {}, concurrency {}, broker {}{}", options_.name, join_queues(),
                     options_.concurrency, connection_.broker->url(),
                     results.empty() ? "" : ", results " + broker::display_url(results));
        platform::systemd_notify(fmt::format("READY=1\nSTATUS=consuming {}", join_queues()));
        return;
    }
    if (down == broker_down_) return;
    broker_down_ = down;
    if (down) {
        spdlog::warn("{}: broker unavailable ({}); tasks held are kept, results wait", options_.name, *down);
        platform::systemd_notify(fmt::format("STATUS=broker unavailable: {}", *down));
    } else {
        spdlog::info("{}: broker reachable again", options_.name);
        platform::systemd_notify(fmt::format("STATUS=consuming {}", join_queues()));
    }
}

void Node::broker_failed(const char* what, const Error& e) {
    const std::string text = e.what();
    if (!broker_error_) broker_error_since_ = Clock::now();
    if (broker_error_ != text) {
        spdlog::error(
            "{}: broker error while {}: {}; the node goes on and tries again (logged once until it "
            "changes or clears)",
            options_.name, what, text);
        platform::systemd_notify(fmt::format("STATUS=broker error: {}", text));
    }
    broker_error_ = text;
    ++broker_error_count_;
    if (state_ != State::running || retry_timer_) return;
    auto delay = std::chrono::milliseconds(std::min(250 << std::min(broker_error_count_ - 1, 6), 10'000));
    retry_timer_ = loop_.after(delay, [this] {
        retry_timer_ = 0;
        fill();
    });
}

void Node::broker_ok() {
    if (!broker_error_) return;
    spdlog::info("{}: broker usable again after {:.1f}s ({} failed call(s))", options_.name,
                 std::chrono::duration<double>(Clock::now() - broker_error_since_).count(), broker_error_count_);
    broker_error_.reset();
    broker_error_count_ = 0;
    if (ready_announced_ && !broker_down_) platform::systemd_notify(fmt::format("STATUS=consuming {}", join_queues()));
}

void Node::accept(broker::Delivery delivery) {
    const auto& message = delivery.message;
    if (delivery.decode_error) {
        spdlog::error("message {} on queue {} cannot be run: {}", message.id, message.queue, *delivery.decode_error);
        auto meta = protocol::failure_result(message.id,
                                             protocol::ExceptionInfo::of("ContentDisallowed", *delivery.decode_error),
                                             *delivery.decode_error);
        auto result = described(message, std::move(meta));
        settle(std::move(delivery), true, std::move(result));
        return;
    }
    if (revoke_if_expired(delivery)) return;
    events_->received(delivery.message);
    ready_.push_back(std::move(delivery));
}

bool Node::revoke_if_expired(const broker::Delivery& delivery) {
    const auto& message = delivery.message;
    if (!message.expires || *message.expires >= protocol::now()) return false;
    spdlog::info("Task {}[{}] expired before it started: revoked", message.task, message.id);
    events_->revoked(message.id, true);
    std::optional<protocol::ResultMeta> result;
    if (!ignores_result(message)) result = described(message, protocol::revoked_result(message.id, "expired"));
    settle(delivery, true, std::move(result));
    return true;
}

}  // namespace ccmulti::worker
