#include "util/strings.hpp"

#include <gtest/gtest.h>

namespace ccmulti {

TEST(Strings, SplitKeepsEmptyFields) {
    EXPECT_EQ(split("a,,b", ','), (std::vector<std::string>{"a", "", "b"}));
    EXPECT_EQ(split("", ','), (std::vector<std::string>{""}));
}

TEST(Strings, ShellQuoteOnlyWhenNeeded) {
    EXPECT_EQ(shell_quote("--logfile=/tmp/%n.log"), "--logfile=/tmp/%n.log");
    EXPECT_EQ(shell_quote("two words"), "'two words'");
    EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
    EXPECT_EQ(shell_quote(""), "''");
}

TEST(Strings, EditDistance) {
    EXPECT_EQ(edit_distance("concurency", "concurrency"), 1u);
    EXPECT_EQ(edit_distance("", "abc"), 3u);
    EXPECT_EQ(edit_distance("same", "same"), 0u);
}

TEST(Strings, ClosestMatchSuggestsOnlyPlausibleTypos) {
    std::vector<std::string> keys{"concurrency", "queues", "loglevel"};
    EXPECT_EQ(closest_match("concurency", keys), "concurrency");
    EXPECT_EQ(closest_match("queue", keys), "queues");
    EXPECT_EQ(closest_match("zzzzzz", keys), "");
}

}  // namespace ccmulti
