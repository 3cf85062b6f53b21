#include "broker/sqlite/sqlite_consumer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <map>

#include "broker/sqlite/sqlite_result_store.hpp"
#include "broker/sqlite/wakeups.hpp"

namespace ccmulti::broker::sqlite {

namespace {

// A claim: the message's row, its delivery count, and the database generation it was made in (a claim in a
// file that was since deleted must not ack a row of the new file that happens to have the same id).
struct ClaimHandle {
    std::int64_t id = 0, deliveries = 0;
    std::uint64_t generation = 0;
};

std::string make_tag(std::int64_t id, std::int64_t deliveries, std::uint64_t generation) {
    return std::to_string(id) + ":" + std::to_string(deliveries) + ":" + std::to_string(generation);
}

ClaimHandle parse_tag(const std::string& tag) {
    ClaimHandle handle;
    auto colon = tag.find(':');
    if (colon == std::string::npos) throw Error("not a sqlite broker delivery tag: " + tag);
    auto second = tag.find(':', colon + 1);
    if (second == std::string::npos) second = tag.size();
    std::from_chars(tag.data(), tag.data() + colon, handle.id);
    std::from_chars(tag.data() + colon + 1, tag.data() + second, handle.deliveries);
    if (second < tag.size()) std::from_chars(tag.data() + second + 1, tag.data() + tag.size(), handle.generation);
    return handle;
}

struct Candidate {
    std::int64_t id, deliveries;
    std::string queue, task_id, task_name, envelope;
};

}  // namespace

SqliteConsumer::SqliteConsumer(std::shared_ptr<Database> db, const ConsumerInfo& info,
                               std::chrono::seconds heartbeat_interval, std::chrono::seconds lease)
    : db_(std::move(db)),
      info_(info),
      rotation_(info.queues.begin(), info.queues.end()),
      id_(protocol::new_uuid()),
      identity_(self_identity()),
      heartbeat_interval_(heartbeat_interval),
      lease_(lease) {
    if (info_.queues.empty()) throw UsageError("a consumer needs at least one queue");
    generation_ = db_->generation();
    register_row();
}

void SqliteConsumer::follow_database() {
    db_->revalidate();
    if (generation_ == db_->generation()) return;
    // A new file: register there under a new id (claims of the old file are gone with it), then consume it.
    id_ = protocol::new_uuid();
    unrequeued_.clear();
    register_row();
    generation_ = db_->generation();
}

void SqliteConsumer::requeue_held_back() {
    while (!unrequeued_.empty()) {
        release(unrequeued_.front());
        unrequeued_.pop_front();
    }
}

SqliteConsumer::~SqliteConsumer() {
    try {
        close();
    } catch (...) {
        // Whatever is left is restored by the next restore_orphans once this process is gone.
    }
}

void SqliteConsumer::register_row() {
    WriteTransaction transaction(*db_);
    double now = unix_now();
    Statement insert(*db_,
                     "INSERT OR REPLACE INTO consumers (id, node, pid, pid_start, scope, wake, started_at, "
                     "heartbeat_at, lease) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    insert.bind(1, id_).bind(2, info_.node).bind(3, static_cast<std::int64_t>(identity_.pid));
    insert.bind(4, static_cast<std::int64_t>(identity_.start_time)).bind(5, identity_.scope).bind(6, wake_.name());
    insert.bind(7, now).bind(8, now).bind(9, static_cast<double>(lease_.count())).run();
    Statement queue(*db_, "INSERT OR IGNORE INTO consumer_queues (queue, consumer) VALUES (?, ?)");
    for (const auto& name : info_.queues) {
        queue.reset();
        queue.bind(1, name).bind(2, id_).run();
    }
    transaction.commit();
}

std::vector<Delivery> SqliteConsumer::reserve(std::size_t max) {
    if (!open_ || max == 0) return {};
    follow_database();
    requeue_held_back();
    WriteTransaction transaction(*db_);
    const double now = unix_now();
    // The first `max` ready messages of every queue, then taken round-robin from the rotation.
    std::map<std::string, std::deque<Candidate>> candidates;
    // Two ranges of messages_by_queue, never a scan over scheduled ones: the ready ones without an eta and the
    // scheduled ones now due; the first `max` of both by id.
    Statement ready(*db_,
                    "SELECT * FROM ("
                    " SELECT id, deliveries, queue, task_id, task_name, envelope FROM messages"
                    " WHERE queue = ?1 AND consumer IS NULL AND eta IS NULL ORDER BY id LIMIT ?3) "
                    "UNION ALL SELECT * FROM ("
                    " SELECT id, deliveries, queue, task_id, task_name, envelope FROM messages"
                    " WHERE queue = ?1 AND consumer IS NULL AND eta IS NOT NULL AND eta <= ?2 ORDER BY eta LIMIT ?3) "
                    "ORDER BY id LIMIT ?3");
    for (const auto& queue : rotation_) {
        ready.reset();
        ready.bind(1, queue).bind(2, now).bind(3, static_cast<std::int64_t>(max));
        auto& list = candidates[queue];
        while (ready.step())
            list.push_back(
                {ready.integer(0), ready.integer(1), ready.text(2), ready.text(3), ready.text(4), ready.text(5)});
    }
    Statement claim(*db_,
                    "UPDATE messages SET consumer = ?, claimed_at = ?, deliveries = deliveries + 1 "
                    "WHERE id = ? AND consumer IS NULL");
    std::vector<Delivery> out;
    while (out.size() < max) {
        auto it = std::find_if(rotation_.begin(), rotation_.end(),
                               [&candidates](const std::string& queue) { return !candidates[queue].empty(); });
        if (it == rotation_.end()) break;
        std::string queue = *it;
        rotation_.erase(it);
        rotation_.push_back(queue);
        Candidate candidate = std::move(candidates[queue].front());
        candidates[queue].pop_front();
        claim.reset();
        claim.bind(1, id_).bind(2, now).bind(3, candidate.id).run();
        if (db_->changes() != 1) continue;  // cannot happen under the write lock; be safe anyway

        Delivery delivery;
        delivery.tag = make_tag(candidate.id, candidate.deliveries + 1, generation_);
        try {
            delivery.message = protocol::decode_string(candidate.envelope);
        } catch (const protocol::ProtocolError& error) {
            delivery.decode_error = error.what();
            delivery.message.id = candidate.task_id;
            delivery.message.task = candidate.task_name;
        }
        delivery.message.queue = candidate.queue;
        delivery.message.redelivered = delivery.message.redelivered || candidate.deliveries > 0;
        out.push_back(std::move(delivery));
    }
    transaction.commit();
    return out;
}

void SqliteConsumer::ack(const Delivery& delivery) {
    follow_database();
    auto handle = parse_tag(delivery.tag);
    if (handle.generation != generation_) return;  // its file is gone, and the message with it
    Statement remove(*db_, "DELETE FROM messages WHERE id = ? AND consumer = ? AND deliveries = ?");
    remove.bind(1, handle.id).bind(2, id_).bind(3, handle.deliveries).run();
}

void SqliteConsumer::remove_acked(const std::vector<Delivery>& deliveries) {
    Statement remove(*db_, "DELETE FROM messages WHERE id = ? AND consumer = ? AND deliveries = ?");
    for (const auto& delivery : deliveries) {
        auto handle = parse_tag(delivery.tag);
        if (handle.generation != generation_) continue;  // its file is gone, and the message with it
        remove.reset();
        remove.bind(1, handle.id).bind(2, id_).bind(3, handle.deliveries).run();
    }
}

void SqliteConsumer::ack_many(const std::vector<Delivery>& deliveries) {
    if (deliveries.empty()) return;
    follow_database();
    WriteTransaction transaction(*db_);
    remove_acked(deliveries);
    transaction.commit();
}

void SqliteConsumer::settle(ResultStore& store, const std::vector<ResultMeta>& results,
                            const std::vector<Delivery>& deliveries) {
    auto* local = dynamic_cast<SqliteResultStore*>(&store);
    if (!local || local->database() != db_) {  // results elsewhere: stored first, then acked
        Consumer::settle(store, results, deliveries);
        return;
    }
    follow_database();
    WriteTransaction transaction(*db_);
    auto wakes = local->store_within(results);  // a result lands with its ack, or neither does
    remove_acked(deliveries);
    transaction.commit();
    ring(wakes);
}

void SqliteConsumer::requeue(const Delivery& delivery) {
    try {
        follow_database();
        requeue_held_back();
        release(delivery);
    } catch (const Error& e) {
        // Never lost: it stays claimed by this live consumer, and is given back by the next reserve or heartbeat
        // that can write (or, should this process end first, by whoever restores its claims).
        spdlog::warn("cannot return task {} to queue {} now ({}); trying again shortly", delivery.message.id,
                     delivery.message.queue, e.what());
        unrequeued_.push_back(delivery);
    }
}

void SqliteConsumer::release(const Delivery& delivery) {
    auto handle = parse_tag(delivery.tag);
    if (handle.generation != generation_) return;  // its file is gone
    WriteTransaction transaction(*db_);
    Statement release(*db_,
                      "UPDATE messages SET consumer = NULL, claimed_at = NULL "
                      "WHERE id = ? AND consumer = ? AND deliveries = ?");
    release.bind(1, handle.id).bind(2, id_).bind(3, handle.deliveries).run();
    auto wakes = db_->changes() ? queue_wakes(*db_, delivery.message.queue) : std::vector<std::string>{};
    transaction.commit();
    ring(wakes);
}

std::optional<TimePoint> SqliteConsumer::next_eta() {
    follow_database();
    std::string sql =
        "SELECT MIN(eta) FROM messages WHERE eta IS NOT NULL AND consumer IS NULL AND eta > ? AND queue IN (";
    for (std::size_t i = 0; i < info_.queues.size(); ++i) sql += i ? ", ?" : "?";
    sql += ")";
    Statement query(*db_, sql);
    query.bind(1, unix_now());
    for (std::size_t i = 0; i < info_.queues.size(); ++i) query.bind(static_cast<int>(i) + 2, info_.queues[i]);
    if (!query.step() || query.is_null(0)) return std::nullopt;
    return protocol::from_unix(query.real(0));
}

void SqliteConsumer::heartbeat() {
    if (!open_) return;
    follow_database();
    requeue_held_back();
    Statement beat(*db_, "UPDATE consumers SET heartbeat_at = ? WHERE id = ?");
    beat.bind(1, unix_now()).bind(2, id_).run();
    // Our row is gone only if someone judged us dead (a lease expired while we were stopped) and already gave
    // our claims back; register again so we are visible and reachable.
    if (db_->changes() == 0) register_row();
    restore_orphans(*db_);
}

void SqliteConsumer::close() {
    if (!open_) return;
    open_ = false;
    WriteTransaction transaction(*db_);
    Statement queues(*db_, "SELECT DISTINCT queue FROM messages WHERE consumer = ?");
    queues.bind(1, id_);
    std::vector<std::string> wakes;
    std::vector<std::string> held_queues;
    while (queues.step()) held_queues.push_back(queues.text(0));
    Statement release(*db_, "UPDATE messages SET consumer = NULL, claimed_at = NULL WHERE consumer = ?");
    release.bind(1, id_).run();
    Statement forget(*db_, "DELETE FROM consumers WHERE id = ?");
    forget.bind(1, id_).run();
    for (const auto& queue : held_queues)
        for (auto& wake : queue_wakes(*db_, queue)) wakes.push_back(std::move(wake));
    transaction.commit();
    ring(wakes);
}

}  // namespace ccmulti::broker::sqlite
