// Task results exactly where and how Celery's Redis result backend keeps them: `celery-task-meta-<id>` holds the
// meta JSON (SETEX with the result expiry, SET when it is 0), and every write is PUBLISHed on the channel of the
// same name in the same atomic step, which is what wakes a Python AsyncResult.get() at once. A stored SUCCESS is
// never replaced (the check and the write are one Lua script).
//
// wait() SUBSCRIBEs to the channel first, then GETs (so a result stored in between is not missed), then sleeps
// in poll(2) on the subscription until a ready result is published or the timeout passes. No polling of keys;
// if the connection breaks it reconnects with backoff within the timeout.
#pragma once

#include <memory>

#include "broker/broker.hpp"
#include "broker/redis/connection.hpp"

namespace ccmulti::broker::redis {

class RedisResultStore final : public ResultStore {
public:
    RedisResultStore(RedisUrl url, std::chrono::seconds expires);

    // Throws ConnectionError when Redis cannot be reached (after one reconnect attempt): nothing was stored.
    bool store(const ResultMeta& meta) override;
    std::optional<ResultMeta> get(const std::string& task_id) override;
    std::optional<ResultMeta> wait(const std::string& task_id,
                                   std::optional<std::chrono::milliseconds> timeout) override;

private:
    RedisUrl url_;
    std::chrono::seconds expires_;
    OnDemandConnection connection_;
};

}  // namespace ccmulti::broker::redis
