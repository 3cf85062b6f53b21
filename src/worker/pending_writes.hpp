// Broker writes that must succeed before a message may be acked: a task's result (for a retry, first the new
// message, then the RETRY state), and last the ack itself.
//
// Batched: writes added while the node's loop handles one round of events are sent together once the round is
// done (EventLoop::defer): every new message first, then every result and every ack (Consumer::settle: on Redis
// one MULTI, one round trip). The order within each message's writes is kept (its new message, its result, its
// ack), and a round of finished tasks costs one broker round trip, not three per task.
//
// While the broker is unreachable (Redis restarting) the writes wait here and are tried again with a growing
// delay (0.25 s doubling to 10 s), their messages unacked meanwhile. An outage costs time, never a task or a
// result. Each group is dropped once sent, so a retry is never published twice.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "broker/broker.hpp"
#include "platform/event_loop.hpp"

namespace ccmulti::worker {

// What settling one message takes; every part is optional.
struct Settlement {
    std::optional<protocol::TaskMessage> publish;  // a retry's new message
    std::optional<protocol::ResultMeta> result;
    std::optional<broker::Delivery> ack;
};

class PendingWrites {
public:
    PendingWrites(EventLoop& loop, broker::Broker& broker, broker::ResultStore& results, broker::Consumer& consumer)
        : loop_(loop), broker_(broker), results_(results), consumer_(consumer) {}

    // Sent after everything added before it, at the end of the loop's current round.
    void add(Settlement settlement);
    std::size_t size() const noexcept { return publishes_.size() + results_queue_.size() + acks_.size(); }

private:
    void schedule();
    void flush();

    EventLoop& loop_;
    broker::Broker& broker_;
    broker::ResultStore& results_;
    broker::Consumer& consumer_;
    std::vector<protocol::TaskMessage> publishes_;
    std::vector<protocol::ResultMeta> results_queue_;
    std::vector<broker::Delivery> acks_;
    bool deferred_ = false;
    EventLoop::TimerId timer_ = 0;
    std::chrono::milliseconds delay_{250};
    int failures_ = 0;        // in a row
    std::string last_error_;  // logged once per episode
};

}  // namespace ccmulti::worker
