// One AMQP 0-9-1 connection with one channel, over Debian's rabbitmq-c (librabbitmq): no framing of ours. What the
// consumer, the publisher and the remote-control mailbox share: connecting (TCP or TLS, login, heartbeat
// negotiated), declarations, publishing, acks, and reading deliveries *without blocking* inside a node's event
// loop.
//
// Reading: poll() takes the frames rabbitmq-c already buffered (amqp_frames_enqueued, amqp_data_in_buffer) and
// whatever the socket has now (a wait of zero), assembles deliveries (basic.deliver + header + body frames) and
// hands each complete one to the callback; a delivery whose body is still on the way stays half-assembled here
// until a later poll(). It also sends heartbeats when they are due (rabbitmq-c does that while waiting for
// frames), so call it at least every heartbeat/2 seconds. RPCs (declare, qos, consume) block up to the connect
// timeout and may buffer deliveries that arrive meanwhile: call buffered() after them and poll() again if it says
// so, since the socket will not be readable for those.
//
// Errors: every failure (connection or channel closed by the broker, a socket error, a missed heartbeat) throws
// ConnectionError; the connection is unusable after it and is thrown away (consumers reconnect with backoff).
// A broker silent for two heartbeat intervals is noticed by poll() (rabbitmq-c compares its receive deadline only
// with a wait that ends after it: poll() never passes an "immediate" zero wait).
//
// TLS: rabbitmq-c's OpenSSL socket, with what it leaves out set on its SSL_CTX: the system's trust store when the
// URL names no CA, the host name or IP address checked by OpenSSL, and why a certificate was not trusted (for the
// one-line error).
#pragma once

#include <amqp.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "broker/amqp/url.hpp"
#include "util/error.hpp"

namespace ccmulti::broker::amqp {

class ConnectionError : public Error {
public:
    using Error::Error;
};

// The broker refused a declaration (e.g. PRECONDITION_FAILED: a queue exists with other arguments). The
// connection stays usable (the channel was reopened).
class ChannelError : public ConnectionError {
public:
    ChannelError(const std::string& message, int code) : ConnectionError(message), code_(code) {}
    int code() const noexcept { return code_; }

private:
    int code_;
};

struct Message {
    std::string body;
    std::string content_type, content_encoding, correlation_id, reply_to;
    nlohmann::json headers = nlohmann::json::object();  // the AMQP table, as JSON
    int priority = 0;
    bool persistent = true;  // delivery_mode 2
    // Set on deliveries:
    std::uint64_t delivery_tag = 0;
    bool redelivered = false;
    std::string exchange, routing_key, consumer_tag;
};

class Connection {
public:
    // Connects, logs in and opens the channel; `name` shows in RabbitMQ's connection list (connection_name).
    Connection(const AmqpUrl& url, const std::string& name);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    int fd() const;
    const AmqpUrl& url() const noexcept { return url_; }

    void declare_exchange(const std::string& name, const std::string& type, bool durable, bool auto_delete);
    struct QueueInfo {
        std::uint32_t messages = 0, consumers = 0;
    };
    // `arguments`: an x-… table (JSON object). passive: only check that it exists (ChannelError 404 if not).
    QueueInfo declare_queue(const std::string& name, bool durable, bool exclusive, bool auto_delete,
                            const nlohmann::json& arguments = nlohmann::json::object(), bool passive = false);
    void bind(const std::string& queue, const std::string& exchange, const std::string& routing_key);
    // global: one limit for the channel's consumers together, changes applying at once (RabbitMQ's meaning);
    // else a limit per consumer, for consumers started after it (quorum queues support only that).
    void qos(std::uint16_t prefetch, bool global);
    void consume(const std::string& queue, const std::string& consumer_tag, bool no_ack);
    std::uint32_t purge(const std::string& queue);
    void confirm_select();  // publisher confirms from now on: publish() returns the sequence number to wait for

    // Sends without waiting; returns the publish sequence number (1, 2, … after confirm_select(), else 0).
    std::uint64_t publish(const std::string& exchange, const std::string& routing_key, const Message& message);
    // Waits until every publish up to `sequence` is confirmed; ConnectionError when the broker nacked one or
    // `timeout` passed.
    void wait_confirms(std::uint64_t sequence, std::chrono::milliseconds timeout);

    void ack(std::uint64_t delivery_tag, bool multiple = false);
    void reject(std::uint64_t delivery_tag, bool requeue);

    using OnMessage = std::function<void(Message&&)>;
    // Reads what is there without blocking, or until `deadline` for the first message (blocking clients: `call`,
    // `inspect`). Returns how many messages it delivered.
    std::size_t poll(const OnMessage& on_message,
                     std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);
    // Frames or bytes rabbitmq-c holds that the socket will not signal again.
    bool buffered() const;

    // Why the last server-side close happened, for messages ("" if none).
    static std::string describe(const amqp_rpc_reply_t& reply, const std::string& what);

private:
    void check(const amqp_rpc_reply_t& reply, const std::string& what);
    void check_status(int status, const std::string& what);
    void open_channel();
    void set_up_tls(amqp_socket_t* socket, const std::string& where);
    void handle_frame(const amqp_frame_t& frame, const OnMessage& on_message, std::size_t& delivered);

    AmqpUrl url_;
    amqp_connection_state_t state_ = nullptr;
    amqp_channel_t channel_ = 1;
    bool closed_ = false;      // a close came from the server or the socket broke: no close handshake at the end
    std::string tls_problem_;  // why OpenSSL did not trust the server's certificate (set while connecting)
    // A delivery being assembled: its method and header arrived, its body is `remaining` bytes short.
    std::optional<Message> partial_;
    std::uint64_t body_remaining_ = 0;
    bool header_seen_ = false;
    bool confirming_ = false;  // confirm_select() was called: a reopened channel gets it again
    std::uint64_t published_ = 0, confirmed_ = 0;
    bool nacked_ = false;
};

}  // namespace ccmulti::broker::amqp
