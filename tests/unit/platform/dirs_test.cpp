#include "platform/dirs.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>

#include "util/error.hpp"

namespace ccmulti {

namespace {

Getenv fake_env(std::map<std::string, std::string> values) {
    return [values](const char* name) -> std::optional<std::string> {
        auto it = values.find(name);
        if (it == values.end()) return std::nullopt;
        return it->second;
    };
}

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "ccmulti-test-XXXXXX").string();
        path = mkdtemp(pattern.data());
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST(Dirs, RootDefaults) {
    auto dirs = resolve_dirs({}, 0, fake_env({}), "/");
    EXPECT_EQ(dirs.run.path, "/run/ccmulti");
    EXPECT_EQ(dirs.log.path, "/var/log/ccmulti");
    EXPECT_EQ(dirs.state.path, "/var/lib/ccmulti");
}

bool anything_creatable(const std::filesystem::path&) {
    return true;
}

TEST(Dirs, UserDefaultsFollowXdg) {
    auto dirs = resolve_dirs({}, 1000, fake_env({{"XDG_RUNTIME_DIR", "/run/user/1000"}, {"HOME", "/home/u"}}), "/",
                             anything_creatable);
    EXPECT_EQ(dirs.run.path, "/run/user/1000/ccmulti");
    EXPECT_EQ(dirs.log.path, "/home/u/.local/state/ccmulti/log");
    EXPECT_EQ(dirs.state.path, "/home/u/.local/state/ccmulti");
    auto bare = resolve_dirs({}, 1000, fake_env({{"XDG_STATE_HOME", "/s"}}), "/");
    EXPECT_EQ(bare.run.path, "/tmp/ccmulti-1000");
    EXPECT_EQ(bare.state.path, "/s/ccmulti");
}

TEST(Dirs, ASystemUserWithoutAWritableHomeNeedsNone) {
    auto nothing_creatable = [](const std::filesystem::path&) { return false; };
    for (auto env : {fake_env({{"HOME", "/nonexistent"}}), fake_env({})}) {
        auto dirs = resolve_dirs({}, 998, env, "/", nothing_creatable);
        EXPECT_EQ(dirs.log.path, "/var/tmp/ccmulti-998/log");
        EXPECT_EQ(dirs.state.path, "/var/tmp/ccmulti-998");
        EXPECT_EQ(dirs.run.path, "/tmp/ccmulti-998");
    }
    EXPECT_EQ(resolve_dirs({}, 998, fake_env({{"HOME", "/nonexistent"}}), "/", nothing_creatable).log.origin,
              "default ($HOME /nonexistent is not writable)");
}

TEST(Dirs, PrecedenceCommandLineThenLayersThenEnvironment) {
    auto env = fake_env({{"CCMULTI_RUN_DIR", "/env/run"}, {"CCMULTI_LOG_DIR", "/env/log"}});
    DirLayer cli{"/cli/run", std::nullopt, std::nullopt, ""};
    DirLayer file{"/file/run", std::nullopt, "/file/state", "ccmulti.toml:2"};
    auto dirs = resolve_dirs({cli, file}, 0, env, "/");
    EXPECT_EQ(dirs.run.path, "/cli/run");
    EXPECT_EQ(dirs.run.origin, "--run-dir");
    EXPECT_EQ(dirs.log.path, "/env/log");
    EXPECT_EQ(dirs.log.origin, "$CCMULTI_LOG_DIR");
    EXPECT_EQ(dirs.state.origin, "ccmulti.toml:2");
}

TEST(Dirs, RelativePathsResolveAgainstBase) {
    auto dirs = resolve_dirs({{"run", std::nullopt, std::nullopt, ""}}, 0, fake_env({}), "/srv/app");
    EXPECT_EQ(dirs.run.path, "/srv/app/run");
}

TEST(Dirs, EnsurePrivateDirCreates0700) {
    TempDir tmp;
    Dir dir{"run", tmp.path / "a/b", "--run-dir"};
    EXPECT_TRUE(ensure_private_dir(dir));
    struct stat st {};
    ASSERT_EQ(stat(dir.path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_FALSE(ensure_private_dir(dir));
}

TEST(Dirs, EnsurePrivateDirCreatesMissingParentsPrivateToo) {
    TempDir tmp;
    // The default log dir lives inside the state dir: neither may be readable by others.
    Dir log{"log", tmp.path / "state/ccmulti/log", "default"};
    EXPECT_TRUE(ensure_private_dir(log));
    struct stat st {};
    ASSERT_EQ(stat((tmp.path / "state/ccmulti").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST(Dirs, EnsurePrivateDirRefusesADirOthersCanWrite) {
    TempDir tmp;
    auto shared = tmp.path / "shared";
    std::filesystem::create_directory(shared);
    ASSERT_EQ(chmod(shared.c_str(), 0777), 0);
    try {
        ensure_private_dir({"run", shared, "--run-dir"});
        FAIL() << "a world-writable run dir was accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("others can write to it (mode 0777)"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("chmod go-w " + shared.string()), std::string::npos) << e.what();
    }
}

TEST(Dirs, FileDirsAreCreated0755OrTheErrorNamesTheFixes) {
    TempDir tmp;
    Dir fallback{"run", tmp.path / "run", "default"};
    FileDir pids{tmp.path / "var/run/celery", "--pidfile", tmp.path / "var/run/celery/w1.pid", fallback, "w1@h"};
    EXPECT_TRUE(ensure_file_dir(pids));
    struct stat st {};
    ASSERT_EQ(stat(pids.path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0755u);
    EXPECT_FALSE(ensure_file_dir(pids));
    if (geteuid() == 0) return;  // root can create anything: the message below needs a directory it cannot
    ASSERT_EQ(chmod((tmp.path / "var/run").c_str(), 0555), 0);
    FileDir other{tmp.path / "var/run/other", "--pidfile", tmp.path / "var/run/other/w1.pid", fallback, "w1@h"};
    try {
        ensure_file_dir(other);
        FAIL() << "created in a read-only dir";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("ccmulti dirs --create --owner"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("tmpfiles.d"), std::string::npos) << e.what();
    }
}

TEST(Dirs, EnsurePrivateDirRefusesSymlink) {
    TempDir tmp;
    std::filesystem::create_directory(tmp.path / "real");
    std::filesystem::create_directory_symlink(tmp.path / "real", tmp.path / "link");
    try {
        ensure_private_dir({"run", tmp.path / "link", "--run-dir"});
        FAIL() << "symlink accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("symlink"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("--run-dir"), std::string::npos) << e.what();
    }
}

TEST(Dirs, EnsurePrivateDirRefusesForeignOwner) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to chown";
    TempDir tmp;
    auto foreign = tmp.path / "foreign";
    std::filesystem::create_directory(foreign);
    ASSERT_EQ(chown(foreign.c_str(), 65534, 65534), 0);
    EXPECT_THROW(ensure_private_dir({"log", foreign, "$CCMULTI_LOG_DIR"}), Error);
}

}  // namespace ccmulti
