#include "platform/read_file.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "supervisor/start_report.hpp"
#include "util/error.hpp"

using namespace ccmulti;
namespace fs = std::filesystem;

namespace {

struct ScratchDir {
    fs::path path;
    ScratchDir() {
        std::string pattern = (fs::temp_directory_path() / "ccmulti-read-file-XXXXXX").string();
        path = ::mkdtemp(pattern.data());
    }
    ~ScratchDir() { fs::remove_all(path); }
};

std::string refusal(const fs::path& path) {
    try {
        open_log_file(path);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(OpenRegularFile, CreatesAndAppendsToALog) {
    ScratchDir dir;
    auto fd = open_log_file(dir.path / "w1.log");
    ASSERT_TRUE(fd);
    ASSERT_EQ(::write(fd.get(), "x\n", 2), 2);
    EXPECT_EQ(::fcntl(fd.get(), F_GETFL) & O_NONBLOCK, 0);  // only while opening
    EXPECT_NE(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, 0);
    EXPECT_EQ(fs::file_size(dir.path / "w1.log"), 2U);
}

TEST(OpenRegularFile, RefusesASymlinkWithoutTouchingItsTarget) {
    ScratchDir dir;
    std::ofstream(dir.path / "secret") << "top secret\n";
    fs::create_symlink(dir.path / "secret", dir.path / "w1.log");
    EXPECT_NE(
        refusal(dir.path / "w1.log").find("refusing log file " + (dir.path / "w1.log").string() + ": it is a symlink"),
        std::string::npos);
    EXPECT_EQ(fs::file_size(dir.path / "secret"), 11U);
    // The start report shows no line of what the refused symlink points to.
    EXPECT_TRUE(supervisor::log_tail(dir.path / "w1.log", 0).empty());
}

TEST(OpenRegularFile, AFifoIsRefusedAtOnceNotWaitedOn) {
    ScratchDir dir;
    ASSERT_EQ(::mkfifo((dir.path / "w1.log").c_str(), 0644), 0);
    // Without a reader, a blocking open for writing would hang here for good.
    EXPECT_NE(refusal(dir.path / "w1.log").find("it is a FIFO, not a regular file"), std::string::npos);
    EXPECT_FALSE(open_regular_file(dir.path / "w1.log", O_RDONLY).fd);
    EXPECT_TRUE(supervisor::log_tail(dir.path / "w1.log", 0).empty());
    EXPECT_NE(log_path_problem(dir.path / "w1.log").find("FIFO"), std::string::npos);
}

TEST(OpenRegularFile, DevicesKernelFilesAndDirectoriesAreNotLogs) {
    EXPECT_NE(refusal("/dev/full").find("it is a character device, not a regular file"), std::string::npos);
    EXPECT_NE(refusal("/proc/self/mem").find("kernel file"), std::string::npos);
    EXPECT_NE(refusal("/tmp").find("not a regular file"), std::string::npos);
    EXPECT_NE(log_path_problem("/dev/full").find("character device"), std::string::npos);
    EXPECT_NE(log_path_problem("/proc/self/mem").find("kernel file"), std::string::npos);
    EXPECT_NE(log_path_problem("/tmp").find("directory"), std::string::npos);
}

TEST(OpenRegularFile, LogPathProblemAcceptsNewAndWritableFiles) {
    ScratchDir dir;
    EXPECT_EQ(log_path_problem(dir.path / "new.log"), "");
    std::ofstream(dir.path / "old.log") << "x\n";
    EXPECT_EQ(log_path_problem(dir.path / "old.log"), "");
    fs::create_symlink(dir.path / "old.log", dir.path / "link.log");
    EXPECT_EQ(log_path_problem(dir.path / "link.log"), "it is a symlink");
    if (::geteuid() != 0) {  // root may write anything
        fs::permissions(dir.path / "old.log", fs::perms::owner_read);
        EXPECT_NE(log_path_problem(dir.path / "old.log").find("not writable"), std::string::npos);
    }
}

TEST(ReadTextFile, AFifoIsNotWaitedOn) {
    ScratchDir dir;
    ASSERT_EQ(::mkfifo((dir.path / "ccmulti.toml").c_str(), 0644), 0);
    try {
        read_text_file(dir.path / "ccmulti.toml", 1024);
        FAIL() << "a FIFO was read";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("is not a regular file"), std::string::npos);
    }
}
