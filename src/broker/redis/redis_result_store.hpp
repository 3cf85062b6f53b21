// Task results exactly where and how Celery's Redis result backend keeps them: `celery-task-meta-<id>` holds the
// meta JSON (SETEX with the result expiry, SET when it is 0), and every write is PUBLISHed on the channel of the
// same name in the same atomic step, which is what wakes a Python AsyncResult.get() at once. A stored final state
// (SUCCESS, FAILURE, REVOKED) is never replaced: SUCCESS, FAILURE, RETRY and REVOKED go through one Lua script
// that checks and writes; STARTED is a SET NX + PUBLISH (a run's first state, it only lands where nothing is
// stored yet: a re-run keeps the state of the run before until its own outcome). store_many() sends a batch in
// one pipeline.
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
    void store_many(const std::vector<ResultMeta>& metas) override;
    std::optional<ResultMeta> get(const std::string& task_id) override;
    // SCANs at most max_recent_scan result keys (Redis keeps no order of them) and sorts what it read by
    // date_done, not-yet-finished ones first.
    std::vector<ResultMeta> recent(std::size_t limit) override;
    static constexpr std::size_t max_recent_scan = 10000;
    std::optional<ResultMeta> wait(const std::string& task_id,
                                   std::optional<std::chrono::milliseconds> timeout) override;

    // For RedisConsumer::settle, which stores results and acks in one MULTI when both are on one server.
    bool same_server(const RedisUrl& url) const;
    // The commands that store `metas`, to go inside a MULTI: the keep-a-final-state script is sent whole (EVAL),
    // since an EVALSHA the server has forgotten would fail on its own while the rest of the MULTI commits.
    void add_to_transaction(std::vector<Command>& commands, const std::vector<ResultMeta>& metas) const {
        add_commands(commands, metas, {});
    }

private:
    // The commands that store `metas`, in order: SET NX (+ PUBLISH) for STARTED, else the keep-a-final-state
    // script, one call for each run of such results between STARTEDs (at most max_results_per_call each):
    // EVALSHA `script_sha`, or EVAL of its source when that is empty.
    void add_commands(std::vector<Command>& commands, const std::vector<ResultMeta>& metas,
                      std::string_view script_sha) const;
    static constexpr std::size_t max_results_per_call = 1000;
    std::vector<Reply> run(const std::vector<ResultMeta>& metas);  // one pipeline; throws Error on an error reply

    RedisUrl url_;
    std::chrono::seconds expires_;
    OnDemandConnection connection_;
};

}  // namespace ccmulti::broker::redis
