// The embedded broker: every queue, claim, consumer and result of a machine in one SQLite database (WAL), shared
// by all nodes and clients there. Claims are made in BEGIN IMMEDIATE transactions, so two processes never claim
// the same message; a claim records its consumer, whose process identity lets anyone return a dead node's
// messages to their queues (see wakeups.hpp: restore_orphans).
//
// Waking without polling: each consumer (and each result waiter) binds an abstract unix datagram socket and records
// its name in the database; whoever commits a publish, requeue, restore or result rings the sockets concerned
// after COMMIT (platform/wake_socket.hpp). Chosen over inotify on the -wal file because inotify fires on the WAL
// write, before the commit is visible in the shared index (a woken reader can miss the row and sleep on it), and
// on every write by anyone (heartbeats, results, claims), waking every node for nothing; a ring is targeted
// (only the queue's consumers) and ordered after the commit. Safety net: a consumer also reserves on each
// heartbeat, so even a lost ring delays a task by at most one heartbeat interval.
#pragma once

#include <memory>

#include "broker/broker.hpp"
#include "broker/sqlite/database.hpp"

namespace ccmulti::broker::sqlite {

// Opens (creating and migrating) the database at `path`.
std::shared_ptr<Database> open_database(const std::filesystem::path& path);

class SqliteBroker final : public Broker {
public:
    explicit SqliteBroker(std::shared_ptr<Database> db);

    std::string url() const override;
    void publish(const TaskMessage& message) override;
    void publish_many(const std::vector<TaskMessage>& messages) override;  // one transaction
    std::unique_ptr<Consumer> consume(const ConsumerInfo& info) override;
    std::size_t restore_orphans() override;
    std::size_t purge(const std::string& queue) override;
    std::vector<QueueStats> queue_stats() override;
    std::vector<std::string> consumers_of(const std::string& queue) override;
    std::optional<MessageLocation> locate(const std::string& task_id) override;

    // Heartbeat interval of consumers and the lease after which a consumer of another machine counts as dead.
    std::chrono::seconds heartbeat_interval{10};
    std::chrono::seconds lease{60};

private:
    std::shared_ptr<Database> db_;
};

}  // namespace ccmulti::broker::sqlite
