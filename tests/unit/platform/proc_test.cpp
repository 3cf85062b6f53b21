#include "platform/proc.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

namespace ccmulti {

TEST(ProcStat, ParsesACommWithSpacesAndParens) {
    auto stat = parse_proc_stat("42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1 2 3");
    ASSERT_TRUE(stat);
    EXPECT_EQ(stat->pid, 42);
    EXPECT_EQ(stat->comm, "my (odd) name");
    EXPECT_EQ(stat->state, 'S');
    EXPECT_EQ(stat->ppid, 1);
    EXPECT_EQ(stat->pgrp, 42);
    EXPECT_EQ(stat->start_time, 123456u);
}

TEST(ProcStat, RejectsGarbage) {
    EXPECT_FALSE(parse_proc_stat(""));
    EXPECT_FALSE(parse_proc_stat("42 (x) S 1"));
}

TEST(ProcStat, ReadsThisProcess) {
    auto stat = read_proc_stat(getpid());
    ASSERT_TRUE(stat);
    EXPECT_EQ(stat->pid, getpid());
    EXPECT_EQ(stat->pgrp, getpgrp());
    EXPECT_EQ(stat->start_time, self_start_time());
    EXPECT_FALSE(read_cmdline(getpid()).empty());
}

TEST(ProcStat, MissingProcessIsNullopt) {
    EXPECT_FALSE(read_proc_stat(0x3ffffff));
}

}  // namespace ccmulti
