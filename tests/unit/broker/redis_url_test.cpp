#include <gtest/gtest.h>

#include "broker/redis/keys.hpp"
#include "broker/redis/url.hpp"
#include "util/error.hpp"

using namespace ccmulti;
using namespace ccmulti::broker::redis;

TEST(RedisUrl, Defaults) {
    auto url = parse_redis_url("redis://");
    EXPECT_EQ(url.host, "127.0.0.1");
    EXPECT_EQ(url.port, 6379);
    EXPECT_EQ(url.db, 0);
    EXPECT_FALSE(url.password);
    EXPECT_EQ(url.visibility_timeout, std::chrono::seconds(3600));
    EXPECT_EQ(url.display(), "redis://127.0.0.1:6379/0");
}

TEST(RedisUrl, HostPortDb) {
    auto url = parse_redis_url("redis://cache.example:6380/3");
    EXPECT_EQ(url.host, "cache.example");
    EXPECT_EQ(url.port, 6380);
    EXPECT_EQ(url.db, 3);
    EXPECT_EQ(parse_redis_url("redis://h/").db, 0);
    EXPECT_EQ(parse_redis_url("redis://[::1]:7000/2").host, "::1");
    EXPECT_EQ(parse_redis_url("redis://[::1]:7000/2").address(), "[::1]:7000");
}

TEST(RedisUrl, PasswordsAreDecodedAndMasked) {
    auto url = parse_redis_url("redis://:p%40ss%3Aw0rd@h:1/0");
    EXPECT_EQ(url.password, "p@ss:w0rd");
    EXPECT_FALSE(url.username);
    EXPECT_EQ(url.display(), "redis://:***@h:1/0");
    auto acl = parse_redis_url("redis://alice:secret@h:1/0");
    EXPECT_EQ(acl.username, "alice");
    EXPECT_EQ(acl.password, "secret");
    EXPECT_EQ(parse_redis_url("redis://secret@h").password, "secret");  // as redis-py reads it
}

TEST(RedisUrl, Options) {
    EXPECT_EQ(parse_redis_url("redis://h/0?visibility_timeout=30").visibility_timeout, std::chrono::seconds(30));
    EXPECT_THROW(parse_redis_url("redis://h/0?socket_timeout=3"), UsageError);
}

TEST(RedisUrl, RejectsWhatItCannotDo) {
    try {
        parse_redis_url("rediss://:topsecret@h:6380/0");
        FAIL() << "rediss accepted";
    } catch (const UsageError& error) {
        std::string message = error.what();
        EXPECT_NE(message.find("TLS"), std::string::npos) << message;
        EXPECT_EQ(message.find("topsecret"), std::string::npos) << "password leaked: " << message;
    }
    EXPECT_THROW(parse_redis_url("redis+socket:///run/redis.sock"), UsageError);
    EXPECT_THROW(parse_redis_url("redis://h:99999/0"), UsageError);
    EXPECT_THROW(parse_redis_url("redis://h:port/0"), UsageError);
    EXPECT_THROW(parse_redis_url("redis://h/zero"), UsageError);
    EXPECT_THROW(parse_redis_url("redis://[::1/0"), UsageError);
    EXPECT_TRUE(is_redis_url("rediss://x"));
    EXPECT_FALSE(is_redis_url("sqlite://"));
}

TEST(RedisKeys, KombuPriorityLists) {
    EXPECT_EQ(priority_step(0), 0);
    EXPECT_EQ(priority_step(2), 0);
    EXPECT_EQ(priority_step(5), 3);
    EXPECT_EQ(priority_step(9), 9);
    EXPECT_EQ(priority_step(42), 9);
    EXPECT_EQ(priority_step(-1), 0);
    EXPECT_EQ(queue_key("high", 0), "high");
    EXPECT_EQ(queue_key("high", 5),
              "high\x06\x16"
              "3");
    EXPECT_EQ(queue_of_key("high\x06\x16"
                           "3"),
              "high");
    EXPECT_EQ(queue_of_key("high"), "high");
    EXPECT_EQ(binding_key("celery"), "_kombu.binding.celery");
    EXPECT_EQ(binding_member("celery", "celery"),
              "celery\x06\x16\x06\x16"
              "celery");
    EXPECT_EQ(result_key("abc"), "celery-task-meta-abc");
}
