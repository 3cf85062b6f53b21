// Eta messages on Redis against a real redis-server: a consumer claims them (kombu's semantics) but holds in
// memory only those due within RedisConsumer::park_after; the rest are parked in Redis and taken back before
// they are due. A ready message behind thousands of them is reached in a few reserve() calls.
#include <gtest/gtest.h>
#include <poll.h>

#include "broker/redis/claims.hpp"
#include "broker/redis/keys.hpp"
#include "broker/redis/redis_broker.hpp"
#include "broker/redis/redis_consumer.hpp"
#include "redis_server.hpp"

using namespace ccmulti;
using namespace ccmulti::broker;
using namespace ccmulti::broker::redis;
using namespace ccmulti::broker::testing;

namespace {

TaskMessage eta_message(const std::string& queue, std::optional<TimePoint> eta = std::nullopt) {
    TaskMessage message = protocol::make_message("t", nlohmann::json::array());
    message.queue = queue;
    message.eta = eta;
    return message;
}

void wait_readable(int fd, int timeout_ms) {
    pollfd entry{fd, POLLIN, 0};
    ::poll(&entry, 1, timeout_ms);
}

class RedisEtaTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!have_redis_server()) GTEST_SKIP() << "redis-server is not installed";
        server_ = std::make_unique<RedisServer>();
        cli_ = std::make_unique<redis::Connection>(server_->parsed());
    }
    std::unique_ptr<RedisServer> server_;
    std::unique_ptr<redis::Connection> cli_;
};

}  // namespace

TEST_F(RedisEtaTest, FarEtaMessagesAreParkedAndAReadyOneBehindThemRunsSoon) {
    RedisBroker broker(server_->parsed());
    const int count = 5000;
    const TimePoint tomorrow = protocol::now() + std::chrono::hours(24);
    for (int i = 0; i < count; ++i) broker.publish(eta_message("q", tomorrow));
    TaskMessage ready = eta_message("q");
    broker.publish(ready);

    RedisConsumer consumer(server_->parsed(), {"w1@h", {"q"}});
    std::vector<Delivery> got;
    int calls = 0;
    while (got.empty() && calls < 20) {
        got = consumer.reserve(4);
        ++calls;
        if (got.empty()) {
            wait_readable(consumer.wakeup_fd(), 1000);  // the consumer asks to be called again at once
            consumer.drain_wakeups();
        }
    }
    ASSERT_EQ(got.size(), 1u) << "after " << calls << " reserve() calls";
    EXPECT_EQ(got[0].message.id, ready.id);
    EXPECT_LE(calls, 5);
    EXPECT_EQ(consumer.parked(), static_cast<std::size_t>(count));
    EXPECT_EQ(consumer.held(), 1u);  // only the ready one is in memory
    EXPECT_EQ(cli_->command({"HLEN", unacked_key}).integer(), count + 1);

    // A parked claim's time in unacked_index: restored (were this node gone) 30 s before it is due.
    auto tags = cli_->command({"KEYS", "_ccmulti.parked.*"});
    ASSERT_EQ(tags.size(), 1u);
    const std::string parked = tags[0].string();
    EXPECT_EQ(cli_->command({"ZCARD", parked}).integer(), count);
    auto one = cli_->command({"ZRANGE", parked, "0", "0"});
    double index = std::stod(cli_->command({"ZSCORE", unacked_index_key, one[0].string()}).string());
    double vt = static_cast<double>(server_->parsed().visibility_timeout.count());
    EXPECT_NEAR(index, protocol::to_unix(tomorrow) - vt - RedisConsumer::restore_margin.count(), 0.01);
    EXPECT_GT(cli_->command({"TTL", parked}).integer(), 0);  // gone with the consumer should it die

    // Nothing is due: the loop is told to come back when the first is to be taken back, not before.
    auto next = consumer.next_eta();
    ASSERT_TRUE(next);
    EXPECT_GT(*next, protocol::now() + std::chrono::hours(23));
    EXPECT_EQ(broker.queue_stats().at(0).scheduled, static_cast<std::size_t>(count));

    consumer.ack(got[0]);
    consumer.close();  // parked claims stay claimed, the zset goes
    EXPECT_EQ(cli_->command({"HLEN", unacked_key}).integer(), count);
    EXPECT_EQ(cli_->command({"EXISTS", parked}).integer(), 0);
    EXPECT_EQ(cli_->command({"LLEN", "q"}).integer(), 0);
}

TEST_F(RedisEtaTest, ParkedClaimsAreTakenBackBeforeTheyAreDue) {
    RedisBroker broker(server_->parsed());
    const TimePoint eta = protocol::now() + RedisConsumer::park_after + std::chrono::milliseconds(1500);
    TaskMessage later = eta_message("q", eta);
    broker.publish(later);
    RedisConsumer consumer(server_->parsed(), {"w1@h", {"q"}});
    EXPECT_TRUE(consumer.reserve(4).empty());
    EXPECT_EQ(consumer.parked(), 1u);
    EXPECT_EQ(consumer.held(), 0u);
    auto take = consumer.next_eta();
    ASSERT_TRUE(take);
    EXPECT_NEAR(protocol::to_unix(*take), protocol::to_unix(eta - RedisConsumer::park_after), 0.01);

    while (protocol::now() < *take) wait_readable(-1, 50);
    EXPECT_TRUE(consumer.reserve(4).empty());  // taken back, held until due
    EXPECT_EQ(consumer.held(), 1u);
    EXPECT_EQ(*consumer.next_eta(), eta);
    double index = std::stod(
        cli_->command({"ZSCORE", unacked_index_key, cli_->command({"HKEYS", unacked_key})[0].string()}).string());
    EXPECT_NEAR(index, unix_now(), 5.0);  // a live claim again, refreshed by the heartbeat
    auto keys = cli_->command({"KEYS", "_ccmulti.parked.*"});
    EXPECT_EQ(keys.size(), 0u);  // the zset is empty, so Redis dropped it
}
