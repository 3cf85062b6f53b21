#include "broker/amqp/amqp_broker.hpp"

#include <unistd.h>

#include "broker/amqp/amqp_consumer.hpp"
#include "broker/amqp/amqp_events.hpp"
#include "broker/amqp/codec.hpp"
#include "broker/amqp/topology.hpp"

namespace ccmulti::broker::amqp {

namespace {
constexpr int amqp_not_found = 404;
}

Connection& AmqpBroker::connection() {
    if (!connection_) {
        auto connection = std::make_unique<Connection>(url_, "ccmulti client " + std::to_string(::getpid()));
        connection->confirm_select();
        connection_ = std::move(connection);
    }
    return *connection_;
}

void AmqpBroker::publish_many(const std::vector<TaskMessage>& messages) {
    try {
        Connection& amqp = connection();
        std::uint64_t last = 0;
        for (const auto& message : messages) {
            if (declared_.insert(message.queue).second) declare_task_queue(amqp, message.queue);
            last = amqp.publish(message.queue, message.queue, encode_task(message));
        }
        amqp.wait_confirms(last, confirm_timeout);
    } catch (const ConnectionError&) {
        connection_.reset();  // the next call connects again
        declared_.clear();
        throw;
    }
}

std::unique_ptr<Consumer> AmqpBroker::consume(const ConsumerInfo& info) {
    return std::make_unique<AmqpConsumer>(url_, info);
}

std::unique_ptr<EventPublisher> AmqpBroker::events(const std::string& hostname) {
    return std::make_unique<AmqpEventPublisher>(url_, hostname);
}

std::unique_ptr<EventReceiver> AmqpBroker::event_stream() {
    return std::make_unique<AmqpEventReceiver>(url_);
}

std::optional<Connection::QueueInfo> AmqpBroker::peek(const std::string& queue) {
    try {
        return connection().declare_queue(queue, true, false, false, nlohmann::json::object(), true);
    } catch (const ChannelError& error) {
        if (error.code() == amqp_not_found) return std::nullopt;
        throw;
    }
}

std::size_t AmqpBroker::purge(const std::string& queue) {
    if (!peek(queue)) return 0;
    return connection().purge(queue);
}

std::vector<QueueStats> AmqpBroker::queue_stats() {
    std::set<std::string> names = declared_;
    names.insert("celery");
    std::vector<QueueStats> out;
    for (const auto& name : names) {
        auto info = peek(name);
        if (!info || (info->messages == 0 && info->consumers == 0)) continue;
        QueueStats stats;
        stats.name = name;
        stats.ready = info->messages;
        stats.consumers = consumers_of(name);
        out.push_back(std::move(stats));
    }
    return out;
}

std::vector<std::string> AmqpBroker::consumers_of(const std::string& queue) {
    std::vector<std::string> out;
    if (auto info = peek(queue))
        for (std::uint32_t i = 1; i <= info->consumers; ++i) out.push_back("consumer " + std::to_string(i));
    return out;
}

}  // namespace ccmulti::broker::amqp
