#include "naming/template.hpp"

#include <gtest/gtest.h>

#include "util/error.hpp"

namespace ccmulti::naming {

TEST(Template, NodeKeys) {
    auto keys = node_keys("w1", "host.example.com");
    EXPECT_EQ(expand("%n|%N|%h|%p|%d", keys, "test"), "w1|w1|w1@host.example.com|w1@host.example.com|host.example.com");
}

TEST(Template, PoolIndexKeysStayForTheWorker) {
    EXPECT_EQ(expand("/var/log/%n%I.log %i", node_keys("w1", "h"), "--logfile"), "/var/log/w1%I.log %i");
}

TEST(Template, DoublePercentIsALiteralPercent) {
    EXPECT_EQ(expand("100%% %n%%", node_keys("w1", "h"), "test"), "100% w1%");
}

TEST(Template, NonWordAfterPercentStaysAsWritten) {
    EXPECT_EQ(expand("a%-b%", node_keys("w1", "h"), "test"), "a%-b%");
}

TEST(Template, UnknownKeyNamesTemplateAndOrigin) {
    try {
        expand("/tmp/%x.log", node_keys("w1", "h"), "--logfile");
        FAIL() << "expected UsageError";
    } catch (const UsageError& e) {
        std::string message = e.what();
        EXPECT_NE(message.find("%x"), std::string::npos) << message;
        EXPECT_NE(message.find("/tmp/%x.log"), std::string::npos) << message;
        EXPECT_NE(message.find("--logfile"), std::string::npos) << message;
    }
}

TEST(Template, HostKeysSplitTheMachineName) {
    EXPECT_EQ(expand("%h %n %d", host_keys("box.example.com"), "name"), "box.example.com box example.com");
    EXPECT_EQ(expand("%d", host_keys("box"), "name"), "");
}

}  // namespace ccmulti::naming
