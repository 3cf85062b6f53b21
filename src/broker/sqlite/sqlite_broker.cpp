#include "broker/sqlite/sqlite_broker.hpp"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <map>
#include <set>

#include "broker/sqlite/schema.hpp"
#include "broker/sqlite/sqlite_consumer.hpp"
#include "broker/sqlite/wakeups.hpp"
#include "platform/fd.hpp"
#include "util/error.hpp"

namespace ccmulti::broker::sqlite {

std::shared_ptr<Database> open_database(const std::filesystem::path& path) {
    return std::make_shared<Database>(path, std::chrono::seconds(30), migrate);
}

SqliteBroker::SqliteBroker(std::shared_ptr<Database> db) : db_(std::move(db)) {}

std::string SqliteBroker::url() const {
    return "sqlite://" + db_->path().string();
}

void SqliteBroker::publish(const TaskMessage& message) {
    publish_many({message});
}

void SqliteBroker::publish_many(const std::vector<TaskMessage>& messages) {
    db_->revalidate();
    WriteTransaction transaction(*db_);
    Statement insert(*db_,
                     "INSERT INTO messages (queue, task_id, task_name, eta, envelope, published_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)");
    std::set<std::string> queues;
    const double now = unix_now();
    for (const auto& message : messages) {
        std::optional<double> eta;
        if (message.eta) eta = protocol::to_unix(*message.eta);
        insert.bind(1, message.queue).bind(2, message.id).bind(3, message.task).bind(4, eta);
        insert.bind(5, protocol::encode_string(message)).bind(6, now).run();
        insert.reset();
        queues.insert(message.queue);
    }
    std::vector<std::string> wakes;
    for (const auto& queue : queues)
        for (auto& wake : queue_wakes(*db_, queue)) wakes.push_back(std::move(wake));
    transaction.commit();
    ring(wakes);
}

std::unique_ptr<Consumer> SqliteBroker::consume(const ConsumerInfo& info) {
    sqlite::restore_orphans(*db_);
    return std::make_unique<SqliteConsumer>(db_, info, heartbeat_interval, lease);
}

std::size_t SqliteBroker::restore_orphans() {
    return sqlite::restore_orphans(*db_);
}

std::size_t SqliteBroker::purge(const std::string& queue) {
    Statement purge(*db_, "DELETE FROM messages WHERE queue = ? AND consumer IS NULL");
    purge.bind(1, queue).run();
    return static_cast<std::size_t>(db_->changes());
}

std::vector<QueueStats> SqliteBroker::queue_stats() {
    std::map<std::string, QueueStats> queues;
    auto entry = [&queues](const std::string& name) -> QueueStats& {
        auto& stats = queues[name];
        stats.name = name;
        return stats;
    };
    {
        Statement counts(*db_,
                         "SELECT queue, "
                         "  SUM(consumer IS NULL AND (eta IS NULL OR eta <= ?1)), "
                         "  SUM(consumer IS NULL AND eta > ?1), "
                         "  SUM(consumer IS NOT NULL) "
                         "FROM messages GROUP BY queue");
        counts.bind(1, unix_now());
        while (counts.step()) {
            auto& stats = entry(counts.text(0));
            stats.ready = static_cast<std::size_t>(counts.integer(1));
            stats.scheduled = static_cast<std::size_t>(counts.integer(2));
            stats.reserved = static_cast<std::size_t>(counts.integer(3));
        }
    }
    Statement consumers(*db_,
                        "SELECT q.queue, c.node FROM consumer_queues q JOIN consumers c ON c.id = q.consumer "
                        "ORDER BY q.queue, c.node");
    while (consumers.step()) entry(consumers.text(0)).consumers.push_back(consumers.text(1));
    std::vector<QueueStats> out;
    for (auto& [name, stats] : queues) out.push_back(std::move(stats));
    return out;
}

std::vector<std::string> SqliteBroker::consumers_of(const std::string& queue) {
    Statement query(*db_,
                    "SELECT c.node FROM consumer_queues q JOIN consumers c ON c.id = q.consumer WHERE q.queue = ? "
                    "ORDER BY c.node");
    query.bind(1, queue);
    std::vector<std::string> nodes;
    while (query.step()) nodes.push_back(query.text(0));
    return nodes;
}

std::optional<MessageLocation> SqliteBroker::locate(const std::string& task_id) {
    Statement query(*db_, "SELECT queue, consumer IS NOT NULL FROM messages WHERE task_id = ? ORDER BY id LIMIT 1");
    query.bind(1, task_id);
    if (!query.step()) return std::nullopt;
    return MessageLocation{query.text(0), query.integer(1) != 0};
}

}  // namespace ccmulti::broker::sqlite
