// Results in the embedded broker's database (table `results`), with expiry, and waiters woken by the store
// that makes a result ready (table `result_waiters`, rung after COMMIT) instead of polling.
#pragma once

#include <memory>

#include "broker/broker.hpp"
#include "broker/sqlite/database.hpp"

namespace ccmulti::broker::sqlite {

class SqliteResultStore final : public ResultStore {
public:
    // `expires` 0: results never expire.
    SqliteResultStore(std::shared_ptr<Database> db, std::chrono::seconds expires);

    bool store(const ResultMeta& meta) override;
    void store_many(const std::vector<ResultMeta>& metas) override;  // one transaction
    // Stores `metas` inside the write transaction the caller holds on this store's database (a consumer settling
    // results and acks in one transaction); returns the waiters to ring once it committed.
    std::vector<std::string> store_within(const std::vector<ResultMeta>& metas);
    const std::shared_ptr<Database>& database() const noexcept { return db_; }
    std::optional<ResultMeta> get(const std::string& task_id) override;
    std::vector<ResultMeta> recent(std::size_t limit) override;  // by stored_at
    std::optional<ResultMeta> wait(const std::string& task_id,
                                   std::optional<std::chrono::milliseconds> timeout) override;

private:
    void sweep(double now);  // deletes expired results and abandoned waiters, at most once a minute
    struct Writer;  // the statements of a transaction that stores results, prepared once for all of them
    bool store_in(Writer& writer, const ResultMeta& meta, double now);

    std::shared_ptr<Database> db_;
    std::chrono::seconds expires_;
    double last_sweep_ = 0;
};

}  // namespace ccmulti::broker::sqlite
