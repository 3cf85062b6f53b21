#include "broker/sqlite/sqlite_broker.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "test_db.hpp"

using namespace ccmulti;
using namespace ccmulti::broker;
using namespace ccmulti::broker::testing;
using nlohmann::json;
using protocol::make_message;

namespace {

TaskMessage on(const std::string& queue, const std::string& task = "t", json args = json::array()) {
    TaskMessage message = make_message(task, std::move(args));
    message.queue = queue;
    return message;
}

bool readable(int fd, int timeout_ms) {
    pollfd entry{fd, POLLIN, 0};
    return ::poll(&entry, 1, timeout_ms) == 1;
}

}  // namespace

TEST(SqliteBroker, UrlsNameTheDatabase) {
    EXPECT_EQ(sqlite_path("sqlite://", "/var/lib/x"), "/var/lib/x/broker.sqlite3");
    EXPECT_EQ(sqlite_path("sqlite:///tmp/b.db", "/var/lib/x"), "/tmp/b.db");
    EXPECT_THROW(sqlite_path("sqlite://relative.db", "/x"), UsageError);
    EXPECT_THROW(connect({"sqs://localhost", "/tmp", std::chrono::seconds(1), ""}), UsageError);
}

TEST(SqliteBroker, TheDatabaseIsPrivateAndNeverASymlink) {
    TempDir dir;
    { auto connection = open_in(dir); }
    struct stat st {};
    ASSERT_EQ(::stat((dir.path() / "broker.sqlite3").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);  // task arguments and results: the user's alone

    TempDir shared;
    std::filesystem::create_symlink(dir.path() / "elsewhere.db", shared.path() / "broker.sqlite3");
    try {
        open_in(shared);
        FAIL() << "opened a database through a symlink";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("it is a symlink"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "elsewhere.db"));
}

TEST(SqliteBroker, ItsWalShmAndJournalAreNeverSymlinksOrFifos) {
    // Root opening a shared state dir must not write the database's -wal or -shm into what a symlink planted
    // there points to, nor into a FIFO.
    for (const char* suffix : {"-wal", "-shm", "-journal"}) {
        TempDir target, shared;
        std::ofstream(target.path() / "victim") << "precious\n";
        std::filesystem::create_symlink(target.path() / "victim",
                                        shared.path() / (std::string("broker.sqlite3") + suffix));
        try {
            open_in(shared);
            FAIL() << "opened a database beside a symlinked " << suffix;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(std::string("broker.sqlite3") + suffix + " is a symlink"),
                      std::string::npos)
                << e.what();
        }
        EXPECT_EQ(std::filesystem::file_size(target.path() / "victim"), 9U);
    }
    TempDir shared;
    ASSERT_EQ(::mkfifo((shared.path() / "broker.sqlite3-wal").c_str(), 0600), 0);
    try {
        open_in(shared);
        FAIL() << "opened a database beside a FIFO";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("is not a regular file"), std::string::npos) << e.what();
    }
}

TEST(SqliteBroker, PublishReserveAck) {
    TempDir dir;
    auto conn = open_in(dir);
    TaskMessage sent = on("celery", "tasks.add", json::array({2, 2}));
    conn.broker->publish(sent);
    EXPECT_EQ(conn.broker->locate(sent.id)->queue, "celery");
    EXPECT_FALSE(conn.broker->locate(sent.id)->reserved);

    auto consumer = conn.broker->consume({"w1@h", {"celery"}});
    auto got = consumer->reserve(10);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].message, sent);
    EXPECT_FALSE(got[0].decode_error);
    EXPECT_TRUE(conn.broker->locate(sent.id)->reserved);
    EXPECT_TRUE(consumer->reserve(10).empty());

    auto stats = conn.broker->queue_stats();
    ASSERT_EQ(stats.size(), 1u);
    EXPECT_EQ(stats[0].name, "celery");
    EXPECT_EQ(stats[0].reserved, 1u);
    EXPECT_EQ(stats[0].ready, 0u);
    EXPECT_EQ(stats[0].consumers, std::vector<std::string>{"w1@h"});

    consumer->ack(got[0]);
    EXPECT_FALSE(conn.broker->locate(sent.id));
    EXPECT_EQ(conn.broker->queue_stats()[0].reserved, 0u);
}

TEST(SqliteBroker, PublishManyKeepsOrderAndWakesEachQueuesConsumers) {
    TempDir dir;
    auto conn = open_in(dir);
    auto high = conn.broker->consume({"w1@h", {"high"}});
    auto low = conn.broker->consume({"w2@h", {"low"}});
    high->drain_wakeups();
    low->drain_wakeups();
    conn.broker->publish_many({on("high", "h0"), on("low", "l0"), on("high", "h1")});
    EXPECT_TRUE(readable(high->wakeup_fd(), 1000));
    EXPECT_TRUE(readable(low->wakeup_fd(), 1000));
    std::vector<std::string> order;
    for (const auto& d : high->reserve(10)) order.push_back(d.message.task);
    EXPECT_EQ(order, (std::vector<std::string>{"h0", "h1"}));
    ASSERT_EQ(low->reserve(10).size(), 1u);
}

TEST(SqliteBroker, AckManyRemovesEveryMessageItHolds) {
    TempDir dir;
    auto conn = open_in(dir);
    conn.broker->publish_many({on("celery", "a"), on("celery", "b"), on("celery", "c")});
    auto consumer = conn.broker->consume({"w1@h", {"celery"}});
    auto got = consumer->reserve(2);
    ASSERT_EQ(got.size(), 2u);
    consumer->ack_many(got);
    for (const auto& delivery : got) EXPECT_FALSE(conn.broker->locate(delivery.message.id));
    EXPECT_EQ(conn.broker->queue_stats()[0].ready, 1u);
    EXPECT_EQ(conn.broker->queue_stats()[0].reserved, 0u);
    consumer->ack_many({});
}

TEST(SqliteBroker, SettleStoresResultsAndAcksInTheSameDatabase) {
    TempDir dir;
    auto conn = open_in(dir);
    conn.broker->publish_many({on("celery", "a"), on("celery", "b")});
    auto consumer = conn.broker->consume({"w1@h", {"celery"}});
    auto got = consumer->reserve(2);
    ASSERT_EQ(got.size(), 2u);
    consumer->settle(*conn.results, {protocol::success_result(got[0].message.id, 1)}, got);
    EXPECT_EQ(conn.results->get(got[0].message.id)->result, 1);
    EXPECT_FALSE(conn.broker->locate(got[0].message.id));
    EXPECT_FALSE(conn.broker->locate(got[1].message.id));
}

TEST(SqliteBroker, ReservesFairlyAcrossQueues) {
    TempDir dir;
    auto conn = open_in(dir);
    for (int i = 0; i < 3; ++i) conn.broker->publish(on("high", "h" + std::to_string(i)));
    for (int i = 0; i < 3; ++i) conn.broker->publish(on("low", "l" + std::to_string(i)));
    auto consumer = conn.broker->consume({"w1@h", {"high", "low"}});
    std::vector<std::string> order;
    for (const auto& d : consumer->reserve(4)) order.push_back(d.message.task);
    EXPECT_EQ(order, (std::vector<std::string>{"h0", "l0", "h1", "l1"}));
    // The rotation carries over to the next reserve, one at a time.
    EXPECT_EQ(consumer->reserve(1)[0].message.task, "h2");
    EXPECT_EQ(consumer->reserve(1)[0].message.task, "l2");
    EXPECT_TRUE(consumer->reserve(1).empty());
}

TEST(SqliteBroker, RequeueGoesToTheFrontRedelivered) {
    TempDir dir;
    auto conn = open_in(dir);
    conn.broker->publish(on("q", "first"));
    conn.broker->publish(on("q", "second"));
    auto consumer = conn.broker->consume({"w1@h", {"q"}});
    auto first = consumer->reserve(1);
    ASSERT_EQ(first.size(), 1u);
    EXPECT_FALSE(first[0].message.redelivered);
    consumer->requeue(first[0]);
    auto again = consumer->reserve(1);
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0].message.task, "first");
    EXPECT_TRUE(again[0].message.redelivered);
    // The old claim handle is stale: acking it must not delete the new claim.
    consumer->ack(first[0]);
    EXPECT_TRUE(conn.broker->locate(again[0].message.id));
    consumer->ack(again[0]);
    EXPECT_FALSE(conn.broker->locate(again[0].message.id));
}

TEST(SqliteBroker, EtaHoldsMessagesBack) {
    TempDir dir;
    auto conn = open_in(dir);
    TaskMessage later = on("q", "later");
    later.eta = protocol::now() + std::chrono::hours(1);
    TaskMessage past = on("q", "past");
    past.eta = protocol::now() - std::chrono::seconds(1);
    conn.broker->publish(later);
    conn.broker->publish(past);
    auto consumer = conn.broker->consume({"w1@h", {"q"}});
    auto got = consumer->reserve(10);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].message.task, "past");
    EXPECT_EQ(consumer->next_eta(), later.eta);
    auto stats = conn.broker->queue_stats();
    EXPECT_EQ(stats[0].scheduled, 1u);
    EXPECT_EQ(stats[0].reserved, 1u);
}

TEST(SqliteBroker, DueAndImmediateMessagesAreClaimedInPublishOrderPastScheduledOnes) {
    TempDir dir;
    auto conn = open_in(dir);
    auto with_eta = [](const char* task, std::chrono::seconds from_now) {
        TaskMessage message = on("q", task);
        message.eta = protocol::now() + from_now;
        return message;
    };
    for (int i = 0; i < 20; ++i) conn.broker->publish(with_eta("tomorrow", std::chrono::hours(24)));
    conn.broker->publish(on("q", "a"));
    conn.broker->publish(with_eta("b", -std::chrono::seconds(1)));
    conn.broker->publish(on("q", "c"));
    conn.broker->publish(with_eta("d", -std::chrono::seconds(5)));
    auto consumer = conn.broker->consume({"w1@h", {"q"}});
    std::vector<std::string> order;
    for (auto& delivery : consumer->reserve(3)) order.push_back(delivery.message.task);
    for (auto& delivery : consumer->reserve(10)) order.push_back(delivery.message.task);
    EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "c", "d"}));
    EXPECT_EQ(conn.broker->queue_stats()[0].scheduled, 20u);
}

TEST(SqliteBroker, CloseReturnsHeldMessages) {
    TempDir dir;
    auto conn = open_in(dir);
    conn.broker->publish(on("q"));
    {
        auto consumer = conn.broker->consume({"w1@h", {"q"}});
        EXPECT_EQ(consumer->reserve(5).size(), 1u);
    }
    auto stats = conn.broker->queue_stats();
    EXPECT_EQ(stats[0].ready, 1u);
    EXPECT_TRUE(stats[0].consumers.empty());
}

TEST(SqliteBroker, PurgeLeavesClaimedMessages) {
    TempDir dir;
    auto conn = open_in(dir);
    for (int i = 0; i < 3; ++i) conn.broker->publish(on("q"));
    conn.broker->publish(on("other"));
    auto consumer = conn.broker->consume({"w1@h", {"q"}});
    auto held = consumer->reserve(1);
    EXPECT_EQ(conn.broker->purge("q"), 2u);
    EXPECT_EQ(conn.broker->purge("q"), 0u);
    EXPECT_TRUE(conn.broker->locate(held[0].message.id));
    EXPECT_EQ(conn.broker->queue_stats().size(), 2u);
}

TEST(SqliteBroker, UndecodableMessageIsDeliveredWithItsId) {
    TempDir dir;
    auto conn = open_in(dir);
    TaskMessage message = on("q", "tasks.x");
    conn.broker->publish(message);
    {
        sqlite::Database raw(broker::sqlite_path("sqlite://", dir.path()));
        raw.exec("UPDATE messages SET envelope = '{\"headers\": {}}'");
    }
    auto consumer = conn.broker->consume({"w1@h", {"q"}});
    auto got = consumer->reserve(1);
    ASSERT_EQ(got.size(), 1u);
    ASSERT_TRUE(got[0].decode_error);
    EXPECT_EQ(got[0].message.id, message.id);
    EXPECT_EQ(got[0].message.task, "tasks.x");
}

TEST(SqliteBroker, DeadConsumersClaimsAreRestored) {
    TempDir dir;
    auto conn = open_in(dir);
    TaskMessage message = on("q");
    conn.broker->publish(message);
    int ready_pipe[2];
    ASSERT_EQ(::pipe(ready_pipe), 0);
    // The child claims the message and then hangs until killed, never acking.
    pid_t child = fork_child([&] {
        auto child_conn = open_in(dir);
        auto consumer = child_conn.broker->consume({"doomed@h", {"q"}});
        auto got = consumer->reserve(1);
        char byte = got.size() == 1 ? 'y' : 'n';
        (void)!::write(ready_pipe[1], &byte, 1);
        ::pause();
    });
    char byte = 0;
    ASSERT_EQ(::read(ready_pipe[0], &byte, 1), 1);
    ASSERT_EQ(byte, 'y');
    ::close(ready_pipe[0]);
    ::close(ready_pipe[1]);

    EXPECT_EQ(conn.broker->restore_orphans(), 0u);  // alive: its claim stands
    EXPECT_TRUE(conn.broker->locate(message.id)->reserved);
    EXPECT_EQ(conn.broker->consumers_of("q"), std::vector<std::string>{"doomed@h"});

    ::kill(child, SIGKILL);
    wait_child(child);
    EXPECT_EQ(conn.broker->restore_orphans(), 1u);
    EXPECT_FALSE(conn.broker->locate(message.id)->reserved);
    EXPECT_TRUE(conn.broker->consumers_of("q").empty());

    auto consumer = conn.broker->consume({"heir@h", {"q"}});
    auto got = consumer->reserve(1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_TRUE(got[0].message.redelivered);
}

TEST(SqliteBroker, PublishRingsTheQueuesConsumers) {
    TempDir dir;
    auto conn = open_in(dir);
    auto consumer = conn.broker->consume({"w1@h", {"q"}});
    auto bystander = conn.broker->consume({"w2@h", {"elsewhere"}});
    consumer->drain_wakeups();
    EXPECT_FALSE(readable(consumer->wakeup_fd(), 0));
    // Published from another process, as `ccmulti call` does.
    pid_t child = fork_child([&] { open_in(dir).broker->publish(on("q")); });
    EXPECT_EQ(wait_child(child), 0);
    EXPECT_TRUE(readable(consumer->wakeup_fd(), 5000));
    EXPECT_FALSE(readable(bystander->wakeup_fd(), 0));
    consumer->drain_wakeups();
    EXPECT_FALSE(readable(consumer->wakeup_fd(), 0));
    EXPECT_EQ(consumer->reserve(5).size(), 1u);
}

TEST(SqliteBroker, ConcurrentConsumersNeverShareAMessage) {
    TempDir dir;
    constexpr int messages = 600, consumers = 4;
    {
        auto conn = open_in(dir);
        for (int i = 0; i < messages; ++i) conn.broker->publish(on("q", "t", json::array({i})));
    }
    std::vector<pid_t> children;
    for (int c = 0; c < consumers; ++c) {
        auto out = dir.path() / ("claims-" + std::to_string(c));
        children.push_back(fork_child([&dir, out] {
            auto conn = open_in(dir);
            auto consumer = conn.broker->consume({"w@h", {"q"}});
            std::ofstream file(out);
            while (true) {
                auto got = consumer->reserve(3);
                if (got.empty()) break;
                for (const auto& d : got) {
                    file << d.message.args[0].get<int>() << " " << d.tag << " " << getpid() << " "
                         << d.message.redelivered << "\n";
                    consumer->ack(d);
                }
            }
        }));
    }
    for (pid_t child : children) EXPECT_EQ(wait_child(child), 0);
    std::multiset<int> seen;
    for (int c = 0; c < consumers; ++c) {
        std::ifstream file(dir.path() / ("claims-" + std::to_string(c)));
        std::string line;
        while (std::getline(file, line)) seen.insert(std::stoi(line));
    }
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(messages));
    EXPECT_EQ(std::set<int>(seen.begin(), seen.end()).size(), static_cast<std::size_t>(messages));
    EXPECT_TRUE(open_in(dir).broker->queue_stats().empty());
}

TEST(SqliteBroker, ADeletedDatabaseIsFollowedToTheNewFileAtItsPath) {
    TempDir dir;
    auto node = open_in(dir);
    auto consumer = node.broker->consume({"w1@h", {"q"}});
    node.broker->publish(on("q"));
    auto held = consumer->reserve(1);
    ASSERT_EQ(held.size(), 1u);
    node.broker->publish(on("q"));  // left queued in the old file
    const auto db = dir.path() / "broker.sqlite3";
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db.string() + suffix);

    auto client = open_in(dir);  // `ccmulti call` after the deletion: a new database
    TaskMessage sent = on("q");
    client.broker->publish(sent);
    auto got = consumer->reserve(5);  // the node notices, registers in the new file and takes what was sent there
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].message.id, sent.id);
    // A claim of the old file acks nothing in the new one, even where the row ids coincide.
    consumer->ack(held[0]);
    EXPECT_TRUE(client.broker->locate(sent.id));
    consumer->ack(got[0]);
    EXPECT_FALSE(client.broker->locate(sent.id));
    EXPECT_EQ(client.broker->consumers_of("q"), std::vector<std::string>{"w1@h"});
}
