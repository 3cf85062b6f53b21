// RedisConsumer (redis_consumer.hpp): results and acks, settled in one MULTI per turn of the node's loop, kept
// until Redis has taken them, sent again after a reconnect or a failover.
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "broker/redis/claims.hpp"
#include "broker/redis/consumer_detail.hpp"
#include "broker/redis/keys.hpp"
#include "broker/redis/redis_consumer.hpp"
#include "broker/redis/redis_result_store.hpp"
#include "broker/redis/scripts.hpp"

namespace ccmulti::broker::redis {

using nlohmann::json;

using namespace consumer_detail;

void RedisConsumer::settle(ResultStore& store, const std::vector<ResultMeta>& results,
                           const std::vector<Delivery>& deliveries) {
    auto* redis = dynamic_cast<RedisResultStore*>(&store);
    if (!redis || !redis->same_server(url_) || down_ || !command_) {
        Consumer::settle(store, results, deliveries);
        return;
    }
    Settling batch{redis, results, {}};
    for (const auto& delivery : deliveries)
        if (held_.erase(delivery.tag)) batch.tags.push_back(delivery.tag);
    if (batch.results.empty() && batch.tags.empty()) return;
    settling_.push_back(std::move(batch));
    try {
        command_->send_deferred(settle_commands(settling_.back()), [this](const std::vector<Reply>& replies) {
            // Stored and acked together or not at all: whatever went wrong, send the batch again once reconnected.
            if (auto error = first_error(replies))
                throw ConnectionError(command_->prefix() + "storing results: " + *error);
            keep_recent(std::move(settling_.front()));
            settling_.pop_front();
        });
    } catch (const Error& error) {
        go_down(error);  // the batch stays in settling_, sent again once Redis is back
    }
}

std::vector<Command> RedisConsumer::settle_commands(const Settling& batch) const {
    std::vector<Command> commands{{"MULTI"}};
    if (!batch.results.empty()) batch.store->add_to_transaction(commands, batch.results);
    if (!batch.tags.empty()) {
        Command zrem{"ZREM", unacked_index_key}, hdel{"HDEL", unacked_key};
        zrem.insert(zrem.end(), batch.tags.begin(), batch.tags.end());
        hdel.insert(hdel.end(), batch.tags.begin(), batch.tags.end());
        commands.push_back(std::move(zrem));
        commands.push_back(std::move(hdel));
    }
    commands.push_back({"EXEC"});
    return commands;
}

// One MULTI for any number of acks (a settle without results): ZREM and HDEL take many members. Kept until
// Redis has taken them.
void RedisConsumer::send_acks() {
    if (pending_acks_.empty()) return;
    if (auto error = first_error(command_->pipeline(settle_commands({nullptr, {}, pending_acks_}))))
        throw ConnectionError(command_->prefix() + "acking: " + *error);
    keep_recent({nullptr, {}, std::move(pending_acks_)});
    pending_acks_.clear();
}

void RedisConsumer::keep_recent(Settling batch) {
    if (!url_.sentinel()) return;
    const auto now = std::chrono::steady_clock::now();
    recent_count_ += batch.results.size() + batch.tags.size();
    recent_.push_back({now, std::move(batch)});
    while (!recent_.empty() && (now - recent_.front().when > recent_window || recent_count_ > max_recent)) {
        recent_count_ -= recent_.front().batch.results.size() + recent_.front().batch.tags.size();
        recent_.pop_front();
    }
}

// The batches of the last seconds before the connection was lost (keep_recent prunes only as batches come in, so
// a long outage does not age them out).
void RedisConsumer::resend_recent() {
    for (const auto& [when, batch] : recent_) {
        auto replies = command_->pipeline(settle_commands(batch));
        if (replies.back().is_error() || !replies.back().is_array())
            throw ConnectionError(command_->prefix() + "storing results again: " + replies.back().string());
    }
    recent_.clear();
    recent_count_ = 0;
}

void RedisConsumer::flush_pending() {
    // Batches settled before the connection broke: whether they landed is unknown, and sending them again is
    // harmless (results are idempotent, acking twice does nothing).
    for (; !settling_.empty(); settling_.pop_front()) {
        if (auto error = first_error(command_->pipeline(settle_commands(settling_.front()))))
            throw ConnectionError(command_->prefix() + "storing results: " + *error);
        keep_recent(std::move(settling_.front()));
    }
    send_acks();
    for (auto it = held_.begin(); it != held_.end();) {
        if (!it->second.requeue_pending) {
            ++it;
            continue;
        }
        give_back(it->first, it->second);
        it = held_.erase(it);
    }
}

void RedisConsumer::ack(const Delivery& delivery) {
    ack_many({delivery});
}

void RedisConsumer::ack_many(const std::vector<Delivery>& deliveries) {
    for (const auto& delivery : deliveries) {
        auto it = held_.find(delivery.tag);
        if (it == held_.end()) continue;  // not ours (any more)
        pending_acks_.push_back(delivery.tag);
        held_.erase(it);
    }
    if (down_) return;  // sent once Redis is back
    try {
        send_acks();
    } catch (const Error& error) {
        go_down(error);
    }
}

}  // namespace ccmulti::broker::redis
