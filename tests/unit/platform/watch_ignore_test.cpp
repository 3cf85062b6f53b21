#include "platform/watch_ignore.hpp"

#include <gtest/gtest.h>

#include "util/error.hpp"

namespace ccmulti {

namespace {

// A root at /srv/app: the absolute path of an entry is the root joined with its relative path.
bool ignored(const WatchIgnore& ignore, const std::string& relative, bool is_dir = false) {
    return ignore.ignored(relative, std::filesystem::path("/srv/app") / relative, is_dir);
}

}  // namespace

TEST(WatchIgnore, DefaultsSkipToolDroppingsButNotCode) {
    auto ignore = WatchIgnore::defaults();
    for (const char* path : {".git", ".git/objects/ab/cdef", "proj/__pycache__/tasks.cpython-311.pyc", "proj/tasks.pyc",
                             "proj/.tasks.py.swp", "proj/tasks.py~", "proj/.#tasks.py", "proj/#tasks.py#", "proj/4913",
                             "proj/tasks.py___jb_tmp___", "proj/upload.tmp", "build/lib.so",
                             "build-asan/CMakeFiles/x.o", "sub/build/out.o"})
        EXPECT_TRUE(ignored(ignore, path)) << path;
    for (const char* path : {"proj/tasks.py", "proj/settings.toml", "plugins/libtasks.so", "proj/4913.py",
                             "proj/builder.py", "docs/build.md", "gitconfig", "proj/.gitignore"})
        EXPECT_FALSE(ignored(ignore, path)) << path;
}

TEST(WatchIgnore, TrailingSlashMeansDirectoriesOnly) {
    auto ignore = WatchIgnore::defaults();
    EXPECT_TRUE(ignored(ignore, "build", true));
    EXPECT_FALSE(ignored(ignore, "build", false));  // a file named build is code (a script)
    EXPECT_FALSE(ignored(ignore, "buildout.cfg"));
    EXPECT_TRUE(ignored(ignore, "buildout/x.cfg"));  // a directory build*
}

TEST(WatchIgnore, ASlashInsideAnchorsAtTheRootAndStarStaysInOneName) {
    WatchIgnore ignore;
    ignore.add_glob("docs/*.md");
    EXPECT_TRUE(ignored(ignore, "docs/index.md"));
    EXPECT_FALSE(ignored(ignore, "docs/api/index.md"));
    EXPECT_FALSE(ignored(ignore, "proj/docs/index.md"));
    ignore.add_glob("generated/");
    EXPECT_TRUE(ignored(ignore, "generated/a/b.py"));
    EXPECT_TRUE(ignored(ignore, "proj/generated", true));  // no slash inside: any level
}

TEST(WatchIgnore, AbsolutePathsCoverEverythingBelow) {
    WatchIgnore ignore;
    ignore.add_path("/srv/app/var/log");
    ignore.add_glob("/srv/app/*.pid");
    EXPECT_TRUE(ignored(ignore, "var/log", true));
    EXPECT_TRUE(ignored(ignore, "var/log/w1.log"));
    EXPECT_FALSE(ignored(ignore, "var/logger.py"));
    EXPECT_TRUE(ignored(ignore, "master.pid"));
    EXPECT_FALSE(ignored(ignore, "run/master.pid"));
}

TEST(WatchIgnore, AddPathTakesGlobCharactersLiterally) {
    WatchIgnore ignore;
    ignore.add_path("/srv/app/logs[1]*");
    EXPECT_TRUE(ignored(ignore, "logs[1]*/w1.log"));
    EXPECT_FALSE(ignored(ignore, "logs1/w1.log"));
    EXPECT_FALSE(ignored(ignore, "logs[1]x/w1.log"));
}

TEST(WatchIgnore, UserGlobsAddToTheDefaults) {
    auto ignore = WatchIgnore::defaults();
    ignore.add_glob("*.log");
    ignore.add_glob("node_modules");
    EXPECT_TRUE(ignored(ignore, "w1.log"));
    EXPECT_TRUE(ignored(ignore, "web/node_modules/x/index.js"));
    EXPECT_TRUE(ignored(ignore, "x.pyc"));
    EXPECT_EQ(ignore.patterns().back(), "node_modules");
    EXPECT_THROW(ignore.add_glob(""), UsageError);
}

}  // namespace ccmulti
