#include "platform/proc_table.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

namespace ccmulti {

TEST(ProcTable, FindsThisProcessWithItsParentAndMemory) {
    auto table = scan_processes();
    auto self = std::find_if(table.begin(), table.end(), [](const ProcEntry& p) { return p.pid == ::getpid(); });
    ASSERT_NE(self, table.end());
    EXPECT_EQ(self->ppid, ::getppid());
    EXPECT_EQ(self->uid, ::geteuid());
    EXPECT_GT(self->rss_bytes, 0u);
    EXPECT_NE(self->title.find("unit_platform_process"), std::string::npos) << self->title;
    EXPECT_GT(read_rss(::getpid()).value_or(0), 0u);
    EXPECT_FALSE(read_rss(-5).has_value());
    EXPECT_GE(process_age_seconds(self->start_time), 0.0);
    EXPECT_LT(process_age_seconds(self->start_time), 3600.0);
}

TEST(ProcTable, FormatsForTables) {
    EXPECT_EQ(format_bytes(812 * 1024), "812K");
    EXPECT_EQ(format_bytes(4300 * 1024), "4.2M");
    EXPECT_EQ(format_bytes(3ULL << 30), "3.0G");
    EXPECT_EQ(format_duration(45.9), "45s");
    EXPECT_EQ(format_duration(12 * 60 + 3), "12m03s");
    EXPECT_EQ(format_duration(3 * 3600 + 7 * 60), "3h07m");
    EXPECT_EQ(format_duration(2 * 86400 + 4 * 3600), "2d04h");
}

}  // namespace ccmulti
