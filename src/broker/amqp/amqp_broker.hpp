// RabbitMQ as a Broker (broker.hpp): publishing for `ccmulti call` and the consumers of nodes (amqp_consumer.hpp).
//
// Publishing declares the task queue as kombu does (topology.hpp) the first time this process publishes to it,
// then sends with publisher confirms: publish() returns once RabbitMQ has the message (on disk for durable
// queues); publish_many() sends them all before waiting for the confirms (pipelined: `call --count N`).
//
// What AMQP does not tell: RabbitMQ redelivers a dead consumer's unacked messages by itself, so restore_orphans()
// has nothing to do; it names no consumers (without its management plugin), so consumers_of() gives one
// "consumer N" per consumer it counts; a message cannot be looked up by id (locate() gives nullopt, and `result`
// says PENDING only from the result store); queue_stats() covers the queues this process declared and `celery`.
#pragma once

#include <memory>
#include <set>

#include "broker/amqp/connection.hpp"
#include "broker/broker.hpp"

namespace ccmulti::broker::amqp {

class AmqpBroker final : public Broker {
public:
    explicit AmqpBroker(AmqpUrl url) : url_(std::move(url)) {}

    std::string url() const override { return url_.display(); }
    void publish(const TaskMessage& message) override { publish_many({message}); }
    void publish_many(const std::vector<TaskMessage>& messages) override;
    std::unique_ptr<Consumer> consume(const ConsumerInfo& info) override;
    std::size_t restore_orphans() override { return 0; }
    std::size_t purge(const std::string& queue) override;
    std::vector<QueueStats> queue_stats() override;
    std::vector<std::string> consumers_of(const std::string& queue) override;
    std::optional<MessageLocation> locate(const std::string&) override { return std::nullopt; }
    std::unique_ptr<EventPublisher> events(const std::string& hostname) override;  // AmqpEventPublisher
    std::unique_ptr<EventReceiver> event_stream() override;                        // AmqpEventReceiver

    static constexpr std::chrono::seconds confirm_timeout{30};

private:
    Connection& connection();  // connects (and turns on confirms) on first use
    std::optional<Connection::QueueInfo> peek(const std::string& queue);  // passive declare; nullopt: no queue

    AmqpUrl url_;
    std::unique_ptr<Connection> connection_;
    std::set<std::string> declared_;
};

}  // namespace ccmulti::broker::amqp
