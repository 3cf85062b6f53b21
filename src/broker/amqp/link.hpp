// A Connection (connection.hpp) that lives in a node's event loop and comes back by itself: what the consumer
// and the remote-control mailbox are built on.
//
// fd() is a private epoll set holding the connection's socket, a timerfd and an eventfd, so the fd the node's
// loop watches stays the same across reconnects (as the Redis consumer does). on_readable() never blocks on the
// broker beyond an RPC's connect timeout and never throws for it:
//  - connected: reads what arrived (Connection::poll with a zero wait) and hands out complete messages; the
//    timer ticks every heartbeat/2 so that heartbeats are sent and a silent broker is noticed (rabbitmq-c's
//    heartbeat timeout) even while no message comes; the eventfd is rung after an RPC that left frames buffered
//    in rabbitmq-c (the socket would not signal those).
//  - down (refused, closed, a missed heartbeat): the connection is dropped (RabbitMQ gives what it held unacked
//    back to its queues), on_down runs, and the timer reconnects with backoff, 0.5 s doubling to 30 s, ±20%;
//    each connect runs `setup` again (declarations, qos, consume). generation() counts connections, so a
//    delivery tag of an earlier connection is never acked on a later one.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "broker/amqp/connection.hpp"
#include "platform/fd.hpp"

namespace ccmulti::broker::amqp {

class Link {
public:
    using Setup = std::function<void(Connection&)>;

    // `name` shows in RabbitMQ's connection list; `who` in log lines ("w1@host", "remote control of w1@host").
    // Connects at once; a broker that cannot be reached is retried in the background.
    Link(AmqpUrl url, std::string name, std::string who, Setup setup, Connection::OnMessage on_message,
         std::function<void()> on_down = {});
    ~Link();
    Link(const Link&) = delete;
    Link& operator=(const Link&) = delete;

    int fd() const noexcept { return epoll_.get(); }
    void on_readable();
    // Reads what arrived now; nothing while down.
    void pump();
    // Runs `operation` on the connection (ack, reject, qos, publish); a failure takes the link down. False when
    // the link is down or went down.
    bool use(const std::function<void(Connection&)>& operation);

    bool connected() const noexcept { return connection_ != nullptr; }
    std::uint64_t generation() const noexcept { return generation_; }
    const std::optional<std::string>& unavailable() const noexcept { return down_; }
    // Closes the connection (a close handshake); the link stays down for good.
    void close();

private:
    void connect();
    void go_down(const Error& error);
    void arm(std::chrono::milliseconds delay, bool repeat);
    void kick_if_buffered();

    AmqpUrl url_;
    std::string name_, who_;
    Setup setup_;
    Connection::OnMessage on_message_;
    std::function<void()> on_down_;
    std::unique_ptr<Connection> connection_;
    UniqueFd epoll_, timer_, kick_;
    std::uint64_t generation_ = 0;
    int attempts_ = 0;
    bool closed_ = false;
    std::optional<std::string> down_;
};

}  // namespace ccmulti::broker::amqp
