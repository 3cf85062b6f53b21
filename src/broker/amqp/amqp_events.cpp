#include "broker/amqp/amqp_events.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "broker/amqp/topology.hpp"
#include "protocol/events.hpp"
#include "protocol/task_message.hpp"

namespace ccmulti::broker::amqp {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

// As Celery's event_queue_ttl (5 s) and event_queue_expires (60 s).
constexpr int event_queue_ttl_ms = 5000;
constexpr int event_queue_expires_ms = 60000;

std::chrono::milliseconds retry_delay(int attempt) {
    return std::chrono::milliseconds(std::min(500LL << std::min(attempt, 6), 30000LL));
}

}  // namespace

// ---- publisher ----

AmqpEventPublisher::AmqpEventPublisher(AmqpUrl url, std::string hostname)
    : url_(std::move(url)), hostname_(std::move(hostname)) {
    url_.connect_timeout = std::min(url_.connect_timeout, connect_timeout);
}

AmqpEventPublisher::~AmqpEventPublisher() {
    flush();
    // The connection's close handshake follows the publishes: RabbitMQ has routed them when it answers.
    connection_.reset();
}

void AmqpEventPublisher::send(std::string_view type, std::string event) {
    if (type.starts_with("task-")) {
        batch_.push_back(std::move(event));
        if (batch_.size() >= task_batch) close_batch();
        return;
    }
    close_batch();  // events keep their order
    outgoing_.push_back({protocol::event_routing_key(type), std::move(event), 1});
}

void AmqpEventPublisher::close_batch() {
    if (batch_.empty()) return;
    std::string body = protocol::task_batch_body(batch_);
    outgoing_.push_back({protocol::task_batch_routing_key, std::move(body), batch_.size()});
    batch_.clear();
}

void AmqpEventPublisher::connect() {
    auto connection = std::make_unique<Connection>(url_, "ccmulti events " + hostname_);
    declare_event_exchange(*connection);
    connection_ = std::move(connection);
}

void AmqpEventPublisher::flush() {
    close_batch();
    if (outgoing_.empty()) return;
    try {
        if (connection_) {
            try {
                connection_->poll([](Message&&) {});  // heartbeats both ways; a close the broker sent while idle
            } catch (const ConnectionError& error) {
                spdlog::debug("{}: the events connection was lost ({}); connecting again", hostname_, error.what());
                connection_.reset();
                retry_at_ = {};
            }
        }
        if (!connection_) {
            if (down_ && SteadyClock::now() < retry_at_) {
                drop("");
                return;
            }
            connect();
        }
        Message message;
        message.content_type = "application/json";
        message.content_encoding = "utf-8";
        message.headers = {{"hostname", hostname_}};
        message.persistent = false;
        for (auto& outgoing : outgoing_) {
            message.body = std::move(outgoing.body);
            connection_->publish(protocol::event_exchange, outgoing.routing_key, message);
        }
        if (down_)
            spdlog::info("{}: Celery events are sent again ({} dropped while the AMQP broker {} could not be reached)",
                         hostname_, dropped_, url_.address());
        down_ = false;
        attempts_ = 0;
        outgoing_.clear();
    } catch (const ConnectionError& error) {
        connection_.reset();
        drop(error.what());
    }
}

void AmqpEventPublisher::drop(const std::string& why) {
    for (const auto& outgoing : outgoing_) dropped_ += outgoing.events;
    outgoing_.clear();
    if (why.empty()) return;  // still waiting to try again
    auto delay = retry_delay(attempts_++);
    retry_at_ = SteadyClock::now() + delay;
    if (!down_ || attempts_ % 10 == 0)
        spdlog::warn("{}: {} (Celery events); events are dropped until the AMQP broker is back, next try in {}ms",
                     hostname_, why, delay.count());
    down_ = true;
}

// ---- receiver ----

std::vector<json> AmqpEventReceiver::decode(const Message& message) {
    if (!message.content_type.empty() && message.content_type != "application/json") return {};
    return protocol::events_in(json::parse(message.body, nullptr, false));
}

AmqpEventReceiver::AmqpEventReceiver(const AmqpUrl& url) {
    const std::string queue = std::string(protocol::event_exchange) + "." + protocol::new_uuid();
    link_ = std::make_unique<Link>(
        url, "ccmulti events receiver", "Celery events",
        [queue](Connection& connection) {
            declare_event_exchange(connection);
            declare_or_accept(connection, queue, false, true,
                              {{"x-message-ttl", event_queue_ttl_ms}, {"x-expires", event_queue_expires_ms}});
            connection.bind(queue, protocol::event_exchange, "#");
            connection.consume(queue, queue, true);
        },
        [this](Message&& message) { arrived_.push_back(std::move(message)); });
}

AmqpEventReceiver::~AmqpEventReceiver() {
    link_->close();
}

std::vector<json> AmqpEventReceiver::receive() {
    link_->on_readable();
    std::vector<json> events;
    for (const auto& message : arrived_)
        for (auto& event : decode(message)) events.push_back(std::move(event));
    arrived_.clear();
    return events;
}

}  // namespace ccmulti::broker::amqp
