#include "protocol/result_meta.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "protocol/json_text.hpp"
#include "util/error.hpp"

using namespace ccmulti::protocol;
using nlohmann::json;

TEST(ResultMeta, StateNames) {
    for (auto state : {TaskState::unknown, TaskState::pending, TaskState::started, TaskState::success,
                       TaskState::failure, TaskState::retry, TaskState::revoked})
        EXPECT_EQ(parse_state(to_string(state)), state);
    EXPECT_EQ(to_string(TaskState::success), "SUCCESS");
    EXPECT_FALSE(parse_state("success"));
    EXPECT_TRUE(is_ready(TaskState::revoked));
    EXPECT_FALSE(is_ready(TaskState::retry));
}

TEST(ResultMeta, SuccessInCeleryForm) {
    json stored = to_json(success_result("id-1", 4));
    EXPECT_EQ(stored["status"], "SUCCESS");
    EXPECT_EQ(stored["result"], 4);
    EXPECT_EQ(stored["traceback"], nullptr);
    EXPECT_EQ(stored["children"], json::array());
    EXPECT_EQ(stored["task_id"], "id-1");
    EXPECT_TRUE(parse_iso8601(stored["date_done"].get<std::string>()));
    ResultMeta back = result_from_json(stored);
    EXPECT_EQ(back.status, TaskState::success);
    EXPECT_EQ(back.result, 4);
    EXPECT_EQ(to_json(back), stored);
}

TEST(ResultMeta, FailureRoundTripsAndReadsCeleryExceptions) {
    ResultMeta meta = failure_result("id-2", ExceptionInfo::of("ValueError", "boom"), "Traceback...\nValueError: boom");
    json stored = to_json(meta);
    EXPECT_EQ(stored["result"],
              json({{"exc_type", "ValueError"}, {"exc_message", {"boom"}}, {"exc_module", "builtins"}}));
    ResultMeta back = result_from_json(stored);
    EXPECT_EQ(back, meta);
    ASSERT_TRUE(back.exception());
    EXPECT_EQ(back.exception()->describe(), "ValueError: boom");

    // What Python Celery writes, including a multi-argument exception.
    json python = {{"status", "FAILURE"},
                   {"result", {{"exc_type", "KeyError"}, {"exc_message", {"a", 2}}, {"exc_module", "builtins"}}},
                   {"traceback", "tb"},
                   {"children", json::array()},
                   {"date_done", "2026-11-24T16:49:39.187512"},
                   {"task_id", "x"}};
    EXPECT_EQ(result_from_json(python).exception()->describe(), "KeyError: a, 2");
    EXPECT_THROW(result_from_json(json{{"status", "WEIRD"}}), ccmulti::Error);
    EXPECT_THROW(result_from_json(json::array()), ccmulti::Error);
}

TEST(ResultMeta, ExceptionModules) {
    EXPECT_EQ(ExceptionInfo::of("ValueError", "").module, "builtins");
    EXPECT_EQ(ExceptionInfo::of("NotRegistered", "t").module, "celery.exceptions");
    EXPECT_EQ(ExceptionInfo::of("TimeLimitExceeded", "").module, "billiard.exceptions");
    auto dotted = ExceptionInfo::of("myapp.errors.Oops", "no");
    EXPECT_EQ(dotted.type, "Oops");
    EXPECT_EQ(dotted.module, "myapp.errors");
    EXPECT_EQ(ExceptionInfo::of("CommandError", "").module, "builtins");
    EXPECT_EQ(ExceptionInfo::of("Oops", "").describe(), "Oops");
}

TEST(ResultMeta, RevokedAndStarted) {
    auto revoked = revoked_result("r", "expired");
    EXPECT_EQ(revoked.exception()->type, "TaskRevokedError");
    EXPECT_EQ(revoked.exception()->message, "expired");
    auto started = started_result("s", 42, "w1@host");
    EXPECT_EQ(started.result, json({{"pid", 42}, {"hostname", "w1@host"}}));
    EXPECT_FALSE(started.date_done);
    EXPECT_FALSE(started.exception());
}

TEST(ResultMeta, TextIsWhatTheTreeDumps) {
    std::vector<ResultMeta> metas{success_result("id-1", 4), started_result("id-2", 42, "w1@h"),
                                  failure_result("id-3", ExceptionInfo::of("ValueError", "bö\"om\n\x01"), "tb\t\\"),
                                  retry_result("id-4", ExceptionInfo::of("Retry", "in 5s"), "tb"),
                                  revoked_result("id-5", "expired")};
    ResultMeta extended = success_result("id-6", json::parse(R"({"b": [1, 2.5, null, "é"], "a": {}})"));
    extended.name = "tasks.add";
    extended.worker = "w1@host";
    extended.queue = "celery";
    extended.args = json::parse(R"([1, "two", [3]])");
    extended.kwargs = json::parse(R"({"z": 1, "y": true})");
    extended.retries = 3;
    extended.group_id = "g";
    extended.children = json::parse(R"([["x", null]])");
    metas.push_back(extended);
    for (const auto& meta : metas) EXPECT_EQ(to_json_text(meta), to_json(meta).dump()) << meta.task_id;
    ResultMeta invalid = success_result("id-7", std::string("\xff"));
    EXPECT_THROW(to_json_text(invalid), json::type_error);  // as dump() does
}

TEST(ResultMeta, JsonTextWritesWhatDumpWrites) {
    for (const char* text : {R"([1, -2, 0, 18446744073709551615, -9223372036854775808, 2.5, 1e300, -0.0, 0.1])",
                             R"({"b": {"x": [], "y": {}}, "a": [null, true, false, "q\"\\\n\t\u0001é"], "": ""})",
                             R"("x")", "[]", "{}", "7"}) {
        json value = json::parse(text);
        std::string out;
        ccmulti::protocol::append_json(out, value);
        EXPECT_EQ(out, value.dump()) << text;
    }
    json binary = json::binary({1, 2, 3});
    std::string out;
    ccmulti::protocol::append_json(out, binary);
    EXPECT_EQ(out, binary.dump());
}
