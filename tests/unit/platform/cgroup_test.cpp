#include "platform/cgroup.hpp"

#include <gtest/gtest.h>

#include <string>

#include "platform/proc_environ.hpp"

namespace ccmulti {

TEST(Cgroup, FindsTheCgroup2MountInAHybridLayout) {
    const std::string text =
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:7 - cgroup cgroup rw,memory\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n";
    EXPECT_EQ(cgroup::parse_mountinfo(text), std::filesystem::path("/sys/fs/cgroup/unified"));
}

TEST(Cgroup, UnescapesTheMountPointAndSaysWhenThereIsNone) {
    EXPECT_EQ(cgroup::parse_mountinfo("9 1 0:5 / /my\\040cgroups rw - cgroup2 none rw\n"),
              std::filesystem::path("/my cgroups"));
    EXPECT_FALSE(cgroup::parse_mountinfo("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"));
    EXPECT_FALSE(cgroup::parse_mountinfo(""));
}

TEST(Cgroup, ReadsTheUnifiedLineOfProcCgroup) {
    EXPECT_EQ(cgroup::parse_proc_cgroup("4:memory:/x\n0::/system.slice/ccmulti.service\n"),
              std::string("/system.slice/ccmulti.service"));
    EXPECT_EQ(cgroup::parse_proc_cgroup("0::/\n"), std::string("/"));
    EXPECT_FALSE(cgroup::parse_proc_cgroup("4:memory:/x\n1:name=systemd:/\n"));
}

TEST(ProcEnviron, MatchesWholeEntriesOnly) {
    const std::string block = std::string("A=1\0CCMULTI_GROUP=/run/g\0CCMULTI_NODE=w1@h\0", 43);
    EXPECT_TRUE(environment_holds(block, {"CCMULTI_GROUP=/run/g", "CCMULTI_NODE=w1@h"}));
    EXPECT_FALSE(environment_holds(block, {"CCMULTI_GROUP=/run/g", "CCMULTI_NODE=w1"}));
    EXPECT_FALSE(environment_holds(block, {"CCMULTI_GROUP=/run"}));
    EXPECT_FALSE(environment_holds(block, {}));
    EXPECT_FALSE(environment_holds("", {"A=1"}));
}

}  // namespace ccmulti
