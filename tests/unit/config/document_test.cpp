#include "config/document.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace ccmulti::config {

namespace {

Value plain(const std::string& text) {
    ConfigErrors errors;
    return plain_scalar(text, {"t", 1, 1}, errors);
}

TEST(PlainScalar, CoreSchema) {
    for (auto text : {"", "~", "null", "Null", "NULL"}) EXPECT_EQ(plain(text).kind, Value::Kind::null) << text;
    EXPECT_TRUE(plain("true").boolean);
    EXPECT_FALSE(plain("False").boolean);
    EXPECT_EQ(plain("yes").kind, Value::Kind::string);  // YAML 1.1 booleans are strings in 1.2
    EXPECT_EQ(plain("42").integer, 42);
    EXPECT_EQ(plain("-7").integer, -7);
    EXPECT_EQ(plain("+7").integer, 7);
    EXPECT_EQ(plain("0x1F").integer, 31);
    EXPECT_EQ(plain("0o17").integer, 15);
    EXPECT_EQ(plain("1.5").floating, 1.5);
    EXPECT_EQ(plain(".5").floating, 0.5);
    EXPECT_EQ(plain("1e3").kind, Value::Kind::floating);
    EXPECT_EQ(plain("1.").floating, 1.0);
    EXPECT_TRUE(std::isinf(plain("-.inf").floating));
    EXPECT_TRUE(std::isnan(plain(".nan").floating));
    for (auto text : {"four", "1.2.3", "0x", "0xZ", "1e", ".", "-", "+", "1_000", "e5", "4 ", " 4"})
        EXPECT_EQ(plain(text).kind, Value::Kind::string) << text;
}

TEST(PlainScalar, OverflowIsAnError) {
    ConfigErrors errors;
    Value value = plain_scalar("9223372036854775808", {"t", 2, 3}, errors);
    EXPECT_EQ(value.kind, Value::Kind::null);
    EXPECT_EQ(errors.lines(), std::vector<std::string>{"t:2:3: integer 9223372036854775808 does not fit in 64 bits"});
    EXPECT_EQ(plain("9223372036854775807").integer, INT64_MAX);
}

TEST(Describe, ShortQuotedAndEscaped) {
    Value v;
    v.kind = Value::Kind::string;
    v.string = "a\"b\n";
    EXPECT_EQ(describe(v), "string \"a\\\"b\\x0a\"");
    v.string = std::string(100, 'x');
    EXPECT_EQ(describe(v), "string \"" + std::string(60, 'x') + "…\"");
}

TEST(Utf8, StrictDecoding) {
    EXPECT_TRUE(valid_utf8("plain ascii"));
    EXPECT_TRUE(valid_utf8("caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80"));
    EXPECT_FALSE(valid_utf8("\xff"));
    EXPECT_FALSE(valid_utf8("\xc3"));              // truncated
    EXPECT_FALSE(valid_utf8("\xc0\xaf"));          // overlong '/'
    EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate
    EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
}

TEST(TextValue, RejectsInvalidUtf8) {
    ConfigErrors errors;
    EXPECT_EQ(text_value("\xff", {"$CCMULTI_APP", 0, 0}, false, errors).kind, Value::Kind::null);
    EXPECT_EQ(errors.lines(), std::vector<std::string>{"$CCMULTI_APP: not valid UTF-8"});
}

TEST(TextValue, TypedOnlyWhenAsked) {
    ConfigErrors errors;
    EXPECT_EQ(text_value("4", {}, true, errors).kind, Value::Kind::integer);
    EXPECT_EQ(text_value("4", {}, false, errors).kind, Value::Kind::string);
    EXPECT_EQ(text_value("true", {}, false, errors).string, "true");
}

}  // namespace

}  // namespace ccmulti::config
