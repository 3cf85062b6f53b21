// The dashboard's pure parts: the bind address and its guard, password masking, the Prometheus text.
#include <gtest/gtest.h>

#include "dashboard/api.hpp"
#include "dashboard/metrics.hpp"
#include "dashboard/options.hpp"
#include "util/error.hpp"

using namespace ccmulti;
using namespace ccmulti::dashboard;

TEST(DashboardBind, ParsesHostAndPort) {
    EXPECT_EQ(parse_bind("127.0.0.1:5555").host, "127.0.0.1");
    EXPECT_EQ(parse_bind("127.0.0.1:5555").port, 5555);
    EXPECT_EQ(parse_bind("[::1]:80").host, "::1");
    EXPECT_EQ(parse_bind(":0").host, "127.0.0.1");
    EXPECT_EQ(parse_bind("8080").port, 8080);
    for (const char* bad : {"", "host:", "host:99999", "host:-1", "host:12x", "a b:1"})
        EXPECT_THROW(parse_bind(bad), UsageError) << bad;
}

TEST(DashboardBind, OnlyLoopbackWithoutAToken) {
    EXPECT_TRUE(is_loopback("127.0.0.1"));
    EXPECT_TRUE(is_loopback("127.1.2.3"));
    EXPECT_TRUE(is_loopback("::1"));
    EXPECT_TRUE(is_loopback("localhost"));
    EXPECT_FALSE(is_loopback("0.0.0.0"));
    EXPECT_FALSE(is_loopback("::"));
    EXPECT_FALSE(is_loopback("192.168.1.5"));
    EXPECT_FALSE(is_loopback("example.com"));
    EXPECT_NO_THROW(access_options("127.0.0.1:0", std::nullopt, std::nullopt));
    EXPECT_THROW(access_options("0.0.0.0:5555", std::nullopt, std::nullopt), UsageError);
    EXPECT_EQ(*access_options("0.0.0.0:5555", std::string("t"), std::nullopt).token, "t");
    EXPECT_THROW(access_options("127.0.0.1:0", std::string(""), std::nullopt), UsageError);
    EXPECT_EQ(url_of("::1", 80), "http://[::1]:80/");
}

TEST(DashboardMasking, NoPasswordSurvives) {
    EXPECT_EQ(mask_url_passwords("redis://:hunter2@h:6379/0"), "redis://:***@h:6379/0");
    EXPECT_EQ(mask_url_passwords("amqp://user:pw@h//"), "amqp://user:***@h//");
    EXPECT_EQ(mask_url_passwords("redis://h:6379/0"), "redis://h:6379/0");
    nlohmann::json doc = {{"argv", {"--broker=redis://:x@h/0"}}, {"broker", {{"password", "x"}, {"port", 1}}}};
    mask_secrets(doc);
    EXPECT_EQ(doc["argv"][0], "--broker=redis://:***@h/0");
    EXPECT_EQ(doc["broker"]["password"], "***");
    EXPECT_EQ(doc["broker"]["port"], 1);
}

TEST(DashboardMetrics, RendersEveryFamilyWithEscapedLabels) {
    Snapshot snapshot;
    snapshot.master = snapshot.broker = true;
    snapshot.status = {{"nodes",
                        {{{"name", "w1@h"},
                          {"state", "ready"},
                          {"pid", 10},
                          {"restarts", 2},
                          {"rss", 1024},
                          {"uptime", 3.5},
                          {"concurrency", 4}},
                         {{"name", "w\"2@h"}, {"state", "backoff"}, {"pid", nullptr}, {"restarts", 7}}}}};
    snapshot.queues = {{{"name", "celery"}, {"ready", 5}, {"scheduled", 1}, {"reserved", 2}, {"consumers", {"w1@h"}}}};
    snapshot.stats = {{"w1@h", {{"total", {{"tasks.add", 9}}}}}};
    snapshot.results_by_state = {{"SUCCESS", 3}};
    std::string text = render_metrics(snapshot);
    for (const char* line :
         {"ccmulti_up 1\n", "ccmulti_node_up{node=\"w1@h\"} 1\n", "ccmulti_node_up{node=\"w\\\"2@h\"} 0\n",
          "ccmulti_node_restarts_total{node=\"w\\\"2@h\"} 7\n",
          "ccmulti_node_resident_memory_bytes{node=\"w1@h\"} 1024\n", "ccmulti_node_concurrency{node=\"w1@h\"} 4\n",
          "ccmulti_node_state{node=\"w1@h\",state=\"ready\"} 1\n",
          "ccmulti_queue_messages{queue=\"celery\",state=\"scheduled\"} 1\n",
          "ccmulti_queue_consumers{queue=\"celery\"} 1\n",
          "ccmulti_tasks_finished_total{node=\"w1@h\",task=\"tasks.add\"} 9\n",
          "ccmulti_recent_results{state=\"SUCCESS\"} 3\n", "# TYPE ccmulti_node_restarts_total counter\n"})
        EXPECT_NE(text.find(line), std::string::npos) << line << "\nin:\n" << text;
    EXPECT_EQ(text.find("resident_memory_bytes{node=\"w\\\"2@h\"}"), std::string::npos);  // not running: no sample
    EXPECT_EQ(escape_label("a\\b\nc"), "a\\\\b\\nc");
}
