#include "worker/inspect_request.hpp"

#include <gtest/gtest.h>

using namespace ccmulti::worker;

namespace {

std::string refusal(const std::string& line) {
    try {
        parse_inspect_request(line);
    } catch (const BadInspectRequest& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(InspectRequest, ReadsTheMethod) {
    EXPECT_EQ(parse_inspect_request(R"({"method":"ping"})"), "ping");
    EXPECT_EQ(parse_inspect_request(R"({"method":"stats","arguments":{}})"), "stats");
}

TEST(InspectRequest, RefusesWhatIsNotARequest) {
    EXPECT_EQ(refusal("{"), "malformed request: not JSON");
    EXPECT_EQ(refusal("\"ping\""), "malformed request: not a JSON object");
    EXPECT_EQ(refusal("{}"), "malformed request: \"method\" must be a string");
    EXPECT_EQ(refusal(R"({"method":["ping"]})"), "malformed request: \"method\" must be a string");
    EXPECT_EQ(refusal(std::string("{\"method\":\"\xff\"}")), "malformed request: not JSON");
}
