// A monitor's side of Celery's events on Redis (broker.hpp, EventReceiver): PSUBSCRIBE to every channel of
// kombu's fanout exchange `celeryev`, "/<db>.celeryev/*" (what `celery events` and Flower subscribe to: kombu
// binds routing key "#", which its Redis transport turns into the pattern "*"), and the kombu envelopes that
// arrive there (event_publisher.hpp shows one) decoded into events: the body, base64 or not as the envelope's
// properties say, is one event, or a list of them for "task.multi".
//
// Like RedisPidbox: fd() is a private epoll set holding the subscription socket and a reconnect timer, stable
// across reconnects; receive() never blocks on Redis. Nothing is declared on the server (kombu's binding set
// entry is only read by publishers of direct exchanges), so a monitor that goes away leaves nothing behind.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker/broker.hpp"
#include "broker/redis/backoff.hpp"
#include "broker/redis/connection.hpp"
#include "platform/fd.hpp"

namespace ccmulti::broker::redis {

class RedisEventReceiver final : public EventReceiver {
public:
    explicit RedisEventReceiver(RedisUrl url);
    ~RedisEventReceiver() override;
    RedisEventReceiver(const RedisEventReceiver&) = delete;
    RedisEventReceiver& operator=(const RedisEventReceiver&) = delete;

    int fd() const override { return epoll_.get(); }
    std::vector<nlohmann::json> receive() override;
    std::optional<std::string> unavailable() const override;

    // "/0.celeryev/*"
    static std::string pattern(int db);
    // The events in one published message (a kombu envelope's text); none when it is not one.
    static std::vector<nlohmann::json> decode(const std::string& payload);

    static constexpr std::size_t max_per_receive = 10000;  // the caller's loop gets a turn between bursts

private:
    void connect();
    void go_down(const Error& error);

    RedisUrl url_;
    std::unique_ptr<Connection> subscription_;
    UniqueFd epoll_, timer_;
    Backoff backoff_;
    std::optional<std::string> down_;
    bool subscribed_ = false;  // Redis confirmed the PSUBSCRIBE
};

}  // namespace ccmulti::broker::redis
