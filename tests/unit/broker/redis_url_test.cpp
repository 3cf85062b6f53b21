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

TEST(SentinelUrl, SentinelsMasterLoginAndDb) {
    auto url = parse_redis_url(
        "sentinel://:p%40ss@10.0.0.1:26380/2;sentinel://10.0.0.2;sentinel://[::1]:26400"
        "?master_name=mymaster&visibility_timeout=60");
    ASSERT_TRUE(url.sentinel());
    ASSERT_EQ(url.sentinels.size(), 3u);
    EXPECT_EQ(url.sentinels[0], (std::pair<std::string, int>{"10.0.0.1", 26380}));
    EXPECT_EQ(url.sentinels[1], (std::pair<std::string, int>{"10.0.0.2", 26379}));  // kombu's default port
    EXPECT_EQ(url.sentinels[2], (std::pair<std::string, int>{"::1", 26400}));
    EXPECT_EQ(url.master_name, "mymaster");
    EXPECT_EQ(url.password, "p@ss");  // the master's, as kombu passes it on
    EXPECT_EQ(url.db, 2);
    EXPECT_EQ(url.visibility_timeout, std::chrono::seconds(60));
    EXPECT_EQ(url.display(),
              "sentinel://:***@10.0.0.1:26380/2;sentinel://10.0.0.2:26379;sentinel://[::1]:26400?master_name=mymaster");
    EXPECT_EQ(url.address(), "master mymaster of sentinels 10.0.0.1:26380,10.0.0.2:26379,[::1]:26400");
    EXPECT_TRUE(is_redis_url("sentinel://h"));
    EXPECT_TRUE(is_sentinel_url("sentinel://h"));
    // Celery's result backend form repeats the db on every part; the option may sit on any part.
    auto celery = parse_redis_url("sentinel://h1:26379/3?master_name=m;sentinel://h2:26379/3");
    EXPECT_EQ(celery.db, 3);
    EXPECT_EQ(celery.master_name, "m");
    EXPECT_FALSE(celery.same_database(url));
    EXPECT_TRUE(celery.same_database(parse_redis_url("sentinel://h1/3;sentinel://h2?master_name=m")));
}

TEST(SentinelUrl, ClearErrors) {
    auto message = [](const std::string& text) -> std::string {
        try {
            parse_redis_url(text);
        } catch (const UsageError& error) {
            return error.what();
        }
        return "accepted";
    };
    EXPECT_NE(message("sentinel://:secret@h1:26379").find("no master name: add ?master_name=NAME"), std::string::npos);
    EXPECT_EQ(message("sentinel://:secret@h1:26379").find("secret"), std::string::npos);
    EXPECT_NE(message("sentinel://h1:port?master_name=m").find("port 'port' is not a number"), std::string::npos);
    EXPECT_NE(message("sentinel://h1:99999?master_name=m").find("from 1 to 65535"), std::string::npos);
    EXPECT_NE(message("sentinel://h1?master_name=m;redis://h2").find("names one sentinel"), std::string::npos);
    EXPECT_NE(message("sentinel://h1?master_name=m;").find("empty sentinel address"), std::string::npos);
    EXPECT_NE(message("sentinel://h1?master_name=m&master=x").find("unknown option 'master'"), std::string::npos);
    EXPECT_NE(message("sentinel://h1?master_name=a;sentinel://h2?master_name=b").find("twice"), std::string::npos);
    EXPECT_NE(message("sentinel://h1/1?master_name=m;sentinel://h2/2").find("different"), std::string::npos);
    EXPECT_NE(message("sentinel://h1?master_name=").find("not a Sentinel master name"), std::string::npos);
    EXPECT_NE(message("redis://h?master_name=m").find("unknown option 'master_name'"), std::string::npos);
}

TEST(SentinelUrl, TransportOptionsFromTheConfiguration) {
    broker::TransportOptions options{"mymaster", 30};
    EXPECT_EQ(with_transport_options("sentinel://h1;sentinel://h2", options),
              "sentinel://h1;sentinel://h2?master_name=mymaster&visibility_timeout=30");
    // The URL's own win; a redis:// URL takes no master name.
    EXPECT_EQ(with_transport_options("sentinel://h1?master_name=own", options),
              "sentinel://h1?master_name=own&visibility_timeout=30");
    EXPECT_EQ(with_transport_options("redis://h/0?visibility_timeout=5", options), "redis://h/0?visibility_timeout=5");
    EXPECT_EQ(with_transport_options("redis://h/0", options), "redis://h/0?visibility_timeout=30");
    EXPECT_EQ(with_transport_options("sqlite://", options), "sqlite://");
    EXPECT_EQ(with_transport_options("sentinel://h1", {}), "sentinel://h1");
    EXPECT_EQ(parse_redis_url(with_transport_options("sentinel://h1", options)).master_name, "mymaster");
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
