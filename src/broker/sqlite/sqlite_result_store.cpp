#include "broker/sqlite/sqlite_result_store.hpp"

#include "broker/sqlite/wakeups.hpp"
#include "platform/wake_socket.hpp"

namespace ccmulti::broker::sqlite {

namespace {

// A waiter also wakes this often without a ring: it refreshes its row (so sweeps keep it) and re-checks, which
// bounds the cost of any lost ring.
constexpr std::chrono::seconds waiter_refresh{30};
constexpr double abandoned_waiter_age = 3600;

}  // namespace

SqliteResultStore::SqliteResultStore(std::shared_ptr<Database> db, std::chrono::seconds expires)
    : db_(std::move(db)), expires_(expires) {}

struct SqliteResultStore::Writer {
    explicit Writer(Database& db)
        : existing(db, "SELECT status FROM results WHERE task_id = ? AND (expires_at IS NULL OR expires_at > ?)"),
          write(db,
                "INSERT OR REPLACE INTO results (task_id, status, meta, stored_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)"),
          waiters(db, "SELECT wake FROM result_waiters WHERE task_id = ?") {}
    Statement existing, write, waiters;
    std::vector<std::string> wakes;  // rung after the commit
};

// Inside the caller's write transaction.
bool SqliteResultStore::store_in(Writer& writer, const ResultMeta& meta, double now) {
    writer.existing.reset();
    writer.existing.bind(1, meta.task_id).bind(2, now);
    // A final state stays: a task run twice keeps the outcome stored first.
    if (writer.existing.step() && (writer.existing.text(0) == "SUCCESS" || writer.existing.text(0) == "FAILURE" ||
                                   writer.existing.text(0) == "REVOKED"))
        return false;
    std::optional<double> expires_at;
    if (expires_.count() > 0) expires_at = now + static_cast<double>(expires_.count());
    writer.write.reset();
    writer.write.bind(1, meta.task_id)
        .bind(2, protocol::to_string(meta.status))
        .bind(3, protocol::to_json_text(meta));
    writer.write.bind(4, now).bind(5, expires_at).run();
    writer.waiters.reset();
    writer.waiters.bind(1, meta.task_id);
    while (writer.waiters.step()) writer.wakes.push_back(writer.waiters.text(0));
    return true;
}

bool SqliteResultStore::store(const ResultMeta& meta) {
    db_->revalidate();
    const double now = unix_now();
    WriteTransaction transaction(*db_);
    Writer writer(*db_);
    if (!store_in(writer, meta, now)) return false;  // rolls back: nothing written
    sweep(now);
    transaction.commit();
    ring(writer.wakes);
    return true;
}

// A busy node settles what one turn of its loop finished together: one transaction (one WAL commit) for all.
void SqliteResultStore::store_many(const std::vector<ResultMeta>& metas) {
    if (metas.empty()) return;
    db_->revalidate();
    WriteTransaction transaction(*db_);
    auto wakes = store_within(metas);
    transaction.commit();
    ring(wakes);
}

std::vector<std::string> SqliteResultStore::store_within(const std::vector<ResultMeta>& metas) {
    const double now = unix_now();
    Writer writer(*db_);
    for (const auto& meta : metas) store_in(writer, meta, now);
    sweep(now);
    return std::move(writer.wakes);
}

void SqliteResultStore::sweep(double now) {
    if (now - last_sweep_ < 60) return;
    last_sweep_ = now;
    Statement results(*db_, "DELETE FROM results WHERE expires_at IS NOT NULL AND expires_at <= ?");
    results.bind(1, now).run();
    Statement waiters(*db_, "DELETE FROM result_waiters WHERE since < ?");
    waiters.bind(1, now - abandoned_waiter_age).run();
}

std::optional<ResultMeta> SqliteResultStore::get(const std::string& task_id) {
    db_->revalidate();
    Statement query(*db_, "SELECT meta FROM results WHERE task_id = ? AND (expires_at IS NULL OR expires_at > ?)");
    query.bind(1, task_id).bind(2, unix_now());
    if (!query.step()) return std::nullopt;
    auto text = query.text(0);
    return protocol::result_from_json(nlohmann::json::parse(text));
}

std::vector<ResultMeta> SqliteResultStore::recent(std::size_t limit) {
    db_->revalidate();
    Statement query(
        *db_,
        "SELECT meta FROM results WHERE expires_at IS NULL OR expires_at > ? ORDER BY stored_at DESC, rowid DESC "
        "LIMIT ?");
    query.bind(1, unix_now()).bind(2, static_cast<std::int64_t>(limit));
    std::vector<ResultMeta> out;
    while (query.step()) {
        try {
            out.push_back(protocol::result_from_json(nlohmann::json::parse(query.text(0))));
        } catch (const std::exception&) {
            // a row another program wrote in another shape: not a result this list can show
        }
    }
    return out;
}

std::optional<ResultMeta> SqliteResultStore::wait(const std::string& task_id,
                                                  std::optional<std::chrono::milliseconds> timeout) {
    using std::chrono::steady_clock;
    const bool bounded = timeout.has_value();
    const auto deadline = steady_clock::now() + timeout.value_or(std::chrono::milliseconds(0));
    WakeSocket wake;
    Statement enrol(*db_, "INSERT OR REPLACE INTO result_waiters (task_id, wake, since) VALUES (?, ?, ?)");
    Statement leave(*db_, "DELETE FROM result_waiters WHERE task_id = ? AND wake = ?");
    leave.bind(1, task_id).bind(2, wake.name());
    struct Leave {
        Statement& statement;
        ~Leave() {
            try {
                statement.run();
            } catch (...) {
            }
        }
    } leave_on_exit{leave};

    std::optional<ResultMeta> latest;
    while (true) {
        // Enrol before reading, so a result stored between the read and the wait still rings us.
        enrol.reset();
        enrol.bind(1, task_id).bind(2, wake.name()).bind(3, unix_now()).run();
        wake.drain();
        latest = get(task_id);
        if (latest && protocol::is_ready(latest->status)) return latest;
        std::chrono::milliseconds slice = waiter_refresh;
        if (bounded) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady_clock::now());
            if (left.count() <= 0) return latest;
            slice = std::min(slice, left);
        }
        wake.wait(slice);
    }
}

}  // namespace ccmulti::broker::sqlite
