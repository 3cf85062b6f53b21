#include "supervisor/control_request.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

using namespace ccmulti::supervisor;

namespace {

// The error line a request gets, and whether the connection closes after it.
std::pair<std::string, bool> refusal(const std::string& line) {
    try {
        parse_control_request(line);
    } catch (const BadControlRequest& e) {
        return {e.what(), e.closes()};
    }
    return {"", false};
}

const char* spec =
    R"({"name":"w1@h","argv":["/bin/true"],"env":[],"cwd":"/tmp","pidfile":"/tmp/w1.pid","logfile":"/tmp/w1.log",)"
    R"("queues":[],"concurrency":1,"stop_timeout_ms":null,"start_secs_ms":1000})";

}  // namespace

TEST(ControlRequest, ReadsEachCommand) {
    EXPECT_EQ(parse_control_request(R"({"v":1,"cmd":"ping"})").cmd, "ping");
    auto stop = parse_control_request(R"({"cmd":"stop","nodes":["w1@h"],"mode":"kill","timeout":2.5,"wait":true})");
    EXPECT_EQ(stop.nodes, std::vector<std::string>{"w1@h"});
    EXPECT_EQ(stop.mode, StopMode::kill);
    EXPECT_EQ(stop.timeout, std::chrono::milliseconds(2500));
    EXPECT_TRUE(stop.wait);
    auto restart = parse_control_request(R"({"cmd":"restart","all":true})");
    EXPECT_TRUE(restart.all);
    EXPECT_TRUE(restart.wait);  // restart waits unless told not to
    auto add = parse_control_request(std::string(R"({"cmd":"add","nodes":[)") + spec + "]}");
    ASSERT_EQ(add.specs.size(), 1U);
    EXPECT_EQ(add.specs[0].name, "w1@h");
    auto reload = parse_control_request(R"({"cmd":"reload","nodes":["w2"]})");
    EXPECT_EQ(reload.nodes, std::vector<std::string>{"w2"});
    EXPECT_TRUE(reload.wait);  // reload waits unless told not to
    EXPECT_FALSE(parse_control_request(R"({"cmd":"reload","wait":false})").wait);
    EXPECT_EQ(refusal(R"({"cmd":"reload","nodes":"w2"})").second, true) << "nodes must be a list";
    EXPECT_EQ(parse_control_request(R"({"cmd":"frobnicate","extra":1})").cmd, "frobnicate");  // the server's to refuse
}

TEST(ControlRequest, RefusesWhatIsNotARequest) {
    EXPECT_EQ(refusal("not json").second, true);
    EXPECT_NE(refusal("not json").first.find("bad request:"), std::string::npos);
    EXPECT_EQ(refusal("[1,2]"), std::make_pair(std::string("bad request: not a JSON object"), true));
    EXPECT_EQ(refusal(R"({"cmd":7})"), std::make_pair(std::string("bad request: \"cmd\" must be a string"), true));
    EXPECT_EQ(refusal(R"({"cmd":"add","nodes":[]})"),
              std::make_pair(std::string("bad request: no nodes to add"), true));
    EXPECT_TRUE(refusal(R"({"cmd":"add","nodes":[{"name":"x"}]})").second);
    EXPECT_TRUE(refusal(R"({"cmd":"restart","nodes":"w1"})").second);
}

TEST(ControlRequest, ABadStopFieldKeepsTheConnection) {
    auto [error, closes] = refusal(R"({"cmd":"stop","mode":"gentle"})");
    EXPECT_EQ(error, "bad stop request: unknown mode 'gentle'");
    EXPECT_FALSE(closes);
    EXPECT_NE(refusal(R"({"cmd":"stop","nodes":[1]})").first.find("bad stop request"), std::string::npos);
}

TEST(ControlRequest, TimeoutsOutOfRangeAreRefused) {
    // 1e300 seconds used to be converted to milliseconds unchecked (undefined behaviour).
    for (const char* timeout : {"1e300", "-1", "-1e300", "1000000001"})
        EXPECT_NE(refusal(std::string(R"({"cmd":"stop","timeout":)") + timeout + "}").first.find("\"timeout\" must be"),
                  std::string::npos)
            << timeout;
    EXPECT_EQ(parse_control_request(R"({"cmd":"stop","timeout":0})").timeout, std::chrono::milliseconds(0));
    EXPECT_FALSE(parse_control_request(R"({"cmd":"stop","timeout":null})").timeout);
}

// Inputs the fuzzer (scripts/fuzz) found: each is read or refused with a BadControlRequest, nothing else.
TEST(ControlRequest, FuzzRegressions) {
    int seen = 0;
    for (const auto& entry : std::filesystem::directory_iterator(CCMULTI_SOURCE_DIR "/tests/fuzz/regressions")) {
        if (entry.path().extension() != ".ctl") continue;
        std::ifstream in(entry.path(), std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        try {
            parse_control_request(text);
        } catch (const BadControlRequest&) {
        }
        ++seen;
    }
    EXPECT_GT(seen, 0);
}
