// Celery's events on RabbitMQ (broker.hpp: EventPublisher, EventReceiver), as Celery's EventDispatcher and
// EventReceiver do it through kombu (celery/events/event.py, dispatcher.py, receiver.py):
//   exchange:  `celeryev`, topic, durable, not auto-deleted (kombu's Exchange defaults; declared by publisher
//              and receiver alike).
//   message:   routing key = the event type with '-' → '.' ("worker.heartbeat"), or "task.multi" for a batch of
//              task events (the same batching as the Redis publisher, broker.hpp); the body is the JSON event, or
//              a JSON list of them; content_type application/json, content_encoding utf-8, delivery_mode 1
//              (transient), headers {"hostname": NODE}. No expiration: Celery sets none on events.
//   receiver:  a queue celeryev.<uuid> (not durable, auto-deleted, x-message-ttl 5 s and x-expires 60 s as
//              Celery's event_queue_ttl / event_queue_expires) bound to `celeryev` with "#", consumed without
//              acks: what `celery events` and Flower declare.
// The publisher has a connection of its own, opened at the first flush with a short timeout, and publishes
// without confirms: the node never waits on RabbitMQ for an event. Each flush first reads what the broker sent
// (heartbeats, a close), so a connection the broker dropped while the node was idle is noticed and made again at
// once; while RabbitMQ cannot be reached, events are dropped and counted, and connecting is retried with backoff.
// The receiver is a Link (link.hpp): a stable fd across reconnects.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker/amqp/connection.hpp"
#include "broker/amqp/link.hpp"
#include "broker/broker.hpp"

namespace ccmulti::broker::amqp {

class AmqpEventPublisher final : public EventPublisher {
public:
    AmqpEventPublisher(AmqpUrl url, std::string hostname);
    ~AmqpEventPublisher() override;
    AmqpEventPublisher(const AmqpEventPublisher&) = delete;
    AmqpEventPublisher& operator=(const AmqpEventPublisher&) = delete;

    void send(std::string_view type, std::string event) override;
    void flush() override;
    std::size_t dropped() const override { return dropped_; }

    // Connecting may take this long at most (a node's loop waits for it, rarely: after an outage, with backoff).
    static constexpr std::chrono::milliseconds connect_timeout{1000};

private:
    struct Outgoing {
        std::string routing_key, body;
        std::size_t events = 0;
    };
    void close_batch();
    void connect();
    void drop(const std::string& why);

    AmqpUrl url_;
    std::string hostname_;
    std::vector<std::string> batch_;  // task events for the next "task.multi" message
    std::vector<Outgoing> outgoing_;  // messages to publish at the next flush
    std::unique_ptr<Connection> connection_;
    int attempts_ = 0;
    std::chrono::steady_clock::time_point retry_at_{};
    bool down_ = false;
    std::size_t dropped_ = 0;
};

class AmqpEventReceiver final : public EventReceiver {
public:
    explicit AmqpEventReceiver(const AmqpUrl& url);
    ~AmqpEventReceiver() override;

    int fd() const override { return link_->fd(); }
    std::vector<nlohmann::json> receive() override;
    std::optional<std::string> unavailable() const override { return link_->unavailable(); }

    // The events in one message's body (one event, or a "task.multi" list); none when it is not JSON events.
    static std::vector<nlohmann::json> decode(const Message& message);

private:
    std::vector<Message> arrived_;
    std::unique_ptr<Link> link_;
};

}  // namespace ccmulti::broker::amqp
