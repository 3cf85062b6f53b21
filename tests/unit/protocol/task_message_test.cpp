#include "protocol/task_message.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "protocol/base64.hpp"
#include "protocol/fast_decode.hpp"

using namespace ccmulti::protocol;
using nlohmann::json;

namespace {

// Captured from Debian's celery 5.2.6 (LRANGE high 0 -1 after send_task('tasks.add', args=(2,2), queue='high')).
const char* captured =
    R"json({"body": "W1syLCAyXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d",
 "content-encoding": "utf-8", "content-type": "application/json",
 "headers": {"lang": "py", "task": "tasks.add", "id": "f3f843a4-1a41-41eb-bc68-770a246cdc0b", "shadow": null,
   "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null],
   "root_id": "f3f843a4-1a41-41eb-bc68-770a246cdc0b", "parent_id": null, "argsrepr": "(2, 2)", "kwargsrepr": "{}",
   "origin": "gen17802@vm", "ignore_result": false},
 "properties": {"correlation_id": "f3f843a4-1a41-41eb-bc68-770a246cdc0b", "reply_to": "3e86ebec-8c65-3605-82f1-4175eeed70d4",
   "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "high"}, "priority": 0,
   "body_encoding": "base64", "delivery_tag": "4d24f365-2cf5-48c2-92ac-709b86be0333"}})json";

json envelope_with_body(const json& body, json headers, const std::string& content_type = "application/json") {
    return {{"body", base64_encode(body.dump())},
            {"content-type", content_type},
            {"content-encoding", "utf-8"},
            {"headers", std::move(headers)},
            {"properties", {{"body_encoding", "base64"}, {"delivery_info", {{"routing_key", "q"}}}}}};
}

}  // namespace

TEST(Base64, RoundTripsEveryTailLength) {
    for (std::string text : {"", "a", "ab", "abc", "abcd", "abcde", "\x00\xff\x10"}) {
        EXPECT_EQ(base64_decode(base64_encode(text)), text) << text;
    }
    EXPECT_EQ(base64_encode("ab"), "YWI=");
    EXPECT_EQ(base64_encode("abc"), "YWJj");
    EXPECT_EQ(base64_decode("YW\nI="), "ab");
}

TEST(Base64, RejectsGarbage) {
    EXPECT_THROW(base64_decode("YW*="), ProtocolError);
    EXPECT_THROW(base64_decode("Y"), ProtocolError);
    EXPECT_THROW(base64_decode("YW=I"), ProtocolError);
}

TEST(TaskMessage, DecodesCapturedCeleryMessage) {
    TaskMessage message = decode_string(captured);
    EXPECT_EQ(message.protocol, 2);
    EXPECT_EQ(message.task, "tasks.add");
    EXPECT_EQ(message.id, "f3f843a4-1a41-41eb-bc68-770a246cdc0b");
    EXPECT_EQ(message.args, json::array({2, 2}));
    EXPECT_EQ(message.kwargs, json::object());
    EXPECT_EQ(message.embed, TaskMessage::default_embed());
    EXPECT_EQ(message.queue, "high");
    EXPECT_EQ(message.root_id, message.id);
    EXPECT_FALSE(message.parent_id);
    EXPECT_FALSE(message.eta);
    EXPECT_FALSE(message.timelimit.hard);
    EXPECT_EQ(message.delivery_tag, "4d24f365-2cf5-48c2-92ac-709b86be0333");
    EXPECT_EQ(message.origin, "gen17802@vm");
    EXPECT_EQ(message.reply_to, "3e86ebec-8c65-3605-82f1-4175eeed70d4");
    EXPECT_EQ(decode(json::parse(captured)).reply_to, message.reply_to);  // the DOM way too
    EXPECT_FALSE(message.redelivered);
}

TEST(TaskMessage, EncodeDecodeRoundTrip) {
    TaskMessage message = make_message("tasks.mul", json::array({3, "x"}), {{"z", 1}});
    message.queue = "low";
    message.eta = parse_iso8601("2026-11-24T16:48:22.318198+00:00");
    message.expires = parse_iso8601("2026-11-24T16:58:12.318198+00:00");
    message.retries = 2;
    message.timelimit = {30.0, 20.5};
    message.group = "g-1";
    message.group_index = 3;
    message.parent_id = "p-1";
    message.ignore_result = true;
    message.priority = 5;
    message.reply_to = "3e86ebec-reply";
    EXPECT_EQ(decode(encode(message)), message);

    json envelope = encode(message);
    EXPECT_EQ(envelope["headers"]["task"], "tasks.mul");
    EXPECT_EQ(envelope["headers"]["eta"], "2026-11-24T16:48:22.318198+00:00");
    EXPECT_EQ(envelope["headers"]["timelimit"], json::array({30.0, 20.5}));
    EXPECT_EQ(envelope["properties"]["correlation_id"], message.id);
    EXPECT_EQ(envelope["properties"]["delivery_info"]["routing_key"], "low");
    EXPECT_EQ(json::parse(base64_decode(envelope["body"].get<std::string>())),
              json::array({json::array({3, "x"}), {{"z", 1}}, TaskMessage::default_embed()}));
}

TEST(TaskMessage, MakeMessageFillsIds) {
    TaskMessage a = make_message("t"), b = make_message("t");
    EXPECT_EQ(a.id.size(), 36u);
    EXPECT_EQ(a.id[14], '4');
    EXPECT_NE(a.id, b.id);
    EXPECT_EQ(a.root_id, a.id);
    EXPECT_FALSE(a.delivery_tag.empty());
}

TEST(TaskMessage, AcceptsKombu53TypedDates) {
    json envelope = envelope_with_body(
        json::array({json::array(), json::object(), nullptr}),
        {{"task", "t"}, {"id", "i"}, {"eta", {{"__type__", "datetime"}, {"__value__", "2026-01-02T03:04:05Z"}}}});
    TaskMessage message = decode(envelope);
    ASSERT_TRUE(message.eta);
    EXPECT_EQ(format_iso8601(*message.eta), "2026-01-02T03:04:05.000000+00:00");
    EXPECT_EQ(message.queue, "q");
    EXPECT_EQ(message.embed, TaskMessage::default_embed());  // null embed: the defaults
}

TEST(TaskMessage, DecodesProtocolV1) {
    json body = {{"task", "tasks.add"},
                 {"id", "v1-id"},
                 {"args", {1, 2}},
                 {"kwargs", {{"k", "v"}}},
                 {"retries", 1},
                 {"eta", nullptr},
                 {"expires", "2026-01-01T00:00:00"},
                 {"utc", true},
                 {"timelimit", {nullptr, 5}}};
    TaskMessage message = decode(envelope_with_body(body, json::object()));
    EXPECT_EQ(message.protocol, 1);
    EXPECT_EQ(message.id, "v1-id");
    EXPECT_EQ(message.task, "tasks.add");
    EXPECT_EQ(message.args, json::array({1, 2}));
    EXPECT_EQ(message.kwargs, json({{"k", "v"}}));
    EXPECT_EQ(message.retries, 1);
    EXPECT_TRUE(message.expires);
    EXPECT_EQ(message.timelimit.soft, 5.0);
}

TEST(TaskMessage, RejectsWhatCannotRunAndNamesTheTask) {
    json headers = {{"task", "t"}, {"id", "the-id"}};
    try {
        decode(envelope_with_body(json::array(), headers, "application/x-python-serialize"));
        FAIL() << "pickle accepted";
    } catch (const ProtocolError& error) {
        EXPECT_EQ(error.task_id(), "the-id");
        EXPECT_NE(std::string(error.what()).find("serializer"), std::string::npos);
    }
    json compressed = headers;
    compressed["compression"] = "application/x-gzip";
    EXPECT_THROW(decode(envelope_with_body(json::array({json::array(), json::object()}), compressed)), ProtocolError);
    EXPECT_THROW(decode(envelope_with_body(json::array({json::object(), json::object()}), headers)), ProtocolError);
    EXPECT_THROW(decode(envelope_with_body(json::array({json::array(), json::array()}), headers)), ProtocolError);
    json bad_eta = headers;
    bad_eta["eta"] = "tomorrow";
    EXPECT_THROW(decode(envelope_with_body(json::array({json::array(), json::object()}), bad_eta)), ProtocolError);
    EXPECT_THROW(decode_string("{not json"), ProtocolError);
    EXPECT_THROW(decode(json::array()), ProtocolError);
}

TEST(TaskMessage, RedeliveredFlagSurvives) {
    TaskMessage message = make_message("t");
    message.redelivered = true;
    EXPECT_TRUE(decode(encode(message)).redelivered);
}

TEST(TaskMessage, FieldsOfTheWrongJsonTypeAreAProtocolErrorNamingTheTask) {
    json envelope = encode(make_message("t"));
    envelope["content-type"] = 42;
    try {
        decode(envelope);
        FAIL() << "decoded a message whose content-type is a number";
    } catch (const ProtocolError& e) {
        EXPECT_EQ(e.task_id(), envelope["headers"]["id"].get<std::string>());
    }
}

// Inputs the fuzzer (scripts/fuzz) found: each decodes, or is refused with a ProtocolError, nothing else.
TEST(TaskMessage, FuzzRegressions) {
    int seen = 0;
    for (const auto& entry : std::filesystem::directory_iterator(CCMULTI_SOURCE_DIR "/tests/fuzz/regressions")) {
        if (entry.path().extension() != ".json") continue;
        std::ifstream in(entry.path(), std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        try {
            decode_string(text);
        } catch (const ProtocolError&) {
        }
        ++seen;
    }
    EXPECT_GT(seen, 0);
}

// --- the fast path (protocol/fast_decode.hpp): same message as the DOM way, or it steps aside ---------------

namespace {

// decode_string() without its fast path.
std::optional<TaskMessage> dom_decode(std::string_view text) {
    try {
        return decode(json::parse(text));
    } catch (const json::exception&) {
    } catch (const ProtocolError&) {
    }
    return std::nullopt;
}

}  // namespace

TEST(FastDecode, AgreesWithTheDomWayOnWhatCeleryAndCcmultiWrite) {
    auto fast = detail::fast_decode(captured);
    ASSERT_TRUE(fast);
    EXPECT_EQ(*fast, *dom_decode(captured));

    TaskMessage full = make_message("tasks.add", json::array({1, "two", json::object({{"x", 3.5}})}),
                                    json::object({{"k", json::array({nullptr, true})}}));
    full.eta = parse_iso8601("2030-01-31T12:00:00.250000+00:00");
    full.expires = parse_iso8601("2030-02-01T00:00:00Z");
    full.retries = 3;
    full.group = "g";
    full.group_index = 2;
    full.parent_id = "p";
    full.timelimit = {30, 10.5};
    full.ignore_result = true;
    full.queue = "high";
    full.priority = 6;
    full.redelivered = true;
    std::string text = encode_string(full);
    fast = detail::fast_decode(text);
    ASSERT_TRUE(fast);
    EXPECT_EQ(*fast, *dom_decode(text));
    EXPECT_EQ(*fast, full);
}

TEST(FastDecode, StepsAsideForAnythingUnusualAndTheDomWayDecides) {
    // v1, a kombu 5.3 datetime object, a duplicate header, a wrong type, compression: nullopt, and decode_string()
    // gives what the DOM way gives.
    json v1 = {{"body", base64_encode(json({{"task", "t"}, {"id", "i"}, {"args", json::array()}}).dump())},
               {"content-type", "application/json"},
               {"properties", {{"body_encoding", "base64"}}}};
    json typed = envelope_with_body(
        json::array({json::array(), json::object()}),
        {{"task", "t"}, {"id", "i"}, {"eta", {{"__type__", "datetime"}, {"__value__", "2030-01-01T00:00:00"}}}});
    json wrong = envelope_with_body(json::array({json::array(), json::object()}), {{"task", "t"}, {"id", 5}});
    json compressed = envelope_with_body(json::array({json::array(), json::object()}),
                                         {{"task", "t"}, {"id", "i"}, {"compression", "zlib"}});
    std::string duplicate = R"({"body": "W1tdLCB7fV0=", "headers": {"task": "a", "id": "i", "task": "b"},
                                "properties": {"body_encoding": "base64"}})";
    for (const std::string& text : {v1.dump(), typed.dump(), wrong.dump(), compressed.dump(), duplicate}) {
        EXPECT_FALSE(detail::fast_decode(text)) << text;
        auto dom = dom_decode(text);
        try {
            EXPECT_EQ(decode_string(text), *dom) << text;
        } catch (const ProtocolError&) {
            EXPECT_FALSE(dom) << text;
        }
    }
    EXPECT_EQ(decode_string(duplicate).task, "b");  // nlohmann keeps the last

    // An empty header id is not replaced by the correlation id (the DOM way: "message has no task id").
    json empty_id = envelope_with_body(json::array({json::array(), json::object()}), {{"task", "t"}, {"id", ""}});
    empty_id["properties"]["correlation_id"] = "c";
    EXPECT_THROW(decode_string(empty_id.dump()), ProtocolError);
}

TEST(FastDecode, DeepNestingInALargeEnvelopeIsStillRefused) {
    // Past the fast parser's first buffer (4096 bytes), so it has grown: its depth limit must have stayed.
    json deep = nullptr;
    for (int i = 0; i < 300; ++i) deep = json::array({deep});
    json envelope = envelope_with_body(json::array({json::array(), json::object()}),
                                       {{"task", "t"}, {"id", "i"}, {"argsrepr", std::string(8000, 'x')}});
    envelope["headers"]["unread"] = deep;
    EXPECT_FALSE(detail::fast_decode(envelope.dump()));
    EXPECT_THROW(decode_string(envelope.dump()), ProtocolError);
}

TEST(TaskMessage, UuidsAreVersion4AndNeverRepeatedByAForkedChild) {
    std::string id = new_uuid();
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[8], '-');
    EXPECT_EQ(id[13], '-');
    EXPECT_EQ(id[14], '4');
    EXPECT_EQ(id[18], '-');
    EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos);
    EXPECT_EQ(id[23], '-');
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef-"), std::string::npos);
    // A child forked now must not give the ids the parent gives next.
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        std::string mine = new_uuid();
        ssize_t written = ::write(fds[1], mine.data(), mine.size());
        ::_exit(written == 36 ? 0 : 1);
    }
    ::close(fds[1]);
    std::string parent = new_uuid();
    char buffer[36];
    ssize_t got = 0;
    while (got < 36) {
        ssize_t n = ::read(fds[0], buffer + got, sizeof buffer - static_cast<std::size_t>(got));
        if (n <= 0) break;
        got += n;
    }
    ::close(fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_EQ(got, 36);
    EXPECT_NE(std::string(buffer, 36), parent);
}

TEST(TaskMessage, FastJsonParseGivesNlohmannsValue) {
    for (const char* text : {R"([1, -2, 3.5, 1e3, 18446744073709551615, "é\n", true, false, null])",
                             R"({"b": {"x": []}, "a": {}, "b": [1]})", R"("text")", "0", "-7", "[[[[]]]]"}) {
        auto fast = detail::parse_json(text);
        ASSERT_TRUE(fast) << text;
        json slow = json::parse(text);
        EXPECT_EQ(*fast, slow) << text;
        EXPECT_EQ(fast->dump(), slow.dump()) << text;
    }
    auto types = detail::parse_json("[1, -1, 1.0]");
    EXPECT_TRUE((*types)[0].is_number_unsigned());
    EXPECT_TRUE((*types)[1].is_number_integer() && !(*types)[1].is_number_unsigned());
    EXPECT_TRUE((*types)[2].is_number_float());
    for (const char* refused : {"[1,", "{\"a\" 1}", "\"\xff\"", "123456789012345678901234567890", ""})
        EXPECT_FALSE(detail::parse_json(refused)) << refused;
}
