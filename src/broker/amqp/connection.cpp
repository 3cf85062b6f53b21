#include "broker/amqp/connection.hpp"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <openssl/ssl.h>
#include <sys/time.h>

#include <openssl/x509v3.h>

#include "broker/amqp/table.hpp"

namespace ccmulti::broker::amqp {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

timeval amqp_timeval(std::chrono::milliseconds duration) {
    if (duration.count() < 0) duration = std::chrono::milliseconds(0);
    return {static_cast<time_t>(duration.count() / 1000), static_cast<suseconds_t>(duration.count() % 1000 * 1000)};
}

amqp_bytes_t bytes_view(const std::string& text) {
    amqp_bytes_t bytes;
    bytes.len = text.size();
    bytes.bytes = const_cast<char*>(text.data());
    return bytes;
}

// OpenSSL's verify callback: notes the first reason it found to distrust the server's certificate in the string
// the SSL_CTX carries (rabbitmq-c itself only says that verification failed). The handshake goes on as rabbitmq-c
// set it up (its verify mode is none); rabbitmq-c then reads the verification result and fails the connection.
int note_verify_error(int ok, X509_STORE_CTX* store) {
    if (ok) return ok;
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* why = ssl ? static_cast<std::string*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), 0)) : nullptr;
    if (why && why->empty()) *why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(store));
    return ok;
}

}  // namespace

// rabbitmq-c's OpenSSL socket loads no trust store of its own (so "the system's CAs" would be none) and checks
// host names against DNS names only (an amqps://10.0.0.5 with an IP address in the certificate would fail, where
// Python's ssl accepts it). Both are set on its SSL_CTX here: the system's default paths when the URL names no CA
// (SSL_CERT_FILE / SSL_CERT_DIR as OpenSSL reads them), and the host name or IP address for OpenSSL's own check
// in the chain verification, which rabbitmq-c reads back after the handshake.
void Connection::set_up_tls(amqp_socket_t* socket, const std::string& where) {
    amqp_ssl_socket_set_verify_peer(socket, url_.verify ? 1 : 0);
    amqp_ssl_socket_set_verify_hostname(socket, 0);  // OpenSSL checks it below
    auto* ctx = static_cast<SSL_CTX*>(amqp_ssl_socket_get_context(socket));
    if (!url_.verify) return;
    if (!url_.ca_certs.empty()) {
        if (amqp_ssl_socket_set_cacert(socket, url_.ca_certs.c_str()) != AMQP_STATUS_OK)
            throw ConnectionError(where + ": cannot read the CA bundle " + url_.ca_certs);
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        throw ConnectionError(where + ": cannot load the system's CA certificates");
    }
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, url_.host.c_str()) != 1) {  // not an IP address: a host name
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (X509_VERIFY_PARAM_set1_host(param, url_.host.c_str(), 0) != 1)
            throw ConnectionError(where + ": cannot check the certificate against host name '" + url_.host + "'");
    }
    SSL_CTX_set_ex_data(ctx, 0, &tls_problem_);  // index 0: the "app data"
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, note_verify_error);
}

std::string Connection::describe(const amqp_rpc_reply_t& reply, const std::string& what) {
    switch (reply.reply_type) {
        case AMQP_RESPONSE_NORMAL:
            return what + ": ok";
        case AMQP_RESPONSE_NONE:
            return what + ": no reply from the broker";
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return what + ": " + amqp_error_string2(reply.library_error);
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
                auto* close = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
                return what + ": the broker closed the connection: " + std::to_string(close->reply_code) + " " +
                       text_of(close->reply_text);
            }
            if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
                auto* close = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
                return what + ": the broker closed the channel: " + std::to_string(close->reply_code) + " " +
                       text_of(close->reply_text);
            }
            return what + ": unexpected reply from the broker";
    }
    return what + ": failed";
}

Connection::Connection(const AmqpUrl& url, const std::string& name) : url_(url) {
    state_ = amqp_new_connection();
    if (!state_) throw ConnectionError("cannot allocate an AMQP connection");
    const std::string where = "AMQP broker " + url_.address();
    try {
        amqp_socket_t* socket = url_.tls ? amqp_ssl_socket_new(state_) : amqp_tcp_socket_new(state_);
        if (!socket) throw ConnectionError(where + ": cannot create a socket");
        if (url_.tls) {
            set_up_tls(socket, where);
            if (!url_.certfile.empty() &&
                amqp_ssl_socket_set_key(socket, url_.certfile.c_str(), url_.keyfile.c_str()) != AMQP_STATUS_OK)
                throw ConnectionError(where + ": cannot read the client certificate " + url_.certfile + " / " +
                                      url_.keyfile);
        }
        timeval timeout = amqp_timeval(url_.connect_timeout);
        amqp_set_handshake_timeout(state_, &timeout);
        amqp_set_rpc_timeout(state_, &timeout);
        if (int status = amqp_socket_open_noblock(socket, url_.host.c_str(), url_.port, &timeout);
            status != AMQP_STATUS_OK) {
            closed_ = true;
            if (status == AMQP_STATUS_SSL_PEER_VERIFY_FAILED)
                throw ConnectionError(
                    "cannot connect to " + where + ": TLS certificate verification failed: " +
                    (tls_problem_.empty() ? "the server's certificate is not trusted" : tls_problem_) +
                    (url_.ca_certs.empty() ? " (give the CA that signed it: ?ssl_ca_certs=PATH)"
                                           : " (with the CA bundle " + url_.ca_certs + ")"));
            throw ConnectionError("cannot connect to " + where + ": " + amqp_error_string2(status));
        }
        amqp_table_entry_t property{};
        property.key = amqp_cstring_bytes("connection_name");
        property.value.kind = AMQP_FIELD_KIND_UTF8;
        property.value.value.bytes = bytes_view(name);
        amqp_table_t properties{1, &property};
        auto reply = amqp_login_with_properties(state_, url_.vhost.c_str(), 0, 131072, url_.heartbeat, &properties,
                                                AMQP_SASL_METHOD_PLAIN, url_.user.c_str(), url_.password.c_str());
        if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
            closed_ = true;
            std::string hint = reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                                       reply.library_error == AMQP_STATUS_CONNECTION_CLOSED
                                   ? " (wrong user or password, or no access to vhost '" + url_.vhost + "'?)"
                                   : "";
            throw ConnectionError(describe(reply, "logging in to " + where + " as " + url_.user) + hint);
        }
        open_channel();
    } catch (...) {
        if (!closed_) amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(state_);
        throw;
    }
}

Connection::~Connection() {
    if (!closed_) {
        // A short handshake: the broker requeues what this connection held unacked as soon as it is gone.
        timeval quick{1, 0};
        amqp_set_rpc_timeout(state_, &quick);
        amqp_channel_close(state_, channel_, AMQP_REPLY_SUCCESS);
        amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(state_);
}

int Connection::fd() const {
    return amqp_get_sockfd(state_);
}

void Connection::open_channel() {
    amqp_channel_open(state_, channel_);
    check(amqp_get_rpc_reply(state_), "opening a channel");
}

void Connection::check(const amqp_rpc_reply_t& reply, const std::string& what) {
    if (reply.reply_type == AMQP_RESPONSE_NORMAL) return;
    std::string message = describe(reply, what + " on " + url_.address());
    if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        int code = static_cast<amqp_channel_close_t*>(reply.reply.decoded)->reply_code;
        // Acknowledge the close, and go on on a fresh channel: the connection is fine.
        amqp_channel_close_ok_t ok{};
        amqp_send_method(state_, channel_, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        ++channel_;
        open_channel();
        if (confirming_) confirm_select();
        throw ChannelError(message, code);
    }
    if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_ok_t ok{};
        amqp_send_method(state_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    }
    closed_ = true;
    throw ConnectionError(message);
}

void Connection::check_status(int status, const std::string& what) {
    if (status >= 0) return;
    closed_ = true;
    if (status == AMQP_STATUS_HEARTBEAT_TIMEOUT) {
        int heartbeat = amqp_get_heartbeat(state_);  // as negotiated
        throw ConnectionError("missed heartbeats: nothing from the AMQP broker " + url_.address() + " for " +
                              std::to_string(2 * heartbeat) + " s (heartbeat " + std::to_string(heartbeat) +
                              " s); the connection is taken as lost");
    }
    throw ConnectionError(what + " on " + url_.address() + ": " + amqp_error_string2(status));
}

void Connection::declare_exchange(const std::string& name, const std::string& type, bool durable, bool auto_delete) {
    amqp_exchange_declare(state_, channel_, bytes_view(name), bytes_view(type), 0, durable, auto_delete, 0,
                          amqp_empty_table);
    check(amqp_get_rpc_reply(state_), "declaring exchange '" + name + "'");
}

Connection::QueueInfo Connection::declare_queue(const std::string& name, bool durable, bool exclusive, bool auto_delete,
                                                const json& arguments, bool passive) {
    TableBuilder tables;
    auto* ok = amqp_queue_declare(state_, channel_, bytes_view(name), passive, durable, exclusive, auto_delete,
                                  tables.build(arguments));
    check(amqp_get_rpc_reply(state_), "declaring queue '" + name + "'");
    QueueInfo info;
    if (ok) info = {ok->message_count, ok->consumer_count};
    return info;
}

void Connection::bind(const std::string& queue, const std::string& exchange, const std::string& routing_key) {
    amqp_queue_bind(state_, channel_, bytes_view(queue), bytes_view(exchange), bytes_view(routing_key),
                    amqp_empty_table);
    check(amqp_get_rpc_reply(state_), "binding queue '" + queue + "' to exchange '" + exchange + "'");
}

void Connection::qos(std::uint16_t prefetch, bool global) {
    amqp_basic_qos(state_, channel_, 0, prefetch, global ? 1 : 0);
    check(amqp_get_rpc_reply(state_), "setting the prefetch count");
}

void Connection::consume(const std::string& queue, const std::string& consumer_tag, bool no_ack) {
    amqp_basic_consume(state_, channel_, bytes_view(queue), bytes_view(consumer_tag), 0, no_ack, 0, amqp_empty_table);
    check(amqp_get_rpc_reply(state_), "consuming queue '" + queue + "'");
}

std::uint32_t Connection::purge(const std::string& queue) {
    auto* ok = amqp_queue_purge(state_, channel_, bytes_view(queue));
    check(amqp_get_rpc_reply(state_), "purging queue '" + queue + "'");
    return ok ? ok->message_count : 0;
}

void Connection::confirm_select() {
    amqp_confirm_select(state_, channel_);
    check(amqp_get_rpc_reply(state_), "turning on publisher confirms");
    confirming_ = true;
    published_ = confirmed_ = 0;
}

std::uint64_t Connection::publish(const std::string& exchange, const std::string& routing_key, const Message& message) {
    TableBuilder tables;
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG;
    props.delivery_mode = message.persistent ? 2 : 1;
    props.priority = static_cast<std::uint8_t>(message.priority);
    auto set = [&props](amqp_flags_t flag, amqp_bytes_t& field, const std::string& value) {
        if (value.empty()) return;
        props._flags |= flag;
        field = bytes_view(value);
    };
    set(AMQP_BASIC_CONTENT_TYPE_FLAG, props.content_type, message.content_type);
    set(AMQP_BASIC_CONTENT_ENCODING_FLAG, props.content_encoding, message.content_encoding);
    set(AMQP_BASIC_CORRELATION_ID_FLAG, props.correlation_id, message.correlation_id);
    set(AMQP_BASIC_REPLY_TO_FLAG, props.reply_to, message.reply_to);
    if (message.headers.is_object() && !message.headers.empty()) {
        props._flags |= AMQP_BASIC_HEADERS_FLAG;
        props.headers = tables.build(message.headers);
    }
    int status = amqp_basic_publish(state_, channel_, bytes_view(exchange), bytes_view(routing_key), 0, 0, &props,
                                    bytes_view(message.body));
    check_status(status, "publishing to exchange '" + exchange + "'");
    return ++published_;
}

void Connection::wait_confirms(std::uint64_t sequence, std::chrono::milliseconds timeout) {
    auto deadline = SteadyClock::now() + timeout;
    while (confirmed_ < sequence && !nacked_) {
        if (SteadyClock::now() >= deadline)
            throw ConnectionError("the AMQP broker " + url_.address() + " did not confirm " +
                                  std::to_string(sequence - confirmed_) + " published message(s) within " +
                                  std::to_string(timeout.count()) + " ms");
        poll([](Message&&) {}, deadline);
    }
    if (nacked_) {
        nacked_ = false;
        throw ConnectionError("the AMQP broker " + url_.address() +
                              " refused a published message (basic.nack: a queue limit or an internal error)");
    }
}

void Connection::ack(std::uint64_t delivery_tag, bool multiple) {
    check_status(amqp_basic_ack(state_, channel_, delivery_tag, multiple), "acking a message");
}

void Connection::reject(std::uint64_t delivery_tag, bool requeue) {
    check_status(amqp_basic_reject(state_, channel_, delivery_tag, requeue), "rejecting a message");
}

bool Connection::buffered() const {
    return amqp_frames_enqueued(state_) || amqp_data_in_buffer(state_);
}

void Connection::handle_frame(const amqp_frame_t& frame, const OnMessage& on_message, std::size_t& delivered) {
    if (frame.frame_type == AMQP_FRAME_METHOD) {
        switch (frame.payload.method.id) {
            case AMQP_BASIC_DELIVER_METHOD: {
                auto* deliver = static_cast<amqp_basic_deliver_t*>(frame.payload.method.decoded);
                partial_.emplace();
                partial_->delivery_tag = deliver->delivery_tag;
                partial_->redelivered = deliver->redelivered != 0;
                partial_->exchange = text_of(deliver->exchange);
                partial_->routing_key = text_of(deliver->routing_key);
                partial_->consumer_tag = text_of(deliver->consumer_tag);
                header_seen_ = false;
                return;
            }
            case AMQP_BASIC_ACK_METHOD: {
                auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
                confirmed_ = std::max(confirmed_, ack->delivery_tag);
                return;
            }
            case AMQP_BASIC_NACK_METHOD: {
                auto* nack = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
                confirmed_ = std::max(confirmed_, nack->delivery_tag);
                nacked_ = true;
                return;
            }
            case AMQP_BASIC_CANCEL_METHOD:  // the queue was deleted: consume again after reconnecting
                closed_ = false;
                throw ConnectionError("the AMQP broker " + url_.address() + " cancelled a consumer (queue deleted?)");
            case AMQP_CHANNEL_CLOSE_METHOD: {
                auto* close = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
                std::string reason = std::to_string(close->reply_code) + " " + text_of(close->reply_text);
                amqp_channel_close_ok_t ok{};
                amqp_send_method(state_, frame.channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
                throw ConnectionError("the AMQP broker " + url_.address() + " closed the channel: " + reason);
            }
            case AMQP_CONNECTION_CLOSE_METHOD: {
                auto* close = static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
                std::string reason = std::to_string(close->reply_code) + " " + text_of(close->reply_text);
                amqp_connection_close_ok_t ok{};
                amqp_send_method(state_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
                closed_ = true;
                throw ConnectionError("the AMQP broker " + url_.address() + " closed the connection: " + reason);
            }
            default:
                return;  // basic.return and others: nothing a node acts on
        }
    }
    if (!partial_) return;
    if (frame.frame_type == AMQP_FRAME_HEADER) {
        auto* props = static_cast<amqp_basic_properties_t*>(frame.payload.properties.decoded);
        if (props->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) partial_->content_type = text_of(props->content_type);
        if (props->_flags & AMQP_BASIC_CONTENT_ENCODING_FLAG)
            partial_->content_encoding = text_of(props->content_encoding);
        if (props->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) partial_->correlation_id = text_of(props->correlation_id);
        if (props->_flags & AMQP_BASIC_REPLY_TO_FLAG) partial_->reply_to = text_of(props->reply_to);
        if (props->_flags & AMQP_BASIC_HEADERS_FLAG) partial_->headers = to_json(props->headers);
        if (props->_flags & AMQP_BASIC_PRIORITY_FLAG) partial_->priority = props->priority;
        if (props->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG) partial_->persistent = props->delivery_mode == 2;
        body_remaining_ = frame.payload.properties.body_size;
        partial_->body.reserve(body_remaining_);
        header_seen_ = true;
    } else if (frame.frame_type == AMQP_FRAME_BODY && header_seen_) {
        const auto& fragment = frame.payload.body_fragment;
        partial_->body.append(static_cast<const char*>(fragment.bytes), fragment.len);
        body_remaining_ -= std::min<std::uint64_t>(body_remaining_, fragment.len);
    } else {
        return;
    }
    if (header_seen_ && body_remaining_ == 0) {
        Message message = std::move(*partial_);
        partial_.reset();
        ++delivered;
        on_message(std::move(message));
    }
}

std::size_t Connection::poll(const OnMessage& on_message, std::optional<SteadyClock::time_point> deadline) {
    std::size_t delivered = 0;
    for (;;) {
        amqp_frame_t frame{};
        // A deadline blocks until the first message (or confirm) at most. Without one, the shortest wait
        // rabbitmq-c knows of (1 µs) reads only what is there: a wait of exactly zero is its "immediate", which it
        // compares with nothing, so a broker silent past two heartbeats would never be noticed (it checks its
        // receive deadline only when that comes before the wait's end).
        auto left = deadline && delivered == 0
                        ? std::chrono::duration_cast<std::chrono::microseconds>(*deadline - SteadyClock::now())
                        : std::chrono::microseconds(0);
        timeval wait{static_cast<time_t>(left.count() / 1000000), static_cast<suseconds_t>(left.count() % 1000000)};
        if (left.count() <= 0) wait = {0, 1};
        int status = amqp_simple_wait_frame_noblock(state_, &frame, &wait);
        if (status == AMQP_STATUS_TIMEOUT) break;
        check_status(status, "reading from the AMQP broker");
        handle_frame(frame, on_message, delivered);
        if (deadline && (delivered > 0 || frame.frame_type == AMQP_FRAME_METHOD) && !buffered()) break;
    }
    amqp_maybe_release_buffers(state_);
    return delivered;
}

}  // namespace ccmulti::broker::amqp
