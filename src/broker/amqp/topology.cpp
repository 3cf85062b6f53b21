#include "broker/amqp/topology.hpp"

#include <spdlog/spdlog.h>

#include <charconv>

#include "protocol/events.hpp"

namespace ccmulti::broker::amqp {

using nlohmann::json;

namespace {
constexpr int amqp_precondition_failed = 406;
}

json queue_arguments(const AmqpUrl& url) {
    json arguments = json::object();
    for (const auto& [key, value] : url.queue_arguments) {
        long long number = 0;
        auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), number);
        if (error == std::errc() && end == value.data() + value.size() && !value.empty())
            arguments[key] = number;
        else
            arguments[key] = value;
    }
    return arguments;
}

Connection::QueueInfo declare_or_accept(Connection& connection, const std::string& queue, bool durable,
                                        bool auto_delete, const json& arguments) {
    try {
        return connection.declare_queue(queue, durable, false, auto_delete, arguments);
    } catch (const ChannelError& error) {
        if (error.code() != amqp_precondition_failed) throw;
        spdlog::debug("queue '{}' exists with other arguments than ccmulti's ({}); using it as it is", queue,
                      error.what());
        return connection.declare_queue(queue, durable, false, auto_delete, json::object(), true);
    }
}

void declare_task_queue(Connection& connection, const std::string& queue) {
    try {
        connection.declare_exchange(queue, "direct", true, false);
    } catch (const ChannelError& error) {
        if (error.code() != amqp_precondition_failed) throw;
        spdlog::debug("exchange '{}' exists with another type or durability ({}); using it as it is", queue,
                      error.what());
    }
    declare_or_accept(connection, queue, true, false, queue_arguments(connection.url()));
    connection.bind(queue, queue, queue);
}

void declare_event_exchange(Connection& connection) {
    try {
        connection.declare_exchange(protocol::event_exchange, "topic", true, false);
    } catch (const ChannelError& error) {
        if (error.code() != amqp_precondition_failed) throw;
        spdlog::debug("exchange '{}' exists with another type or durability ({}); using it as it is",
                      protocol::event_exchange, error.what());
    }
}

}  // namespace ccmulti::broker::amqp
