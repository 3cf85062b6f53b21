#include "tasks/builtins.hpp"

#include <gtest/gtest.h>

#include "task_call.hpp"

#include "tasks/execute.hpp"
#include "util/error.hpp"

using namespace ccmulti;
using namespace ccmulti::tasks;
using nlohmann::json;
using test_support::task_call;


TEST(Builtins, PingEchoFail) {
    Registry registry;
    add_builtin_tasks(registry);
    EXPECT_EQ(registry.names(),
              (std::vector<std::string>{"ccmulti.echo", "ccmulti.fail", "ccmulti.ping", "ccmulti.retry", "ccmulti.sleep"}));
    EXPECT_EQ(execute(registry, task_call("ccmulti.ping")).result, "pong");
    EXPECT_EQ(execute(registry, task_call("ccmulti.echo", {"hi"})).result, "hi");
    EXPECT_EQ(execute(registry, task_call("ccmulti.echo", {1, 2}, {{"k", 3}})).result,
              json({{"args", {1, 2}}, {"kwargs", {{"k", 3}}}}));

    auto failed = execute(registry, task_call("ccmulti.fail", {"boom"}));
    EXPECT_FALSE(failed.ok);
    EXPECT_EQ(failed.exception.describe(), "RuntimeError: boom");
    EXPECT_EQ(execute(registry, task_call("ccmulti.fail", {"x", "ValueError"})).exception.type, "ValueError");
    EXPECT_EQ(execute(registry, task_call("ccmulti.fail")).exception.type, "TypeError");
}

TEST(Builtins, UnknownTaskIsNotRegistered) {
    Registry registry;
    auto outcome = execute(registry, task_call("tasks.nonexistent"));
    EXPECT_FALSE(outcome.ok);
    EXPECT_EQ(outcome.exception.type, "NotRegistered");
    EXPECT_EQ(outcome.exception.message, "tasks.nonexistent");
    EXPECT_EQ(outcome.exception.module, "celery.exceptions");
}

TEST(Builtins, SleepStopsAtTheSoftLimit) {
    Registry registry;
    add_builtin_tasks(registry);
    EXPECT_EQ(execute(registry, task_call("ccmulti.sleep", {0.01})).result, 0.01);
    EXPECT_EQ(execute(registry, task_call("ccmulti.sleep", {"x"})).exception.type, "ValueError");
    auto c = task_call("ccmulti.sleep", json::array(), {{"seconds", 30}});
    c.soft_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    auto start = std::chrono::steady_clock::now();
    auto outcome = execute(registry, c);
    EXPECT_EQ(outcome.exception.type, "SoftTimeLimitExceeded");
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(Registry, RefusesDuplicatesAndReportsCppExceptions) {
    Registry registry;
    add_builtin_tasks(registry);
    EXPECT_THROW(registry.add({"ccmulti.ping", "command: x", [](const TaskCall&) { return json(); }}), UsageError);
    registry.add({"t.range", "test", [](const TaskCall& c) { return c.args.at(5); }});
    auto outcome = execute(registry, task_call("t.range"));
    EXPECT_FALSE(outcome.ok);
    EXPECT_EQ(outcome.exception.type, "TypeError");  // a json exception: wrong argument shape
    registry.add({"t.throw", "test", [](const TaskCall&) -> json { throw std::out_of_range("nope"); }});
    EXPECT_EQ(execute(registry, task_call("t.throw")).exception.describe(), "out_of_range: nope");
}
