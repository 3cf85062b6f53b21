// CodeWatch against a real temp dir and a real EventLoop: files are written from loop timers (one thread, like
// the master) and every wait is the loop running until a callback arrives or a deadline passes. "Exactly one"
// is checked by running on for longer than the quiet period after the first.
#include "supervisor/code_watch.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <stdlib.h>

#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "util/error.hpp"

namespace ccmulti::supervisor {

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

void write_file(const fs::path& path, const std::string& text = "x = 1\n") {
    std::ofstream(path) << text;
}

NodeSpec node(const std::string& name, std::vector<fs::path> watch, std::vector<std::string> ignore = {},
              std::chrono::milliseconds debounce = 100ms) {
    NodeSpec spec;
    spec.name = name;
    spec.watch = std::move(watch);
    spec.watch_ignore = std::move(ignore);
    spec.watch_debounce = debounce;
    return spec;
}

struct Call {
    std::vector<std::string> names;
    std::string reason;
};

class CodeWatchTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (fs::temp_directory_path() / "ccmulti-codewatch-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text_);
        sink->set_pattern("%v");
        watch_ = std::make_unique<CodeWatch>(loop_, std::make_shared<spdlog::logger>("test", sink),
                                             [this](std::vector<std::string> names, std::string reason) {
                                                 calls_.push_back({std::move(names), std::move(reason)});
                                                 loop_.stop();
                                             });
    }
    void TearDown() override {
        watch_.reset();
        fs::remove_all(dir_);
    }

    // Runs the loop until a callback arrives or `limit` has passed.
    void run(EventLoop::Clock::duration limit) {
        auto guard = loop_.after(limit, [this] { loop_.stop(); });
        loop_.run();
        loop_.cancel(guard);
    }
    // The first callback within 5 s, then `settle` more in which no second one may come.
    void run_for_one(EventLoop::Clock::duration settle = 300ms) {
        run(5s);
        ASSERT_EQ(calls_.size(), 1u) << "no callback within 5 s";
        run(settle);
    }

    fs::path dir_;
    EventLoop loop_;
    std::ostringstream log_text_;
    std::unique_ptr<CodeWatch> watch_;
    std::vector<Call> calls_;
};

}  // namespace

TEST_F(CodeWatchTest, TwentyWritesIn100msAreOneCallbackNamingTheNode) {
    fs::create_directories(dir_ / "proj");
    watch_->set_nodes({node("w1@host", {dir_ / "proj"}), node("w2@host", {})});
    EXPECT_EQ(watch_->file_watches(), 1u);
    for (int i = 0; i < 20; ++i)
        loop_.after(5ms * i, [this, i] { write_file(dir_ / "proj" / ("m" + std::to_string(i % 4) + ".py")); });
    run_for_one();
    ASSERT_EQ(calls_.size(), 1u);
    EXPECT_EQ(calls_[0].names, std::vector<std::string>{"w1@host"});
    EXPECT_EQ(calls_[0].reason, "change: " + (dir_ / "proj/m0.py").string() + " (+3 more)");
    EXPECT_NE(log_text_.str().find("change: " + (dir_ / "proj/m0.py").string() + " (+3 more) → replacing w1\n"),
              std::string::npos)
        << log_text_.str();
}

TEST_F(CodeWatchTest, AnIgnoredFileGivesNoCallback) {
    watch_->set_nodes({node("w1@host", {dir_}, {"*.log", "data/"})});
    fs::create_directories(dir_ / "data");
    loop_.after(5ms, [this] { write_file(dir_ / "w1.log"); });
    loop_.after(10ms, [this] { write_file(dir_ / "tasks.pyc"); });  // a built-in ignore
    run(400ms);                                                     // four times the debounce
    EXPECT_TRUE(calls_.empty()) << calls_[0].reason;
}

TEST_F(CodeWatchTest, OnlyTheNodesWatchingTheChangedDirectoryAreNamed) {
    fs::create_directories(dir_ / "a");
    fs::create_directories(dir_ / "b");
    fs::create_directories(dir_ / "shared");
    watch_->set_nodes({node("w1@host", {dir_ / "a", dir_ / "shared"}), node("w2@host", {dir_ / "b", dir_ / "shared"}),
                       node("w3@host", {dir_ / "b"})});
    EXPECT_EQ(watch_->file_watches(), 1u);  // same ignores and debounce: one FileWatch, shared directories once
    EXPECT_EQ(watch_->watched_directories(), 3u);

    loop_.after(5ms, [this] { write_file(dir_ / "a/x.py"); });
    run_for_one();
    EXPECT_EQ(calls_.at(0).names, std::vector<std::string>{"w1@host"});

    loop_.after(5ms, [this] { write_file(dir_ / "b/y.py"); });
    run(5s);
    ASSERT_EQ(calls_.size(), 2u);
    EXPECT_EQ(calls_[1].names, (std::vector<std::string>{"w2@host", "w3@host"}));

    loop_.after(5ms, [this] { write_file(dir_ / "shared/z.py"); });
    run(5s);
    ASSERT_EQ(calls_.size(), 3u);
    EXPECT_EQ(calls_[2].names, (std::vector<std::string>{"w1@host", "w2@host"}));
}

TEST_F(CodeWatchTest, DifferentIgnoresOrDebouncesAreSeparateWatches) {
    watch_->set_nodes(
        {node("w1@host", {dir_}, {"*.txt"}), node("w2@host", {dir_}, {}), node("w3@host", {dir_}, {}, 50ms)});
    EXPECT_EQ(watch_->file_watches(), 3u);
    loop_.after(5ms, [this] { write_file(dir_ / "notes.txt"); });
    // w2 and w3 come as two callbacks (two FileWatches, two debounces); w1 never.
    auto named = [this] {
        std::set<std::string> out;
        for (const auto& call : calls_) out.insert(call.names.begin(), call.names.end());
        return out;
    };
    const auto deadline = EventLoop::Clock::now() + 5s;
    while (named().size() < 2 && EventLoop::Clock::now() < deadline) run(deadline - EventLoop::Clock::now());
    run(300ms);
    EXPECT_EQ(named(), (std::set<std::string>{"w2@host", "w3@host"}));
    EXPECT_EQ(calls_.size(), 2u);
}

TEST_F(CodeWatchTest, SetNodesReplacesTheWatchesAndAFailureKeepsTheOldOnes) {
    fs::create_directories(dir_ / "a");
    watch_->set_nodes({node("w1@host", {dir_ / "a"})});
    EXPECT_THROW(watch_->set_nodes({node("w1@host", {dir_ / "a"}), node("w2@host", {dir_ / "missing"})}), UsageError);
    EXPECT_EQ(watch_->file_watches(), 1u);
    loop_.after(5ms, [this] { write_file(dir_ / "a/x.py"); });
    run_for_one();
    EXPECT_EQ(calls_.at(0).names, std::vector<std::string>{"w1@host"});

    watch_->set_nodes({});  // nothing watched: no inotify at all
    EXPECT_EQ(watch_->file_watches(), 0u);
    loop_.after(5ms, [this] { write_file(dir_ / "a/x.py", "2"); });
    run(300ms);
    EXPECT_EQ(calls_.size(), 1u);
}

TEST(CodeWatchLine, ShortNamesWhenOneHostSaysItAll) {
    ChangeBatch batch;
    batch.paths = {"proj/tasks.py", "proj/a.py", "proj/b.py", "proj/c.py"};
    EXPECT_EQ(change_line(batch, {"w1@h", "w2@h"}), "change: proj/tasks.py (+3 more) → replacing w1, w2");
    EXPECT_EQ(change_line(batch, {"w1@h", "w1@g"}), "change: proj/tasks.py (+3 more) → replacing w1@h, w1@g");
}

}  // namespace ccmulti::supervisor
