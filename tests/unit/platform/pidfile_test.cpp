#include "platform/pidfile.hpp"

#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "platform/proc.hpp"
#include "util/error.hpp"

namespace ccmulti {

// Not in the anonymous namespace: the TEST_F classes derive from it (and unity builds would warn).
class PidFileTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/ccmulti-pidfile-XXXXXX";
        ASSERT_TRUE(mkdtemp(pattern));
        dir = pattern;
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
    std::filesystem::path dir;
};

namespace {

std::string title_of_self() {
    return read_cmdline(getpid()).front();
}

}  // namespace

TEST(ParsePidFile, ThePidAlone) {
    EXPECT_EQ(parse_pidfile("77\n"), 77);
    EXPECT_EQ(parse_pidfile("77"), 77);          // Celery writes no newline
    EXPECT_EQ(parse_pidfile("123 456\n"), 123);  // an older ccmulti's "PID STARTTIME"
    EXPECT_FALSE(parse_pidfile("123 x"));
    EXPECT_FALSE(parse_pidfile("x"));
    EXPECT_FALSE(parse_pidfile("-1 2"));
    EXPECT_FALSE(parse_pidfile(""));
}

TEST_F(PidFileTest, LockedFileOfThisProcessIsRunning) {
    auto lock = PidFile::try_acquire(dir / "a.pid");
    ASSERT_TRUE(lock);
    lock->write(getpid());
    std::ifstream in(dir / "a.pid");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, std::to_string(getpid()) + "\n");  // what `kill -0 $(cat a.pid)` and init scripts read
    auto check = check_pidfile(dir / "a.pid", title_of_self());
    EXPECT_TRUE(check.running()) << check.reason;
    EXPECT_EQ(check.pid, getpid());
    EXPECT_EQ(check.start_time, self_start_time());
    // A second lock on the same file is refused while the first is held.
    EXPECT_FALSE(PidFile::try_acquire(dir / "a.pid"));
    lock->remove();
    EXPECT_FALSE(std::filesystem::exists(dir / "a.pid"));
}

TEST_F(PidFileTest, UnlockedFileIsStaleWhateverItSays) {
    std::ofstream(dir / "b.pid") << getpid() << "\n";
    auto check = check_pidfile(dir / "b.pid", title_of_self());
    EXPECT_EQ(check.state, PidCheck::State::stale);
    EXPECT_NE(check.reason.find("not locked"), std::string::npos);
    // A stale file is taken over.
    EXPECT_TRUE(PidFile::try_acquire(dir / "b.pid"));
}

TEST_F(PidFileTest, WrongTitleOrStartTimeIsNotOurs) {
    auto lock = PidFile::try_acquire(dir / "c.pid");
    ASSERT_TRUE(lock);
    lock->write(getpid());
    std::string why;
    EXPECT_FALSE(same_process(getpid(), self_start_time() + 1, title_of_self(), why));  // a recycled pid
    EXPECT_NE(why.find("another process"), std::string::npos) << why;
    auto check = check_pidfile(dir / "c.pid", "ccmulti: node nobody@nowhere");
    EXPECT_FALSE(check.running());
    EXPECT_NE(check.reason.find("another process"), std::string::npos) << check.reason;
}

TEST_F(PidFileTest, ZombiesCountAsDead) {
    pid_t child = fork();
    if (child == 0) _exit(0);
    // Wait for it to become a zombie without reaping it.
    siginfo_t info{};
    ASSERT_EQ(waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);
    std::string why;
    EXPECT_FALSE(same_process(child, read_proc_stat(child)->start_time, "", why));
    EXPECT_NE(why.find("zombie"), std::string::npos) << why;
    waitpid(child, nullptr, 0);
}

TEST_F(PidFileTest, MissingFileAndSymlink) {
    EXPECT_EQ(check_pidfile(dir / "none.pid", "x").state, PidCheck::State::missing);
    std::filesystem::create_symlink("/etc/passwd", dir / "evil.pid");
    EXPECT_THROW(PidFile::try_acquire(dir / "evil.pid"), Error);
}

TEST_F(PidFileTest, AFileThatIsNotAPidFileIsNeverWrittenOrRemoved) {
    const std::string passwd = "root:x:0:0:root:/root:/bin/bash\n";
    std::ofstream(dir / "passwd") << passwd;
    try {
        PidFile::try_acquire(dir / "passwd");
        FAIL() << "took over a file that is not a pid file";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Exit::usage);
        EXPECT_NE(std::string(e.what()).find("is not a pid file"), std::string::npos) << e.what();
    }
    std::ifstream in(dir / "passwd");
    EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()), passwd);
    std::filesystem::create_directory(dir / "a-dir.pid");
    EXPECT_THROW(PidFile::try_acquire(dir / "a-dir.pid"), Error);
    // An empty file, or a leftover pid file (ours or Celery's), is taken over.
    std::ofstream(dir / "empty.pid").close();
    EXPECT_TRUE(PidFile::try_acquire(dir / "empty.pid"));
    std::ofstream(dir / "celery.pid") << "4242";
    EXPECT_TRUE(PidFile::try_acquire(dir / "celery.pid"));
}

TEST_F(PidFileTest, TitlePrefixEndsAtAWord) {
    std::string why;
    std::string title = title_of_self();
    EXPECT_TRUE(same_process(getpid(), self_start_time(), title, why)) << why;
    EXPECT_FALSE(same_process(getpid(), self_start_time(), title.substr(0, title.size() - 1), why));
}

}  // namespace ccmulti
