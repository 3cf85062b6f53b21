// A consumer of the SQLite broker (made by SqliteBroker::consume): a row in `consumers` with this process's
// identity, the queues it takes, and the wake socket publishers ring.
#pragma once

#include <deque>
#include <memory>

#include "broker/broker.hpp"
#include "broker/sqlite/database.hpp"
#include "platform/process_identity.hpp"
#include "platform/wake_socket.hpp"

namespace ccmulti::broker::sqlite {

class SqliteConsumer final : public Consumer {
public:
    SqliteConsumer(std::shared_ptr<Database> db, const ConsumerInfo& info, std::chrono::seconds heartbeat_interval,
                   std::chrono::seconds lease);
    ~SqliteConsumer() override;

    std::vector<Delivery> reserve(std::size_t max) override;
    void ack(const Delivery& delivery) override;
    void ack_many(const std::vector<Delivery>& deliveries) override;  // one transaction
    // With a result store in the same database: the results and the acks in one transaction.
    void settle(ResultStore& store, const std::vector<ResultMeta>& results,
                const std::vector<Delivery>& deliveries) override;
    void requeue(const Delivery& delivery) override;
    int wakeup_fd() const override { return wake_.fd(); }
    void drain_wakeups() override { wake_.drain(); }
    std::optional<TimePoint> next_eta() override;
    void heartbeat() override;
    std::chrono::seconds heartbeat_interval() const override { return heartbeat_interval_; }
    void close() override;

    const std::string& id() const noexcept { return id_; }

private:
    void register_row();
    void remove_acked(const std::vector<Delivery>& deliveries);  // inside the caller's write transaction
    void follow_database();    // the database file was deleted or replaced: register in the new one
    void requeue_held_back();  // what requeue() could not write at the time
    void release(const Delivery& delivery);

    std::deque<Delivery> unrequeued_;  // requeues that failed (database full, busy): retried before anything else
    std::uint64_t generation_ = 0;     // of the database connection our registration and claims belong to
    std::shared_ptr<Database> db_;
    ConsumerInfo info_;
    std::deque<std::string> rotation_;  // queues in the order the next reserve tries them
    std::string id_;
    ProcessIdentity identity_;
    WakeSocket wake_;
    std::chrono::seconds heartbeat_interval_, lease_;
    bool open_ = true;
};

}  // namespace ccmulti::broker::sqlite
