// Celery's event fields as ccmulti writes them: every event is valid JSON with the fields a Python worker sends
// (captured from Debian's celery 5.2), and arguments/results/exceptions read as Python reprs, as Celery shows them.
#include "protocol/events.hpp"

#include <gtest/gtest.h>

using namespace ccmulti::protocol;
using nlohmann::json;

namespace {

json parsed(const std::string& text) {
    json value = json::parse(text, nullptr, false);
    EXPECT_FALSE(value.is_discarded()) << text;
    return value;
}

TEST(PythonRepr, WritesJsonValuesAsPythonDoes) {
    EXPECT_EQ(python_repr(json::parse("[1, 2]"), true), "(1, 2)");
    EXPECT_EQ(python_repr(json::parse("[1]"), true), "(1,)");
    EXPECT_EQ(python_repr(json::array(), true), "()");
    EXPECT_EQ(python_repr(json::parse(R"({"x": "y", "n": null, "t": true, "f": false})")),
              "{'f': False, 'n': None, 't': True, 'x': 'y'}");
    EXPECT_EQ(python_repr(json("it's")), "\"it's\"");
    EXPECT_EQ(python_repr(json("a'b\"c\n")), "'a\\'b\"c\\n'");
    EXPECT_EQ(python_repr(json::parse("[1.5, [2]]")), "[1.5, [2]]");
}

TEST(PythonRepr, CutsLongValues) {
    std::string repr = python_repr(json(std::string(5000, 'a')), false, 100);
    EXPECT_EQ(repr.size(), 103u);
    EXPECT_TRUE(repr.ends_with("..."));
}

TEST(ExceptionRepr, IsTypeAndQuotedMessage) {
    EXPECT_EQ(exception_repr(ExceptionInfo::of("ValueError", "boom")), "ValueError('boom')");
    EXPECT_EQ(exception_repr(ExceptionInfo::of("KeyError", "")), "KeyError()");
}

TEST(Events, CarryTheCommonFieldsAndACountingClock) {
    EventSender sender("w1@host", 42);
    json first = parsed(task_started(sender, "id-1"));
    json second = parsed(task_started(sender, "id-1"));
    EXPECT_EQ(first["hostname"], "w1@host");
    EXPECT_EQ(first["pid"], 42);
    EXPECT_TRUE(first["utcoffset"].is_number_integer());
    EXPECT_TRUE(first["timestamp"].is_number_float());
    EXPECT_EQ(first["type"], "task-started");
    EXPECT_EQ(first["uuid"], "id-1");
    EXPECT_EQ(second["clock"].get<long>(), first["clock"].get<long>() + 1);
}

TEST(Events, TaskReceivedAndSentDescribeTheMessage) {
    EventSender sender("w1@host", 1);
    TaskMessage message = make_message("tasks.add", json::parse("[2, 3]"), json::parse(R"({"z": 1})"));
    message.queue = "high";
    json received = parsed(task_received(sender, message));
    EXPECT_EQ(received["name"], "tasks.add");
    EXPECT_EQ(received["args"], "(2, 3)");
    EXPECT_EQ(received["kwargs"], "{'z': 1}");
    EXPECT_EQ(received["root_id"], message.id);
    EXPECT_TRUE(received["parent_id"].is_null());
    EXPECT_EQ(received["retries"], 0);
    EXPECT_TRUE(received["eta"].is_null() && received["expires"].is_null());
    json sent = parsed(task_sent(sender, message));
    EXPECT_EQ(sent["type"], "task-sent");
    EXPECT_EQ(sent["queue"], "high");
    EXPECT_EQ(sent["routing_key"], "high");
    EXPECT_EQ(sent["exchange"], "");
}

TEST(Events, OutcomesAsCeleryReportsThem) {
    EventSender sender("w1@host", 1);
    json ok = parsed(task_succeeded(sender, "i", json::parse("[1, 2]"), 0.25));
    EXPECT_EQ(ok["result"], "[1, 2]");
    EXPECT_DOUBLE_EQ(ok["runtime"].get<double>(), 0.25);
    json failed = parsed(task_failed(sender, "i", ExceptionInfo::of("ValueError", "x"), "Traceback\n"));
    EXPECT_EQ(failed["exception"], "ValueError('x')");
    EXPECT_EQ(failed["traceback"], "Traceback\n");
    EXPECT_EQ(parsed(task_retried(sender, "i", ExceptionInfo::of("Retry", "in 1s"), ""))["type"], "task-retried");
    json revoked = parsed(task_revoked(sender, "i", true));
    EXPECT_EQ(revoked["expired"], true);
    EXPECT_EQ(revoked["terminated"], false);
}

TEST(Events, WorkerEventsTellHowTheNodeDoes) {
    EventSender sender("w1@host", 1);
    WorkerStatus status;
    status.active = 2;
    status.processed = 7;
    status.loadavg = {0.5, 0.25, 1};
    json beat = parsed(worker_event(sender, "worker-heartbeat", status));
    EXPECT_EQ(beat["type"], "worker-heartbeat");
    EXPECT_DOUBLE_EQ(beat["freq"].get<double>(), 2.0);
    EXPECT_TRUE(beat["freq"].is_number_float());  // Celery's dumper prints freq=2.0
    EXPECT_EQ(beat["active"], 2);
    EXPECT_EQ(beat["processed"], 7);
    EXPECT_EQ(beat["loadavg"], json::parse("[0.5, 0.25, 1.0]"));
    EXPECT_EQ(beat["sw_ident"], "ccmulti");
    EXPECT_EQ(beat["sw_ver"], CCMULTI_VERSION);
    EXPECT_EQ(beat["sw_sys"], "Linux");
}

TEST(Events, RoutingKeys) {
    EXPECT_EQ(event_routing_key("worker-heartbeat"), "worker.heartbeat");
    EXPECT_EQ(event_routing_key("task-succeeded"), "task.succeeded");
}

}  // namespace
