// The node shim's log: output goes through, a reopen (log rotation) switches files at a line boundary and
// never splits a line, a full disk is reported once and not fatal, and the pipe is drained at the end.
#include "supervisor/node_log.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace ccmulti::supervisor {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

void put(int fd, const std::string& text) {
    ASSERT_TRUE(write_all(fd, text.data(), text.size()));
}

class NodeLogTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/ccmulti-node-log-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir_ = pattern;
        log_ = dir_ / "w1.log";
        // The fd the log is open on, as the shim's fd 1 would be.
        out_ = UniqueFd(::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
        ASSERT_TRUE(out_);
        Pipe pipe = make_pipe();
        writer_ = std::move(pipe.write);
        node_log_ = std::make_unique<NodeLog>(
            log_, std::move(pipe.read), [this](const std::string& message) { reports_.push_back(message); },
            std::vector<int>{out_.get()}, std::chrono::milliseconds(50));
    }
    void TearDown() override { fs::remove_all(dir_); }

    // The program writes `text`; the shim's loop pumps it.
    void program_writes(const std::string& text) {
        put(writer_.get(), text);
        node_log_->pump();
    }
    void rotate() { fs::rename(log_, dir_ / "w1.log.1"); }

    fs::path dir_, log_;
    UniqueFd out_, writer_;
    std::unique_ptr<NodeLog> node_log_;
    std::vector<std::string> reports_;
};

TEST_F(NodeLogTest, OutputGoesToTheLog) {
    program_writes("one\ntwo ");
    program_writes("and a half\n");
    EXPECT_EQ(read(log_), "one\ntwo and a half\n");
    EXPECT_TRUE(reports_.empty());
}

TEST_F(NodeLogTest, ReopenAtALineBoundaryIsImmediate) {
    program_writes("old\n");
    rotate();
    node_log_->request_reopen();
    EXPECT_FALSE(node_log_->timeout());
    program_writes("new\n");
    EXPECT_EQ(read(dir_ / "w1.log.1"), "old\n");
    EXPECT_EQ(read(log_), "new\n");
}

TEST_F(NodeLogTest, ReopenInTheMiddleOfALineWaitsForItsEnd) {
    program_writes("old\nhalf");
    rotate();
    node_log_->request_reopen();
    ASSERT_TRUE(node_log_->timeout());
    program_writes(" a line\nnew 1\nnew 2\n");
    EXPECT_EQ(read(dir_ / "w1.log.1"), "old\nhalf a line\n");
    EXPECT_EQ(read(log_), "new 1\nnew 2\n");
    EXPECT_FALSE(node_log_->timeout());
}

TEST_F(NodeLogTest, ALineThatDoesNotEndIsSplitAfterTheWait) {
    program_writes("prompt> ");
    rotate();
    node_log_->request_reopen();
    auto wait = node_log_->timeout();
    ASSERT_TRUE(wait);
    EXPECT_LE(wait->count(), 50);
    std::this_thread::sleep_for(*wait + std::chrono::milliseconds(1));  // the deadline itself is under test
    node_log_->on_timeout();
    program_writes("typed\n");
    EXPECT_EQ(read(dir_ / "w1.log.1"), "prompt> ");
    EXPECT_EQ(read(log_), "typed\n");
}

TEST_F(NodeLogTest, AFailingWriteIsReportedOnceAndNotFatal) {
    UniqueFd full(::open("/dev/full", O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(full);
    ASSERT_GE(::dup2(full.get(), out_.get()), 0);  // the disk is full from now on
    program_writes("lost 1\n");
    program_writes("lost 2\n");
    ASSERT_EQ(reports_.size(), 1u);
    EXPECT_NE(reports_[0].find("No space left on device"), std::string::npos) << reports_[0];
    node_log_->request_reopen();  // the file at the path is writable
    program_writes("back\n");
    ASSERT_EQ(reports_.size(), 2u);
    EXPECT_NE(reports_[1].find("writable again; 14 bytes of output were lost"), std::string::npos) << reports_[1];
    EXPECT_EQ(read(log_), "back\n");
}

TEST_F(NodeLogTest, AReopenThatFailsKeepsTheOpenFile) {
    fs::remove(log_);
    fs::create_directory(log_);  // the path cannot be opened for writing now
    node_log_->request_reopen();
    ASSERT_EQ(reports_.size(), 1u);
    EXPECT_NE(reports_[0].find("still writing to the file that was open"), std::string::npos) << reports_[0];
    program_writes("kept\n");
    EXPECT_EQ(reports_.size(), 1u);
}

TEST_F(NodeLogTest, EndOfFileWhenTheProgramClosesItsOutput) {
    put(writer_.get(), "last\n");
    writer_.reset();
    node_log_->pump();
    EXPECT_EQ(node_log_->fd(), -1);
    EXPECT_EQ(read(log_), "last\n");
}

TEST_F(NodeLogTest, DrainAppendsEverythingLeftInThePipe) {
    std::string text;
    for (int i = 0; i < 5000; ++i) text += std::to_string(i) + "\n";  // more than one pump() round of reads
    std::thread program([&] {
        put(writer_.get(), text);
        writer_.reset();
    });
    node_log_->drain(std::chrono::milliseconds(1000), std::chrono::seconds(10));
    program.join();
    EXPECT_EQ(read(log_), text);
    EXPECT_EQ(node_log_->fd(), -1);
}

TEST_F(NodeLogTest, DrainDoesNotWaitForAWriterThatStaysQuiet) {
    put(writer_.get(), "before exit\n");
    const auto began = std::chrono::steady_clock::now();
    node_log_->drain(std::chrono::milliseconds(20), std::chrono::seconds(10));  // a grandchild holds the pipe
    EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(5));
    EXPECT_EQ(read(log_), "before exit\n");
}

}  // namespace
}  // namespace ccmulti::supervisor
