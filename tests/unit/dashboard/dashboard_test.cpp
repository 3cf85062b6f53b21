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

namespace {

nlohmann::json task_event(const std::string& type, const std::string& id, double timestamp,
                          nlohmann::json fields = nlohmann::json::object()) {
    fields["type"] = type;
    fields["uuid"] = id;
    fields["timestamp"] = timestamp;
    fields["hostname"] = "w1@h";
    return fields;
}

}  // namespace

TEST(DashboardEvents, TasksFollowTheirEventsForwardOnly) {
    EventState state;
    state.apply(task_event("task-received", "a", 10, {{"name", "t.add"}, {"args", "(1, 2)"}}), 100);
    state.apply(task_event("task-started", "a", 11), 100);
    state.apply(task_event("task-succeeded", "a", 12, {{"runtime", 0.3}}), 100);
    state.apply(task_event("task-started", "a", 11.5), 100);  // late: the task stays SUCCESS
    auto a = *state.task("a");
    EXPECT_EQ(a["status"], "SUCCESS");
    EXPECT_EQ(a["name"], "t.add");
    EXPECT_EQ(a["worker"], "w1@h");
    EXPECT_EQ(a["runtime"], 0.3);
    EXPECT_EQ(a["received"], 10.0);
    EXPECT_EQ(a["started"], 11.0);

    // Out of order within a batch: started before received still ends STARTED.
    state.apply(task_event("task-started", "b", 21), 100);
    state.apply(task_event("task-received", "b", 20, {{"name", "t.slow"}}), 100);
    EXPECT_EQ((*state.task("b"))["status"], "STARTED");
    EXPECT_EQ((*state.task("b"))["name"], "t.slow");
    state.apply(task_event("task-failed", "b", 22, {{"exception", "ValueError('x')"}, {"traceback", "tb"}}), 100);
    EXPECT_EQ((*state.task("b"))["exception"], "ValueError('x')");
    EXPECT_EQ(state.tasks().front()["task_id"], "b");  // newest change first

    auto metrics = state.metrics(100);
    EXPECT_EQ((metrics.tasks[{"t.add", "SUCCESS"}]), 1);
    EXPECT_EQ((metrics.tasks[{"t.add", "STARTED"}]), 2);
    EXPECT_EQ((metrics.tasks[{"t.slow", "FAILURE"}]), 1);
    EXPECT_EQ(metrics.runtime["t.add"].count, 1u);
    EXPECT_EQ(metrics.runtime["t.add"].counts[6], 1u);  // 0.3 s: the 0.5 bucket
    EXPECT_EQ(metrics.events, 7u);
}

TEST(DashboardEvents, BoundedAndHeartbeats) {
    EventState state;
    for (std::size_t i = 0; i < EventState::max_tasks + 5; ++i)
        state.apply(task_event("task-received", "id" + std::to_string(i), 1, {{"name", "n" + std::to_string(i)}}), 1);
    EXPECT_EQ(state.tasks().size(), EventState::max_tasks);
    EXPECT_FALSE(state.task("id0"));
    EXPECT_TRUE(state.task("id" + std::to_string(EventState::max_tasks + 4)));
    EXPECT_EQ((state.metrics(1).tasks[{"other", "RECEIVED"}]), EventState::max_tasks + 5 - EventState::max_names);

    state.apply({{"type", "worker-heartbeat"},
                 {"hostname", "w2@h"},
                 {"active", 3},
                 {"processed", 9},
                 {"loadavg", {0.5, 0.2, 0.1}},
                 {"timestamp", 5}},
                50);
    auto workers = state.workers(53);
    EXPECT_EQ(workers["w2@h"]["heartbeat_age"], 3.0);
    EXPECT_EQ(workers["w2@h"]["active"], 3);
    state.apply({{"type", "worker-offline"}, {"hostname", "w2@h"}}, 60);
    EXPECT_FALSE(state.workers(60)["w2@h"]["online"].get<bool>());
    EXPECT_FALSE(state.metrics(60).heartbeat_age.contains("w2@h"));
}

TEST(DashboardMetrics, RendersTaskEventFamilies) {
    EventState state;
    state.apply(task_event("task-received", "a", 1, {{"name", "t\"q"}}), 1);
    state.apply(task_event("task-succeeded", "a", 2, {{"runtime", 2.0}}), 1);
    auto metrics = state.metrics(1);
    std::string text = render_metrics(Snapshot{}, &metrics);
    EXPECT_NE(text.find("# TYPE ccmulti_task_runtime_seconds histogram"), std::string::npos);
    EXPECT_NE(text.find("ccmulti_task_runtime_seconds_bucket{name=\"t\\\"q\",le=\"1\"} 0\n"), std::string::npos);
    EXPECT_NE(text.find("ccmulti_task_runtime_seconds_bucket{name=\"t\\\"q\",le=\"2.5\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("ccmulti_task_runtime_seconds_bucket{name=\"t\\\"q\",le=\"+Inf\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("ccmulti_task_runtime_seconds_sum{name=\"t\\\"q\"} 2\n"), std::string::npos);
    EXPECT_NE(text.find("ccmulti_tasks_total{name=\"t\\\"q\",state=\"SUCCESS\"} 1\n"), std::string::npos);
    EXPECT_EQ(render_metrics(Snapshot{}).find("ccmulti_tasks_total"), std::string::npos);
}
