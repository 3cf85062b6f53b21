#include "broker/amqp/amqp_control.hpp"

#include <unistd.h>

#include <algorithm>

#include "broker/amqp/link.hpp"
#include "broker/amqp/topology.hpp"
#include "broker/control_replies.hpp"
#include "protocol/iso_time.hpp"
#include "protocol/task_message.hpp"

namespace ccmulti::broker::amqp {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr std::chrono::milliseconds second_reply_grace{100};

json control_body(const Message& message) {
    if (!message.content_type.empty() && message.content_type != "application/json") return nullptr;
    return json::parse(message.body, nullptr, false);
}

void declare_control_exchanges(Connection& connection) {
    connection.declare_exchange(pidbox_exchange, "fanout", false, false);
    connection.declare_exchange(reply_exchange, "direct", false, false);
}

class AmqpMailbox final : public ControlMailbox {
public:
    AmqpMailbox(const AmqpUrl& url, std::string node, RemoteControl::Handler handler)
        : node_(std::move(node)), handler_(std::move(handler)) {
        const std::string queue = node_ + "." + pidbox_exchange;
        link_ = std::make_unique<Link>(
            url, "ccmulti pidbox " + node_, "remote control of " + node_,
            [queue](Connection& connection) {
                declare_control_exchanges(connection);
                // As Celery's control_queue_ttl (300 s) and control_queue_expires (10 s).
                declare_or_accept(connection, queue, false, true, {{"x-message-ttl", 300000}, {"x-expires", 10000}});
                connection.bind(queue, pidbox_exchange, "");
                connection.consume(queue, queue, true);
            },
            [this](Message&& message) { requests_.push_back(std::move(message)); });
    }
    ~AmqpMailbox() override { link_->close(); }

    int fd() const override { return link_->fd(); }
    std::optional<std::string> unavailable() const override { return link_->unavailable(); }

    void on_readable() override {
        link_->on_readable();
        // Answered after reading, not from inside it: a reply is a publish on the same connection.
        auto requests = std::move(requests_);
        requests_.clear();
        for (const auto& message : requests) answer(message);
    }

private:
    void answer(const Message& message) {
        json request = control_body(message);
        auto value = answer_control_request(request, message.headers, node_, handler_, clock_);
        if (!value) return;
        const json& reply_to = request.value("reply_to", json(nullptr));
        if (!reply_to.is_object()) return;
        Message reply;
        reply.body = json{{node_, std::move(*value)}}.dump(-1, ' ', false, json::error_handler_t::replace);
        reply.content_type = "application/json";
        reply.content_encoding = "utf-8";
        reply.headers = {{"ticket", request.value("ticket", json(nullptr))}, {"clock", ++clock_}};
        reply.persistent = false;
        std::string exchange = reply_to.value("exchange", std::string(reply_exchange));
        std::string routing_key = reply_to.value("routing_key", "");
        link_->use([&](Connection& connection) { connection.publish(exchange, routing_key, reply); });
    }

    std::string node_;
    RemoteControl::Handler handler_;
    std::unique_ptr<Link> link_;
    std::vector<Message> requests_;
    long long clock_ = 0;
};

}  // namespace

std::unique_ptr<ControlMailbox> AmqpControl::mailbox(const std::string& node, Handler handler) {
    return std::make_unique<AmqpMailbox>(url_, node, std::move(handler));
}

std::map<std::string, json> AmqpControl::broadcast(const std::string& method,
                                                   const std::vector<std::string>& destination,
                                                   std::chrono::milliseconds timeout) {
    Connection connection(url_, "ccmulti inspect " + std::to_string(::getpid()));
    declare_control_exchanges(connection);
    const std::string routing_key = protocol::new_uuid();
    const std::string queue = routing_key + "." + reply_exchange;
    connection.declare_queue(queue, false, true, true);
    connection.bind(queue, reply_exchange, routing_key);
    connection.consume(queue, queue, true);

    Message request;
    request.body = json{{"method", method},
                        {"arguments", json::object()},
                        {"destination", destination.empty() ? json(nullptr) : json(destination)},
                        {"pattern", nullptr},
                        {"matcher", nullptr},
                        {"ticket", protocol::new_uuid()},
                        {"reply_to", {{"exchange", reply_exchange}, {"routing_key", routing_key}}}}
                       .dump();
    request.content_type = "application/json";
    request.content_encoding = "utf-8";
    double expires = protocol::to_unix(protocol::now()) + std::chrono::duration<double>(timeout).count();
    request.headers = {{"clock", 1}, {"expires", expires}};
    request.persistent = false;
    connection.publish(pidbox_exchange, "", request);

    std::map<std::string, json> replies;
    auto deadline = SteadyClock::now() + timeout;
    bool grace = false;
    auto everyone_answered = [&] {
        return !destination.empty() && std::all_of(destination.begin(), destination.end(),
                                                   [&](const std::string& node) { return replies.contains(node); });
    };
    while (SteadyClock::now() < deadline) {
        if (!grace && everyone_answered()) {
            deadline = std::min(deadline, SteadyClock::now() + second_reply_grace);
            grace = true;
        }
        connection.poll(
            [&](Message&& message) {
                json body = control_body(message);
                if (!body.is_object()) return;
                for (auto& [node, value] : body.items()) add_node_reply(replies, node, value);
            },
            deadline);
    }
    return replies;
}

json AmqpControl::broker_info() const {
    return {{"hostname", url_.host},
            {"userid", url_.user},
            {"virtual_host", url_.vhost},
            {"port", url_.port},
            {"insist", false},
            {"ssl", url_.tls},
            {"transport", "amqp"},
            {"connect_timeout", std::chrono::duration<double>(url_.connect_timeout).count()},
            {"transport_options", json::object()},
            {"login_method", "PLAIN"},
            {"uri_prefix", nullptr},
            {"heartbeat", static_cast<double>(url_.heartbeat)},
            {"failover_strategy", "round-robin"},
            {"alternates", json::array()}};
}

}  // namespace ccmulti::broker::amqp
