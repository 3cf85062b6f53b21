// RedisEventPublisher against a real redis-server: Celery's events are PUBLISHes on kombu's fanout channel
// "/<db>.celeryev/<routing key>" with the envelope a Python worker sends; task events go in batches of 24 under
// "task.multi"; nothing leaves before flush(); an outage drops events, never throws, and sending resumes.
#include <gtest/gtest.h>
#include <poll.h>

#include <thread>

#include "broker/connect.hpp"
#include "broker/redis/event_publisher.hpp"
#include "broker/redis/event_receiver.hpp"
#include "broker/redis/redis_broker.hpp"
#include "protocol/base64.hpp"
#include "protocol/events.hpp"
#include "redis_server.hpp"

using namespace ccmulti;
using namespace ccmulti::broker;
using namespace ccmulti::broker::redis;
using namespace ccmulti::broker::testing;
using nlohmann::json;

namespace {

class RedisEventsTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!have_redis_server()) GTEST_SKIP() << "redis-server is not installed";
        server_ = std::make_unique<RedisServer>();
        subscriber_ = std::make_unique<redis::Connection>(server_->parsed("/3"));
        subscriber_->send({"PSUBSCRIBE", "/3.celeryev/*"});  // as `celery events` on db 3
        ASSERT_TRUE(subscriber_->read(std::chrono::seconds(2)));
    }
    // The next event message: its channel and envelope; nullopt when none comes within `timeout`.
    std::optional<std::pair<std::string, json>> next(std::chrono::milliseconds timeout = std::chrono::seconds(2)) {
        auto message = subscriber_->read(timeout);
        if (!message) return std::nullopt;
        return std::pair{(*message)[2].string(), json::parse((*message)[3].text())};
    }
    std::unique_ptr<RedisServer> server_;
    std::unique_ptr<redis::Connection> subscriber_;
};

json body_of(const json& envelope) {
    return json::parse(protocol::base64_decode(envelope["body"].get<std::string>()));
}

TEST_F(RedisEventsTest, WorkerEventsGoAloneInKombusEnvelope) {
    RedisBroker broker(server_->parsed("/3"));
    auto events = broker.events("w1@host");
    ASSERT_TRUE(events);
    protocol::EventSender sender("w1@host", 7);
    events->send("worker-heartbeat", protocol::worker_event(sender, "worker-heartbeat", {}));
    EXPECT_FALSE(next(std::chrono::milliseconds(100))) << "nothing is sent before flush()";
    events->flush();
    auto got = next();
    ASSERT_TRUE(got);
    auto& [channel, envelope] = *got;
    EXPECT_EQ(channel, "/3.celeryev/worker.heartbeat");
    EXPECT_EQ(envelope["content-type"], "application/json");
    EXPECT_EQ(envelope["content-encoding"], "utf-8");
    EXPECT_EQ(envelope["headers"], json({{"hostname", "w1@host"}}));
    const json& properties = envelope["properties"];
    EXPECT_EQ(properties["delivery_mode"], 1);
    EXPECT_EQ(properties["body_encoding"], "base64");
    EXPECT_EQ(properties["delivery_info"], json({{"exchange", "celeryev"}, {"routing_key", "worker.heartbeat"}}));
    EXPECT_EQ(properties["delivery_tag"].get<std::string>().size(), 36u);
    json body = body_of(envelope);
    EXPECT_EQ(body["type"], "worker-heartbeat");
    EXPECT_EQ(body["pid"], 7);
}

TEST_F(RedisEventsTest, TaskEventsGoInBatchesAsThePythonWorkerSendsThem) {
    RedisBroker broker(server_->parsed("/3"));
    auto events = broker.events("w1@host");
    protocol::EventSender sender("w1@host", 7);
    for (int i = 0; i < 30; ++i) events->send("task-started", protocol::task_started(sender, std::to_string(i)));
    events->send("worker-heartbeat", protocol::worker_event(sender, "worker-heartbeat", {}));
    events->flush();
    std::vector<std::string> ids;
    for (std::size_t expect : {EventPublisher::task_batch, std::size_t{6}}) {
        auto got = next();
        ASSERT_TRUE(got);
        EXPECT_EQ(got->first, "/3.celeryev/task.multi");
        EXPECT_EQ(got->second["properties"]["delivery_info"]["routing_key"], "task.multi");
        json body = body_of(got->second);
        ASSERT_TRUE(body.is_array());
        EXPECT_EQ(body.size(), expect);
        for (const auto& event : body) ids.push_back(event["uuid"]);
    }
    ASSERT_EQ(ids.size(), 30u);
    for (int i = 0; i < 30; ++i) EXPECT_EQ(ids[static_cast<std::size_t>(i)], std::to_string(i)) << "in order";
    auto last = next();
    ASSERT_TRUE(last);
    EXPECT_EQ(last->first, "/3.celeryev/worker.heartbeat") << "after the task events sent before it";
}

TEST_F(RedisEventsTest, AnOutageDropsEventsAndSendingResumes) {
    RedisEventPublisher events(server_->parsed("/3"), "w1@host");
    protocol::EventSender sender("w1@host", 7);
    events.send("task-started", protocol::task_started(sender, "before"));
    events.flush();
    ASSERT_TRUE(next());
    subscriber_.reset();
    server_->stop();
    events.send("task-started", protocol::task_started(sender, "lost"));
    events.flush();  // never throws
    events.send("task-started", protocol::task_started(sender, "lost too"));
    events.flush();
    EXPECT_GE(events.dropped(), 1u);
    server_->start();
    subscriber_ = std::make_unique<redis::Connection>(server_->parsed("/3"));
    subscriber_->send({"PSUBSCRIBE", "/3.celeryev/*"});
    ASSERT_TRUE(subscriber_->read(std::chrono::seconds(2)));
    // Tried again after the backoff (about 0.5 s, at most 1 s here): flush until one gets through.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    std::optional<std::pair<std::string, json>> got;
    while (!got && std::chrono::steady_clock::now() < deadline) {
        events.send("task-started", protocol::task_started(sender, "after"));
        events.flush();
        got = next(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(got) << "events flow again once Redis is back";
    EXPECT_EQ(body_of(got->second)[0]["uuid"], "after");
}

// Waits on the receiver's fd (as the dashboard does) until `count` events arrived or `timeout` passed.
std::vector<json> receive_events(EventReceiver& receiver, std::size_t count,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(3)) {
    std::vector<json> got;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (got.size() < count && std::chrono::steady_clock::now() < deadline) {
        pollfd entry{receiver.fd(), POLLIN, 0};
        ::poll(&entry, 1, 100);
        for (auto& event : receiver.receive()) got.push_back(std::move(event));
    }
    return got;
}

TEST_F(RedisEventsTest, TheReceiverGetsWhatNodesPublishBatchesUnpacked) {
    RedisBroker broker(server_->parsed("/3"));
    auto receiver = broker.event_stream();
    ASSERT_TRUE(receiver);
    EXPECT_TRUE(receiver->unavailable()) << "not subscribed before its first receive";
    for (int i = 0; i < 50 && receiver->unavailable(); ++i) receive_events(*receiver, 1, std::chrono::milliseconds(20));
    ASSERT_FALSE(receiver->unavailable()) << *receiver->unavailable();

    auto events = broker.events("w1@host");
    protocol::EventSender sender("w1@host", 7);
    events->send("worker-online", protocol::worker_event(sender, "worker-online", {}));
    for (int i = 0; i < 3; ++i) events->send("task-started", protocol::task_started(sender, "id" + std::to_string(i)));
    events->flush();
    auto got = receive_events(*receiver, 4);
    ASSERT_EQ(got.size(), 4u);
    EXPECT_EQ(got[0]["type"], "worker-online");
    EXPECT_EQ(got[3]["type"], "task-started");
    EXPECT_EQ(got[3]["uuid"], "id2");
    EXPECT_EQ(got[3]["hostname"], "w1@host");
    // Another database's events are not this one's.
    RedisBroker other(server_->parsed("/4"));
    auto elsewhere = other.events("w2@host");
    elsewhere->send("worker-online", protocol::worker_event(sender, "worker-online", {}));
    elsewhere->flush();
    elsewhere.reset();
    EXPECT_TRUE(receive_events(*receiver, 1, std::chrono::milliseconds(300)).empty());
}

TEST(RedisEventDecode, KombuEnvelopes) {
    auto envelope = [](const std::string& body, const char* encoding) {
        return json{{"body", std::string(encoding) == "base64" ? protocol::base64_encode(body) : body},
                    {"content-type", "application/json"},
                    {"properties", {{"body_encoding", encoding}}}}
            .dump();
    };
    EXPECT_EQ(RedisEventReceiver::decode(envelope(R"({"type": "worker-heartbeat"})", "base64")).size(), 1u);
    EXPECT_EQ(
        RedisEventReceiver::decode(envelope(R"([{"type": "task-sent"}, {"type": "task-received"}])", "utf-8")).size(),
        2u);
    EXPECT_TRUE(RedisEventReceiver::decode("not json").empty());
    EXPECT_TRUE(RedisEventReceiver::decode(envelope("{\"no\": \"type\"}", "utf-8")).empty());
    EXPECT_TRUE(RedisEventReceiver::decode(envelope("!!", "base64")).empty());
    EXPECT_EQ(RedisEventReceiver::pattern(3), "/3.celeryev/*");
}

TEST(SqliteEvents, TheEmbeddedBrokerCarriesNone) {
    auto dir = std::filesystem::temp_directory_path() / ("ccmulti-events-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    BrokerOptions options;
    options.url = "sqlite:///" + (dir / "broker.db").string();
    options.state_dir = dir;
    {
        auto connection = connect(options);
        EXPECT_EQ(connection.broker->events("w1@host"), nullptr);
        EXPECT_EQ(connection.broker->event_stream(), nullptr);
    }
    std::filesystem::remove_all(dir);
}

}  // namespace
