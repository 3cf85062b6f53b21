#include "util/shell_split.hpp"

#include <gtest/gtest.h>

#include "util/error.hpp"

namespace ccmulti {

using Words = std::vector<std::string>;

TEST(ShellSplit, WordsAndQuotes) {
    EXPECT_EQ(shell_split("  python3 -m app  ", "t"), (Words{"python3", "-m", "app"}));
    EXPECT_EQ(shell_split("echo 'a b' \"c \\\"d\\\"\" e\\ f", "t"), (Words{"echo", "a b", "c \"d\"", "e f"}));
    EXPECT_EQ(shell_split("x '' y", "t"), (Words{"x", "", "y"}));
    EXPECT_EQ(shell_split("a$HOME *", "t"), (Words{"a$HOME", "*"}));  // no expansion
    EXPECT_EQ(shell_split("--name=%n@%h", "t"), (Words{"--name=%n@%h"}));
}

TEST(ShellSplit, Errors) {
    EXPECT_THROW(shell_split("echo 'open", "--exec"), UsageError);
    EXPECT_THROW(shell_split("echo \"open", "--exec"), UsageError);
    EXPECT_THROW(shell_split("echo \\", "--exec"), UsageError);
}

}  // namespace ccmulti
