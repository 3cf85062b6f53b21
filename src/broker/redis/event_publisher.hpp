// Celery's events on Redis (broker.hpp, EventPublisher): kombu's fanout exchange `celeryev` is a Redis PUBLISH,
// on channel "/<db>.celeryev/<routing key>" (kombu's keyprefix_fanout "/{db}." with fanout_patterns on: exchange,
// "/", routing key), of the kombu envelope a Python worker sends (captured from Debian's celery 5.2):
//
//   {"body": base64(event JSON, or a JSON list of task events), "content-encoding": "utf-8",
//    "content-type": "application/json", "headers": {"hostname": NODE},
//    "properties": {"delivery_mode": 1, "delivery_info": {"exchange": "celeryev", "routing_key": KEY},
//                   "priority": 0, "body_encoding": "base64", "delivery_tag": UUID}}
//
// `celery events` and Flower PSUBSCRIBE "/<db>.celeryev/*". The publisher has a connection of its own (so its
// replies never mix with a consumer's), opened at the first flush with a short timeout; each flush pipelines its
// PUBLISHes with Connection::send_deferred and reads the previous flush's replies first, which have long arrived
// by then: the node never waits on Redis for an event.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "broker/broker.hpp"
#include "broker/redis/backoff.hpp"
#include "broker/redis/connection.hpp"

namespace ccmulti::broker::redis {

class RedisEventPublisher final : public EventPublisher {
public:
    RedisEventPublisher(RedisUrl url, std::string hostname);
    ~RedisEventPublisher() override;
    RedisEventPublisher(const RedisEventPublisher&) = delete;
    RedisEventPublisher& operator=(const RedisEventPublisher&) = delete;

    void send(std::string_view type, std::string event) override;
    void flush() override;
    std::size_t dropped() const override { return dropped_; }

    // "/0.celeryev/worker.heartbeat"
    static std::string channel(int db, std::string_view routing_key);
    // Connecting may take this long at most (a node's loop waits for it, rarely: after an outage, with backoff).
    static constexpr std::chrono::milliseconds connect_timeout{1000};

private:
    void close_batch();
    void publish(std::string_view routing_key, const std::string& body, std::size_t events);
    void drop(const std::string& why);

    RedisUrl url_;
    std::string headers_;             // {"hostname": …}
    std::vector<std::string> batch_;  // task events for the next "task.multi" message
    std::vector<Command> commands_;   // PUBLISHes to send at the next flush
    std::size_t queued_ = 0;          // events in commands_
    std::unique_ptr<Connection> connection_;
    Backoff backoff_;
    std::chrono::steady_clock::time_point retry_at_{};
    bool down_ = false;
    std::size_t dropped_ = 0;
};

}  // namespace ccmulti::broker::redis
