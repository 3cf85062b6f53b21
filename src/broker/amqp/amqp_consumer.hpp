// A consumer of RabbitMQ queues (made by AmqpBroker::consume), interoperable with Python Celery workers consuming
// the same queues: basic.consume on each queue (declared as kombu does: topology.hpp), and RabbitMQ pushes.
//
//  - Prefetch: basic.qos = ConsumerInfo::prefetch (the node's multiplier × concurrency), global for the channel
//    (as Celery sets it on RabbitMQ, so a change applies at once). Quorum queues refuse global QoS: with
//    x-queue-type=quorum in the URL, or once RabbitMQ refused it (540 NOT_IMPLEMENTED), the limit is per consumer
//    (each queue's consumer gets the window), and eta tasks held count against it. Deliveries wait here
//    until reserve() hands them out; reserve() never waits. Fairness across queues is RabbitMQ's (round robin
//    among a channel's consumers).
//  - The window: the node's set_window() (its limit, 8 times the plain one while it holds only quick tasks)
//    becomes the prefetch count, never below the plain one: with a window of 8, a drain of tasks that take
//    microseconds waits on RabbitMQ round trips. It goes up at once and down when the node holds a task that is
//    not quick (one basic.qos each time); an idle node keeps the last one. Per-consumer (quorum) limits stay plain.
//  - Acks: late, by the node after the result is stored (Consumer::settle); requeue() is basic.reject(requeue),
//    so a cold shutdown gives its tasks straight back. ack_many() acks a batch with one basic.ack(multiple) for
//    every tag up to the highest one that leaves no unsettled delivery below it (RabbitMQ's multiple=true acks
//    *all* unacked tags up to it), one basic.ack per tag above that. A tag is "<connection generation>.<delivery
//    tag>": an ack or reject for a delivery of an earlier connection does nothing (RabbitMQ gave it back when that
//    connection died, and it will be delivered again, redelivered).
//  - eta/countdown: a message due later is held here, and the prefetch count is raised by one for each held
//    message (basic.qos again, as Celery does), so waiting tasks never block the window for others; once due it
//    is handed out and the count comes down. next_eta() tells the node when.
//  - Connection loss (Link): heartbeats negotiated (the URL's heartbeat=, default 60 s), reconnect with backoff,
//    declarations, qos and consumers again. What this consumer held unacked is redelivered by RabbitMQ, to it or
//    another node; a task that was running then may run twice (AMQP is at-least-once). unavailable() says why
//    meanwhile.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <set>

#include "broker/amqp/link.hpp"
#include "broker/broker.hpp"

namespace ccmulti::broker::amqp {

class AmqpConsumer final : public Consumer {
public:
    AmqpConsumer(AmqpUrl url, const ConsumerInfo& info);
    ~AmqpConsumer() override;

    std::vector<Delivery> reserve(std::size_t max) override;
    void ack(const Delivery& delivery) override;
    void ack_many(const std::vector<Delivery>& deliveries) override;
    void set_window(std::size_t messages) override;
    void requeue(const Delivery& delivery) override;
    int wakeup_fd() const override { return link_->fd(); }
    void drain_wakeups() override;
    std::optional<TimePoint> next_eta() override;
    void heartbeat() override;
    std::chrono::seconds heartbeat_interval() const override { return std::chrono::seconds(10); }
    void close() override;
    std::optional<std::string> unavailable() const override { return link_->unavailable(); }

private:
    void setup(Connection& connection);
    void received(Message&& message);
    void settle_qos();  // the prefetch count the held eta messages call for
    // The delivery tag of `delivery` when it belongs to the current connection.
    std::optional<std::uint64_t> current_tag(const Delivery& delivery) const;

    ConsumerInfo info_;
    std::uint16_t prefetch_;
    std::uint16_t window_;                         // the node's wish (set_window), at least prefetch_
    std::uint16_t qos_ = 0;                        // what the broker has now
    bool per_consumer_qos_ = false;                // quorum queues: no global QoS
    std::map<std::string, std::string> queue_of_;  // consumer tag → queue
    std::set<std::uint64_t> unsettled_;            // delivery tags of this connection not acked or rejected yet
    std::deque<Delivery> ready_;
    std::multimap<TimePoint, Delivery> waiting_;  // eta in the future
    std::unique_ptr<Link> link_;
    bool closed_ = false;
};

}  // namespace ccmulti::broker::amqp
