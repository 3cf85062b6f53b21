// RedisBroker, RedisConsumer and RedisResultStore against a real redis-server: kombu's key layout byte for byte,
// claims, wakeups without polling, restores, and outages.
#include "broker/redis/redis_broker.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <set>

#include "broker/connect.hpp"
#include "broker/redis/claims.hpp"
#include "broker/redis/keys.hpp"
#include "broker/redis/redis_consumer.hpp"
#include "broker/redis/redis_result_store.hpp"
#include "broker/redis/scripts.hpp"
#include "protocol/base64.hpp"
#include "redis_server.hpp"

using namespace ccmulti;
using namespace ccmulti::broker;
using namespace ccmulti::broker::redis;
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

// Reserves until `count` deliveries arrived or the deadline passed, sleeping in poll(2) on the wakeup fd.
std::vector<Delivery> reserve_all(Consumer& consumer, std::size_t count, int timeout_ms = 5000) {
    std::vector<Delivery> out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
        for (auto& delivery : consumer.reserve(count - out.size())) out.push_back(std::move(delivery));
        if (out.size() >= count) break;
        int wait_ms = 100;
        if (auto eta = consumer.next_eta())
            wait_ms =
                std::clamp(static_cast<int>(
                               std::chrono::duration_cast<std::chrono::milliseconds>(*eta - protocol::now()).count()) +
                               1,
                           0, 100);
        readable(consumer.wakeup_fd(), wait_ms);
        consumer.drain_wakeups();
    }
    return out;
}

// Polls a condition on Redis until it holds or two seconds pass (replies the consumer has not read yet are
// still executed by the server at once; only the moment is not ours).
template <typename Check>
bool eventually(Check check) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!check()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        readable(-1, 5);
    }
    return true;
}

class RedisTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!have_redis_server()) GTEST_SKIP() << "redis-server is not installed";
        server_ = std::make_unique<RedisServer>();
    }
    RedisUrl url(const std::string& suffix = "/0") { return server_->parsed(suffix); }
    redis::Connection& cli() {
        if (!cli_) cli_ = std::make_unique<redis::Connection>(url());
        return *cli_;
    }
    std::unique_ptr<RedisServer> server_;
    std::unique_ptr<redis::Connection> cli_;
};

}  // namespace

TEST_F(RedisTest, ConnectionErrorsSayWhereAndWhy) {
    RedisUrl nowhere;
    nowhere.port = free_port();
    try {
        redis::Connection connection(nowhere);
        FAIL() << "connected to a closed port";
    } catch (const ConnectionError& error) {
        EXPECT_EQ(std::string(error.what()),
                  "redis 127.0.0.1:" + std::to_string(nowhere.port) + ": connection refused");
    }
    EXPECT_THROW(cli().command({"NOSUCHCOMMAND"}), Error);
    EXPECT_EQ(cli().command({"PING"}).text(), "PONG");  // an error reply leaves the connection usable
}

TEST_F(RedisTest, PasswordAndDatabase) {
    RedisServer locked("s3cret");
    auto good = parse_redis_url("redis://:s3cret@127.0.0.1:" + std::to_string(locked.port()) + "/5");
    redis::Connection connection(good);
    connection.command({"SET", "k", "v"});
    EXPECT_EQ(connection.command({"CLIENT", "INFO"}).text().find("db=5") != std::string_view::npos, true);
    auto bad = parse_redis_url("redis://:wrong@127.0.0.1:" + std::to_string(locked.port()) + "/0");
    try {
        redis::Connection refused(bad);
        FAIL() << "wrong password accepted";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("authentication failed"), std::string::npos) << error.what();
    }
}

TEST_F(RedisTest, PublishIsKombusLpushWithBinding) {
    RedisBroker broker(url());
    TaskMessage message = on("high", "proj.add", json::array({2, 2}));
    message.kwargs = {{"z", 1}};
    broker.publish(message);
    TaskMessage low = on("high", "proj.add");
    low.priority = 5;
    broker.publish(low);

    Reply items = cli().command({"LRANGE", "high", "0", "-1"});
    ASSERT_EQ(items.size(), 1u);
    json envelope = json::parse(items[0].text());
    EXPECT_EQ(envelope["content-type"], "application/json");
    EXPECT_EQ(envelope["headers"]["task"], "proj.add");
    EXPECT_EQ(envelope["headers"]["id"], message.id);
    EXPECT_EQ(envelope["properties"]["delivery_info"], json({{"exchange", ""}, {"routing_key", "high"}}));
    EXPECT_EQ(envelope["properties"]["body_encoding"], "base64");
    EXPECT_EQ(json::parse(protocol::base64_decode(envelope["body"].get<std::string>()))[1], json({{"z", 1}}));
    EXPECT_EQ(cli()
                  .command({"LLEN",
                            "high\x06\x16"
                            "3"})
                  .integer(),
              1);
    EXPECT_EQ(cli().command({"SISMEMBER", "_kombu.binding.high", "high\x06\x16\x06\x16high"}).integer(), 1);
}

TEST_F(RedisTest, ReserveClaimsRoundRobinAndRecordsUnackedLikeKombu) {
    RedisBroker broker(url());
    for (int i = 0; i < 3; ++i) broker.publish(on("a", "t", json::array({i})));
    for (int i = 0; i < 3; ++i) broker.publish(on("b", "t", json::array({i})));
    auto consumer = broker.consume({"w1@h", {"a", "b"}});
    auto got = consumer->reserve(4);
    ASSERT_EQ(got.size(), 4u);
    std::vector<std::string> order;
    for (const auto& delivery : got)
        order.push_back(delivery.message.queue + std::to_string(delivery.message.args[0].get<int>()));
    EXPECT_EQ(order, (std::vector<std::string>{"a0", "b0", "a1", "b1"}));  // FIFO within a queue, fair across

    // The 4, and the 2 left, claimed ahead for the next reserve().
    EXPECT_TRUE(eventually([&] { return cli().command({"HLEN", "unacked"}).integer() == 6; }));
    EXPECT_EQ(cli().command({"ZCARD", "unacked_index"}).integer(), 6);
    json entry = json::parse(cli().command({"HGET", "unacked", got[0].tag}).text());
    ASSERT_TRUE(entry.is_array());
    EXPECT_EQ(entry[0]["headers"]["id"], got[0].message.id);
    EXPECT_EQ(entry[1], "");
    EXPECT_EQ(entry[2], "a");
    // Recorded under a claim tag of the consumer's own, the payload as published (never decoded in Lua).
    EXPECT_NE(got[0].tag, entry[0]["properties"]["delivery_tag"]);
    EXPECT_NE(got[0].tag, got[1].tag);

    for (const auto& delivery : got) consumer->ack(delivery);
    EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 2);
    auto rest = consumer->reserve(10);
    EXPECT_EQ(rest.size(), 2u);
    for (const auto& delivery : rest) consumer->ack(delivery);
    EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 0);
    EXPECT_EQ(cli().command({"ZCARD", "unacked_index"}).integer(), 0);
}

TEST_F(RedisTest, HigherPriorityListsFirst) {
    RedisBroker broker(url());
    TaskMessage low = on("q");
    low.priority = 9;
    broker.publish(low);
    TaskMessage high = on("q");
    broker.publish(high);
    auto consumer = broker.consume({"w1@h", {"q"}});
    auto got = consumer->reserve(2);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].message.id, high.id);
    EXPECT_EQ(got[1].message.id, low.id);
}

TEST_F(RedisTest, IdleConsumerIsWokenByAnyProducer) {
    RedisBroker broker(url());
    auto consumer = broker.consume({"w1@h", {"q"}});
    auto claims = [&] {  // claim script calls so far
        std::string stats = cli().command({"INFO", "commandstats"}).string();
        auto at = stats.find("cmdstat_evalsha:calls=");
        return at == std::string::npos ? 0L : std::atol(stats.c_str() + at + 22);
    };
    EXPECT_TRUE(consumer->reserve(5).empty());  // the queue is dry: waits for the doorbell
    EXPECT_FALSE(readable(consumer->wakeup_fd(), 200));
    const long before = claims();
    EXPECT_TRUE(consumer->reserve(5).empty());  // nothing rang: no claim, no round trip
    cli().command({"SET", "q-unrelated", "x"});  // under the tracked prefix "q", but no queue key
    ASSERT_TRUE(readable(consumer->wakeup_fd(), 5000));
    consumer->drain_wakeups();
    EXPECT_TRUE(consumer->reserve(5).empty());
    EXPECT_EQ(claims(), before) << "a claim was made though no queue key was written";
    // A producer that knows nothing of ccmulti (as Python's kombu): a plain LPUSH.
    std::string envelope = protocol::encode_string(on("q", "proj.add"));
    cli().command({"LPUSH", "q", envelope});
    ASSERT_TRUE(readable(consumer->wakeup_fd(), 5000));
    consumer->drain_wakeups();
    EXPECT_FALSE(readable(consumer->wakeup_fd(), 0));
    // The doorbell pops nothing: the message stays queued (safe from a SIGKILL of the node) until claimed.
    EXPECT_EQ(cli().command({"LLEN", "q"}).integer(), 1);
    EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 0);
    auto got = consumer->reserve(5);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 1);
    EXPECT_EQ(got[0].message.task, "proj.add");
    consumer->ack(got[0]);
    EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 0);
}

TEST_F(RedisTest, OverlappingQueueNamesAreAllHeard) {
    // Redis refuses tracking prefixes of which one starts another: "q" covers "q2" and every priority list.
    RedisBroker broker(url());
    auto consumer = broker.consume({"w1@h", {"q2", "q"}});
    EXPECT_TRUE(consumer->reserve(5).empty());
    for (const std::string& key : {std::string("q2"), redis::queue_key("q", 9)}) {
        cli().command({"LPUSH", key, protocol::encode_string(on(redis::queue_of_key(key)))});
        ASSERT_TRUE(readable(consumer->wakeup_fd(), 5000)) << key;
        consumer->drain_wakeups();
        auto got = consumer->reserve(5);
        ASSERT_EQ(got.size(), 1u) << key;
        consumer->ack(got[0]);
    }
}

TEST_F(RedisTest, EtaMessagesAreHeldUntilDue) {
    RedisBroker broker(url());
    TaskMessage later = on("q");
    later.eta = protocol::now() + std::chrono::milliseconds(700);
    broker.publish(later);
    auto consumer = broker.consume({"w1@h", {"q"}});
    EXPECT_TRUE(consumer->reserve(5).empty());
    ASSERT_TRUE(consumer->next_eta());
    EXPECT_EQ(*consumer->next_eta(), *later.eta);
    EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 1);  // held, as a Celery worker holds it
    auto stats = broker.queue_stats();
    ASSERT_EQ(stats.size(), 1u);
    EXPECT_EQ(stats[0].scheduled, 1u);
    auto got = reserve_all(*consumer, 1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_GE(protocol::now(), *later.eta);
}

TEST_F(RedisTest, RequeueAndCloseGiveMessagesBack) {
    RedisBroker broker(url());
    TaskMessage first = on("q"), second = on("q");
    broker.publish(first);
    broker.publish(second);
    {
        auto consumer = broker.consume({"w1@h", {"q"}});
        auto got = consumer->reserve(2);
        ASSERT_EQ(got.size(), 2u);
        consumer->requeue(got[0]);
        EXPECT_EQ(cli().command({"LLEN", "q"}).integer(), 1);
        auto again = consumer->reserve(1);
        ASSERT_EQ(again.size(), 1u);
        EXPECT_EQ(again[0].message.id, first.id);
        EXPECT_TRUE(again[0].message.redelivered);
        consumer->ack(got[0]);  // the old claim is gone: a stale ack changes nothing
        EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 2);
        consumer->reserve(1);  // the queue is dry: waits for the doorbell
    }
    EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 0);
    EXPECT_EQ(cli().command({"LLEN", "q"}).integer(), 2);
    auto consumer = broker.consume({"w2@h", {"q"}});
    auto got = consumer->reserve(5);
    std::set<std::string> ids;
    for (const auto& delivery : got) ids.insert(delivery.message.id);
    EXPECT_EQ(ids, (std::set<std::string>{first.id, second.id}));
}

TEST_F(RedisTest, ClaimsOfADeadNodeComeBackAfterTheVisibilityTimeout) {
    auto short_vt = url("/0?visibility_timeout=1");
    RedisBroker broker(short_vt);
    TaskMessage message = on("q");
    broker.publish(message);
    pid_t child = ::fork();
    if (child == 0) {
        RedisBroker own(short_vt);
        auto consumer = own.consume({"doomed@h", {"q"}});
        auto got = consumer->reserve(1);
        ::_exit(got.size() == 1 ? 0 : 1);  // dies holding the claim, as under SIGKILL
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 1);
    EXPECT_EQ(cli().command({"LLEN", "q"}).integer(), 0);

    // A client leaves it to live nodes (it cannot tell whether Redis was just out): too young for it yet.
    EXPECT_EQ(broker.restore_orphans(), 0u);
    // A live node restores it on a heartbeat (or as it connects) once it is older than the visibility timeout.
    auto consumer = broker.consume({"heir@h", {"q"}});
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (cli().command({"HLEN", "unacked"}).integer() != 0 && std::chrono::steady_clock::now() < deadline) {
        readable(-1, 100);
        consumer->heartbeat();
    }
    EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 0);
    auto got = consumer->reserve(1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].message.id, message.id);
    EXPECT_TRUE(got[0].message.redelivered);
}

TEST_F(RedisTest, LiveNodesKeepTheirClaimsByHeartbeat) {
    auto short_vt = url("/0?visibility_timeout=1");
    RedisBroker broker(short_vt);
    broker.publish(on("q"));
    auto consumer = broker.consume({"slow@h", {"q"}});
    auto got = consumer->reserve(1);
    ASSERT_EQ(got.size(), 1u);
    // Two visibility timeouts pass while the task runs; the node's heartbeats keep its claim fresh, and another
    // node's heartbeats (which restore old claims) leave it.
    auto other = broker.consume({"other@h", {"elsewhere"}});
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2200);
    while (std::chrono::steady_clock::now() < until) {
        consumer->heartbeat();
        other->heartbeat();
        EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 1);
        readable(-1, 300);
    }
    EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 1);
    consumer->ack(got[0]);
}

TEST_F(RedisTest, AClaimRefreshedBeforeItsRestoreStays) {
    // The restore step re-checks a claim's time atomically: one refreshed after the restorer listed it as old
    // (its holder back from an outage) is not taken from it.
    RedisBroker broker(url());
    broker.publish(on("q"));
    auto consumer = broker.consume({"w1@h", {"q"}});
    auto got = consumer->reserve(1);
    ASSERT_EQ(got.size(), 1u);
    std::string tag = cli().command({"HKEYS", "unacked"})[0].string();
    std::string value = cli().command({"HGET", "unacked", tag}).string();
    Reply kept = redis::eval(cli(), redis::restore_script, {"unacked", "unacked_index", "q"},
                             {tag, "payload", value, "1.0"});  // the claim is newer than 1970
    EXPECT_EQ(kept.integer(), 0);
    EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 1);
    EXPECT_EQ(cli().command({"LLEN", "q"}).integer(), 0);
    consumer->ack(got[0]);
}

TEST_F(RedisTest, TransientErrorRepliesAreConnectionErrors) {
    for (const char* reply : {"OOM command not allowed when used memory > 'maxmemory'.",
                              "READONLY You can't write against a read only replica.", "BUSY Redis is busy",
                              "MISCONF Redis is configured to save RDB snapshots", "LOADING Redis is loading"})
        EXPECT_TRUE(redis::is_transient_reply(reply)) << reply;
    for (const char* reply : {"ERR unknown command", "WRONGTYPE Operation against a key", "NOSCRIPT No matching",
                              "BUSYKEY Target key name already exists", "OOMPH"})
        EXPECT_FALSE(redis::is_transient_reply(reply)) << reply;
    cli().command({"SET", "celery", "not a list"});
    try {
        cli().command({"LPUSH", "celery", "x"});
        ADD_FAILURE() << "WRONGTYPE was not thrown";
    } catch (const redis::ConnectionError&) {
        ADD_FAILURE() << "WRONGTYPE is no connection error";
    } catch (const Error&) {
    }
    cli().command({"CONFIG", "SET", "maxmemory", "1"});
    redis::Connection writer(url());
    EXPECT_THROW(writer.command({"SET", "k", "v"}), redis::ConnectionError);
    cli().command({"CONFIG", "SET", "maxmemory", "0"});
    cli().command({"DEL", "celery"});
}

TEST_F(RedisTest, UndecodableMessagesAreDeliveredWithTheirError) {
    RedisBroker broker(url());
    TaskMessage message = on("q", "proj.add");
    json envelope = protocol::encode(message);
    envelope["content-type"] = "application/x-python-serialize";
    envelope["content-encoding"] = "binary";
    cli().command({"LPUSH", "q", envelope.dump()});
    cli().command({"LPUSH", "q", "not json at all"});
    auto consumer = broker.consume({"w1@h", {"q"}});
    auto got = consumer->reserve(5);
    ASSERT_EQ(got.size(), 2u);
    ASSERT_TRUE(got[0].decode_error);
    EXPECT_NE(got[0].decode_error->find("serializer"), std::string::npos) << *got[0].decode_error;
    EXPECT_EQ(got[0].message.id, message.id);
    EXPECT_EQ(got[0].message.task, "proj.add");
    ASSERT_TRUE(got[1].decode_error);
    for (const auto& delivery : got) consumer->ack(delivery);
    EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 0);
}

TEST_F(RedisTest, StatsPurgeLocate) {
    RedisBroker broker(url());
    TaskMessage a = on("a"), b = on("b"), held = on("b");
    broker.publish(held);
    auto consumer = broker.consume({"w1@h", {"b"}});
    ASSERT_EQ(consumer->reserve(1).size(), 1u);
    broker.publish(a);
    broker.publish(b);
    auto stats = broker.queue_stats();
    ASSERT_EQ(stats.size(), 2u);
    EXPECT_EQ(stats[0].name, "a");
    EXPECT_EQ(stats[0].ready, 1u);
    EXPECT_EQ(stats[1].name, "b");
    EXPECT_EQ(stats[1].ready, 1u);
    EXPECT_EQ(stats[1].reserved, 1u);
    EXPECT_EQ(stats[1].consumers, std::vector<std::string>{"w1@h"});
    EXPECT_EQ(broker.consumers_of("b"), std::vector<std::string>{"w1@h"});

    auto where = broker.locate(a.id);
    ASSERT_TRUE(where);
    EXPECT_EQ(where->queue, "a");
    EXPECT_FALSE(where->reserved);
    where = broker.locate(held.id);
    ASSERT_TRUE(where);
    EXPECT_EQ(where->queue, "b");
    EXPECT_TRUE(where->reserved);
    EXPECT_FALSE(broker.locate(protocol::new_uuid()));

    EXPECT_EQ(broker.purge("a"), 1u);
    EXPECT_EQ(broker.purge("a"), 0u);
    EXPECT_FALSE(broker.locate(a.id));
}

TEST_F(RedisTest, ResultsAreStoredAndPublishedAsCeleryDoes) {
    RedisResultStore store(url(), std::chrono::seconds(86400));
    EXPECT_FALSE(store.get("nope"));
    std::string id = protocol::new_uuid();

    redis::Connection subscriber(url());
    subscriber.send({"SUBSCRIBE", "celery-task-meta-" + id});
    ASSERT_TRUE(subscriber.read(std::chrono::seconds(2)));
    EXPECT_TRUE(store.store(protocol::success_result(id, 4)));
    auto published = subscriber.read(std::chrono::seconds(2));
    ASSERT_TRUE(published);
    EXPECT_EQ((*published)[0].text(), "message");
    EXPECT_EQ(json::parse((*published)[2].text())["result"], 4);

    json stored = json::parse(cli().command({"GET", "celery-task-meta-" + id}).text());
    EXPECT_EQ(stored["status"], "SUCCESS");
    EXPECT_EQ(stored["task_id"], id);
    auto ttl = cli().command({"TTL", "celery-task-meta-" + id}).integer();
    EXPECT_GT(ttl, 86000);
    EXPECT_FALSE(store.store(protocol::started_result(id, 1, "w1@h")));  // a SUCCESS stays
    EXPECT_EQ(store.get(id)->status, protocol::TaskState::success);
    // A task run twice keeps the outcome stored first: no state replaces SUCCESS, FAILURE or REVOKED.
    EXPECT_FALSE(store.store(protocol::success_result(id, 5)));
    EXPECT_EQ(store.get(id)->result, 4);
    std::string failed = protocol::new_uuid();
    EXPECT_TRUE(store.store(protocol::failure_result(failed, protocol::ExceptionInfo::of("ValueError", "x"), "tb")));
    EXPECT_FALSE(store.store(protocol::success_result(failed, 1)));
    EXPECT_EQ(store.get(failed)->status, protocol::TaskState::failure);
    std::string retried = protocol::new_uuid();
    EXPECT_TRUE(store.store(protocol::retry_result(retried, protocol::ExceptionInfo::of("Retry", "in 1s"), "tb")));
    EXPECT_TRUE(store.store(protocol::success_result(retried, 1)));
    EXPECT_EQ(store.get(retried)->status, protocol::TaskState::success);

    RedisResultStore forever(url(), std::chrono::seconds(0));
    std::string other = protocol::new_uuid();
    forever.store(protocol::failure_result(other, protocol::ExceptionInfo::of("ValueError", "bad"), "tb"));
    EXPECT_EQ(cli().command({"TTL", "celery-task-meta-" + other}).integer(), -1);
    EXPECT_EQ(forever.get(other)->exception()->type, "ValueError");
}

TEST_F(RedisTest, WaitWakesOnPublishNotPolling) {
    std::string id = protocol::new_uuid();
    auto target = url();
    pid_t child = ::fork();
    if (child == 0) {
        RedisResultStore store(target, std::chrono::seconds(60));
        // Store once the parent is subscribed: it shows in CLIENT LIST as a pubsub connection.
        redis::Connection watcher(target);
        for (int i = 0; i < 200; ++i) {
            if (watcher.command({"PUBSUB", "NUMSUB", "celery-task-meta-" + id})[1].integer() > 0) break;
            readable(-1, 10);
        }
        store.store(protocol::success_result(id, "done"));
        ::_exit(0);
    }
    RedisResultStore store(url(), std::chrono::seconds(60));
    auto started = std::chrono::steady_clock::now();
    auto result = store.wait(id, std::chrono::seconds(10));
    ::waitpid(child, nullptr, 0);
    ASSERT_TRUE(result);
    EXPECT_EQ(result->result, "done");
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
    EXPECT_FALSE(store.wait(protocol::new_uuid(), std::chrono::milliseconds(200)));
}

TEST_F(RedisTest, ConsumerRidesOutAnOutage) {
    RedisBroker broker(url());
    TaskMessage message = on("q");
    broker.publish(message);
    auto consumer = std::make_unique<RedisConsumer>(url(), ConsumerInfo{"w1@h", {"q"}});
    auto got = consumer->reserve(1);
    ASSERT_EQ(got.size(), 1u);
    consumer->reserve(1);  // the queue is dry: waits for the doorbell

    server_->stop();
    // The broken doorbell connection wakes the loop; the consumer notices, and keeps going without Redis.
    ASSERT_TRUE(readable(consumer->wakeup_fd(), 5000));
    consumer->drain_wakeups();
    EXPECT_TRUE(consumer->unavailable());
    EXPECT_TRUE(consumer->reserve(5).empty());
    consumer->heartbeat();

    server_->start();  // empty: the restarted server lost everything (no persistence in this test)
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (consumer->unavailable() && std::chrono::steady_clock::now() < deadline) {
        readable(consumer->wakeup_fd(), 500);
        consumer->drain_wakeups();
    }
    ASSERT_FALSE(consumer->unavailable());
    cli_.reset();
    // The claim it held is on record again, so it is not lost if this node dies now; the ack removes it.
    EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 1);
    consumer->ack(got[0]);
    EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 0);

    TaskMessage next = on("q");
    RedisBroker fresh(url());
    fresh.publish(next);
    auto after = reserve_all(*consumer, 1);
    ASSERT_EQ(after.size(), 1u);
    EXPECT_EQ(after[0].message.id, next.id);
}

TEST_F(RedisTest, ConnectFactoryKnowsRedisUrls) {
    auto connection = connect({server_->url(), "", std::chrono::seconds(60), ""});
    EXPECT_EQ(connection.broker->url(), "redis://127.0.0.1:" + std::to_string(server_->port()) + "/0");
    connection.broker->publish(on("celery"));
    EXPECT_EQ(cli().command({"LLEN", "celery"}).integer(), 1);
    EXPECT_THROW(connect({"rediss://h/0", "", std::chrono::seconds(60), ""}), UsageError);
}

// A result backend on another db (Celery's `backend='redis://…/1'`): results land there, never in the broker's
// db, and the message is acked only after they are stored.
TEST_F(RedisTest, ConnectPutsResultsInTheResultBackend) {
    auto connection = connect({server_->url(), "", std::chrono::seconds(60), server_->url("/1")});
    connection.broker->publish(on("q"));
    auto consumer = connection.broker->consume({"w1@h", {"q"}});
    auto got = reserve_all(*consumer, 1);
    ASSERT_EQ(got.size(), 1u);
    consumer->settle(*connection.results, {protocol::success_result(got[0].message.id, 42)}, got);
    EXPECT_TRUE(eventually([&] { return cli().command({"HLEN", "unacked"}).integer() == 0; }));
    std::string key = "celery-task-meta-" + got[0].message.id;
    EXPECT_TRUE(cli().command({"GET", key}).is_nil());
    redis::Connection db1(url("/1"));
    EXPECT_FALSE(db1.command({"GET", key}).is_nil());
    EXPECT_EQ(connection.results->get(got[0].message.id)->result, 42);
    consumer->close();
    EXPECT_THROW(connect({server_->url(), "", std::chrono::seconds(60), "rpc://"}), UsageError);
}

TEST_F(RedisTest, ClaimsTheNextWindowAheadAndGivesItBackAtClose) {
    RedisBroker broker(url());
    for (int i = 0; i < 20; ++i) broker.publish(on("q", "t", json::array({i})));
    auto consumer = broker.consume({"w1@h", {"q"}});
    auto first = consumer->reserve(5);
    ASSERT_EQ(first.size(), 5u);
    // The next five are claimed without the consumer waiting for them.
    EXPECT_TRUE(eventually([&] { return cli().command({"HLEN", "unacked"}).integer() == 10; }));
    EXPECT_EQ(cli().command({"LLEN", "q"}).integer(), 10);
    auto second = consumer->reserve(5);
    ASSERT_EQ(second.size(), 5u);
    EXPECT_EQ(second[0].message.args[0], 5);  // still first in, first out
    for (const auto& delivery : first) consumer->ack(delivery);
    consumer->close();
    // Acked: 5. The second window and the one claimed ahead of it went back; nothing is left claimed.
    EXPECT_EQ(cli().command({"LLEN", "q"}).integer(), 15);
    EXPECT_EQ(cli().command({"HLEN", "unacked"}).integer(), 0);
    EXPECT_EQ(cli().command({"ZCARD", "unacked_index"}).integer(), 0);
}

TEST_F(RedisTest, SettleStoresResultsAndAcksInOneTransaction) {
    RedisBroker broker(url());
    RedisResultStore store(url(), std::chrono::seconds(60));
    for (int i = 0; i < 3; ++i) broker.publish(on("q", "t", json::array({i})));
    auto consumer = broker.consume({"w1@h", {"q"}});
    auto got = consumer->reserve(3);
    ASSERT_EQ(got.size(), 3u);
    std::vector<ResultMeta> results;
    for (const auto& delivery : got) results.push_back(protocol::success_result(delivery.message.id, 7));
    consumer->settle(store, results, got);
    EXPECT_TRUE(eventually([&] { return cli().command({"HLEN", "unacked"}).integer() == 0; }));
    for (const auto& delivery : got) {
        auto meta = store.get(delivery.message.id);
        ASSERT_TRUE(meta);
        EXPECT_EQ(meta->result, 7);
    }
    consumer->close();  // reads the transaction's reply; nothing is given back
    EXPECT_EQ(cli().command({"LLEN", "q"}).integer(), 0);
}
