#include "broker/sqlite/wakeups.hpp"

#include "platform/process_identity.hpp"
#include "platform/wake_socket.hpp"
#include "protocol/iso_time.hpp"

namespace ccmulti::broker::sqlite {

double unix_now() {
    return protocol::to_unix(protocol::now());
}

std::vector<std::string> queue_wakes(Database& db, const std::string& queue) {
    Statement query(db, "SELECT c.wake FROM consumer_queues q JOIN consumers c ON c.id = q.consumer WHERE q.queue = ?");
    query.bind(1, queue);
    std::vector<std::string> wakes;
    while (query.step()) wakes.push_back(query.text(0));
    return wakes;
}

std::vector<std::string> all_consumer_wakes(Database& db) {
    Statement query(db, "SELECT wake FROM consumers");
    std::vector<std::string> wakes;
    while (query.step()) wakes.push_back(query.text(0));
    return wakes;
}

void ring(const std::vector<std::string>& wakes) {
    for (const auto& wake : wakes) WakeSocket::ring(wake);
}

std::size_t restore_orphans(Database& db) {
    const double now = unix_now();
    std::vector<std::string> dead;
    {
        Statement query(db, "SELECT id, pid, pid_start, scope, heartbeat_at, lease FROM consumers");
        while (query.step()) {
            ProcessIdentity who{static_cast<pid_t>(query.integer(1)), static_cast<std::uint64_t>(query.integer(2)),
                                query.text(3)};
            Liveness state = liveness(who);
            // A live process of this machine keeps its claims even when it missed heartbeats (it may be stopped):
            // taking them would run its tasks twice. Elsewhere only the lease can tell.
            bool expired = query.real(4) + query.real(5) < now;
            if (state == Liveness::dead || (state == Liveness::unknown && expired)) dead.push_back(query.text(0));
        }
    }
    bool stray_claims = false;
    {
        Statement query(db,
                        "SELECT 1 FROM messages WHERE consumer IS NOT NULL AND consumer NOT IN (SELECT id FROM "
                        "consumers) LIMIT 1");
        stray_claims = query.step();
    }
    if (dead.empty() && !stray_claims) return 0;

    WriteTransaction transaction(db);
    std::size_t restored = 0;
    Statement forget(db, "DELETE FROM consumers WHERE id = ?");
    for (const auto& id : dead) {
        forget.reset();
        forget.bind(1, id).run();
    }
    Statement release(db,
                      "UPDATE messages SET consumer = NULL, claimed_at = NULL WHERE consumer IS NOT NULL AND "
                      "consumer NOT IN (SELECT id FROM consumers)");
    release.run();
    restored = static_cast<std::size_t>(db.changes());
    auto wakes = restored ? all_consumer_wakes(db) : std::vector<std::string>{};
    transaction.commit();
    ring(wakes);
    return restored;
}

}  // namespace ccmulti::broker::sqlite
