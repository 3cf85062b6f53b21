// The Redis transport, speaking kombu's key layout (keys.hpp) so Python Celery clients and workers share queues
// with ccmulti nodes: publish is kombu's LPUSH of the Celery v2 envelope (plus the `_kombu.binding.<queue>`
// declaration Celery makes), consumers are RedisConsumer, results live in RedisResultStore.
//
// Client-side calls (publish, purge, stats) use one lazily opened connection; a call that finds it broken
// reconnects once and retries (a publish may then, rarely, be sent twice: at-least-once, never lost), and
// otherwise throws ConnectionError ("redis 127.0.0.1:6379: connection refused").
//
// Limits, because Redis keeps no index of its own: locate() scans `unacked` and the queue lists (O(messages));
// queue_stats() reads every claim in `unacked` to split claimed messages into reserved and scheduled (held for
// their eta); consumers are known only for ccmulti nodes (Python workers register nowhere but the pidbox).
#pragma once

#include <memory>
#include <set>

#include "broker/broker.hpp"
#include "broker/redis/connection.hpp"

namespace ccmulti::broker::redis {

class RedisBroker final : public Broker {
public:
    explicit RedisBroker(RedisUrl url);

    std::string url() const override { return url_.display(); }
    void publish(const TaskMessage& message) override;
    void publish_many(const std::vector<TaskMessage>& messages) override;  // pipelined, 1000 a round trip
    std::unique_ptr<Consumer> consume(const ConsumerInfo& info) override;
    std::size_t restore_orphans() override;
    std::size_t purge(const std::string& queue) override;
    std::vector<QueueStats> queue_stats() override;
    std::vector<std::string> consumers_of(const std::string& queue) override;
    std::optional<MessageLocation> locate(const std::string& task_id) override;
    std::unique_ptr<EventPublisher> events(const std::string& hostname) override;  // RedisEventPublisher
    std::unique_ptr<EventReceiver> event_stream() override;                        // RedisEventReceiver

    const RedisUrl& redis_url() const noexcept { return url_; }

private:
    std::set<std::string> known_queues(Connection& connection);
    std::vector<std::pair<std::string, std::vector<std::string>>> live_consumers(Connection& connection);

    RedisUrl url_;
    OnDemandConnection connection_;
    std::set<std::string> declared_;
};

}  // namespace ccmulti::broker::redis
