// FileWatch against a real directory and a real EventLoop. Files are written from loop timers (one thread, like
// the master), and every wait is the loop running until a batch arrives or a deadline passes: no bare sleeps.
// "Exactly one batch" is checked by running on for a while after the first one, longer than the quiet period.
#include "platform/file_watch.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <fstream>
#include <memory>

#include "platform/fd.hpp"
#include "platform/read_file.hpp"
#include "util/error.hpp"

namespace ccmulti {

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = EventLoop::Clock;

void write_file(const fs::path& path, const std::string& text = "x = 1\n") {
    std::ofstream(path) << text;
}

class FileWatchTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (fs::temp_directory_path() / "ccmulti-watch-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
    }
    void TearDown() override {
        watch_.reset();
        fs::remove_all(dir_);
    }

    void start(std::vector<fs::path> roots, WatchIgnore ignore = WatchIgnore::defaults()) {
        WatchOptions options;
        options.roots = std::move(roots);
        options.ignore = std::move(ignore);
        watch_ = std::make_unique<FileWatch>(
            loop_, std::move(options),
            [this](const ChangeBatch& batch) {
                batches_.push_back(batch);
                times_.push_back(Clock::now());
                if (stop_at_ && batches_.size() >= stop_at_) loop_.stop();
            },
            [this](const std::string& error) { errors_.push_back(error); });
    }

    // Runs the loop until a batch arrives (when `until_batch`) or `limit` has passed.
    void run(Clock::duration limit, bool until_batch) { run_until(limit, until_batch ? batches_.size() + 1 : 0); }
    // Runs the loop until there are `batches` batches (0: no such stop) or `limit` has passed.
    void run_until(Clock::duration limit, std::size_t batches) {
        stop_at_ = batches;
        auto guard = loop_.after(limit, [this] { loop_.stop(); });
        loop_.run();
        loop_.cancel(guard);
    }
    // The first batch within 5 s, then `settle` more to see that no second one follows.
    void run_for_one_batch(Clock::duration settle = 800ms) {
        run(5s, true);
        ASSERT_EQ(batches_.size(), 1u) << "no batch within 5 s";
        run(settle, false);
    }
    // Calls `step(i)` for i in [0, count) every `interval` from now, from the loop.
    void every(Clock::duration interval, int count, std::function<void(int)> step) {
        auto shared = std::make_shared<std::function<void(int)>>(std::move(step));
        for (int i = 0; i < count; ++i) loop_.after(interval * i, [shared, i] { (*shared)(i); });
    }
    std::vector<fs::path> paths(std::size_t batch = 0) const { return batches_.at(batch).paths; }

    fs::path dir_;
    EventLoop loop_;
    std::unique_ptr<FileWatch> watch_;
    std::vector<ChangeBatch> batches_;
    std::vector<Clock::time_point> times_;
    std::vector<std::string> errors_;
    std::size_t stop_at_ = 0;
};

}  // namespace

TEST_F(FileWatchTest, OneWriteIsOneBatchNamingTheFile) {
    fs::create_directories(dir_ / "proj");
    write_file(dir_ / "proj/tasks.py");
    start({dir_});
    loop_.after(10ms, [&] { write_file(dir_ / "proj/tasks.py", "x = 2\n"); });
    run_for_one_batch();
    EXPECT_EQ(batches_.size(), 1u);
    EXPECT_EQ(paths(), std::vector<fs::path>{dir_ / "proj/tasks.py"});
    EXPECT_EQ(batches_[0].roots, std::vector<std::size_t>{0});
    EXPECT_FALSE(batches_[0].overflowed);
    EXPECT_EQ(batches_[0].summary(), (dir_ / "proj/tasks.py").string());
    EXPECT_TRUE(errors_.empty());
}

TEST_F(FileWatchTest, TwentyWritesIn100msAreOneBatch) {
    start({dir_});
    auto began = Clock::now();
    every(5ms, 20, [&](int i) { write_file(dir_ / ("m" + std::to_string(i % 4) + ".py"), std::to_string(i)); });
    run_for_one_batch();
    EXPECT_EQ(batches_.size(), 1u);
    EXPECT_EQ(paths(), (std::vector<fs::path>{dir_ / "m0.py", dir_ / "m1.py", dir_ / "m2.py", dir_ / "m3.py"}));
    EXPECT_GE(times_[0] - began, 95ms + 300ms);  // on the trailing edge of the burst
    EXPECT_EQ(batches_[0].summary(), (dir_ / "m0.py").string() + " (+3 more)");
}

TEST_F(FileWatchTest, ACheckoutOf500FilesIsOneBatch) {
    for (int d = 0; d < 10; ++d) fs::create_directories(dir_ / ("pkg" + std::to_string(d)));
    start({dir_});
    every(2ms, 50, [&](int step) {  // 10 files a step, as git writes them
        for (int f = 0; f < 10; ++f)
            write_file(dir_ / ("pkg" + std::to_string(step % 10)) / ("m" + std::to_string(step * 10 + f) + ".py"));
    });
    run_for_one_batch();
    EXPECT_EQ(batches_.size(), 1u);
    const auto changed = paths();
    EXPECT_EQ(changed.size(), 500u);
    EXPECT_TRUE(std::is_sorted(changed.begin(), changed.end()));
}

TEST_F(FileWatchTest, AVimSaveIsOneBatchNamingOnlyTheFile) {
    write_file(dir_ / "tasks.py", "old\n");
    start({dir_});
    // vim's sequence with 'backupcopy=no' (the default on Linux): swap file, write probe, backup by rename, the
    // new file, backup removed.
    std::vector<std::function<void()>> steps = {
        [&] { write_file(dir_ / ".tasks.py.swp", "swap"); },
        [&] { write_file(dir_ / "4913"); },
        [&] { fs::remove(dir_ / "4913"); },
        [&] { fs::rename(dir_ / "tasks.py", dir_ / "tasks.py~"); },
        [&] { write_file(dir_ / "tasks.py", "new\n"); },
        [&] { fs::remove(dir_ / "tasks.py~"); },
        [&] { write_file(dir_ / ".tasks.py.swp", "swap 2"); },
    };
    every(3ms, static_cast<int>(steps.size()), [&](int i) { steps[static_cast<std::size_t>(i)](); });
    run_for_one_batch();
    EXPECT_EQ(batches_.size(), 1u);
    EXPECT_EQ(paths(), std::vector<fs::path>{dir_ / "tasks.py"});
}

TEST_F(FileWatchTest, IgnoredFilesAndDirectoriesGiveNoBatch) {
    fs::create_directories(dir_ / ".git/objects/ab");
    fs::create_directories(dir_ / "build/CMakeFiles");
    fs::create_directories(dir_ / "logs");
    auto ignore = WatchIgnore::defaults();
    ignore.add_path(dir_ / "logs");  // ccmulti's own log dir inside the project
    ignore.add_glob("*.log");
    start({dir_}, std::move(ignore));
    EXPECT_EQ(watch_->watched_directories(), 1u);  // neither .git, build nor logs is watched
    std::vector<std::function<void()>> steps = {
        [&] { write_file(dir_ / "x.pyc"); },
        [&] { fs::create_directory(dir_ / "__pycache__"); },
        [&] { write_file(dir_ / "__pycache__/tasks.cpython-311.pyc"); },
        [&] { write_file(dir_ / ".git/index"); },
        [&] { write_file(dir_ / ".git/objects/ab/cd"); },
        [&] { write_file(dir_ / "build/CMakeFiles/x.o"); },
        [&] { write_file(dir_ / "logs/w1.log"); },
        [&] { write_file(dir_ / "master.log"); },
        [&] { write_file(dir_ / "tasks.py~"); },
        [&] { write_file(dir_ / "upload.tmp"); },
        [&] { fs::create_symlink("x", dir_ / ".#tasks.py"); },  // emacs's lock
    };
    every(5ms, static_cast<int>(steps.size()), [&](int i) { steps[static_cast<std::size_t>(i)](); });
    run(steps.size() * 5ms + 800ms, false);
    EXPECT_TRUE(batches_.empty()) << batches_[0].summary();
    EXPECT_EQ(watch_->watched_directories(), 1u);
}

TEST_F(FileWatchTest, ANewDirectoryIsFollowedAndWhatItHoldsCounts) {
    start({dir_});
    loop_.after(5ms, [&] { fs::create_directory(dir_ / "sub"); });
    loop_.after(50ms, [&] { write_file(dir_ / "sub/x.py"); });  // after the watch on sub was added
    run_for_one_batch(0ms);
    EXPECT_EQ(paths(), std::vector<fs::path>{dir_ / "sub/x.py"});
    EXPECT_EQ(watch_->watched_directories(), 2u);

    // A tree made at once: its files exist before their directory is watched, and the scan finds them.
    loop_.after(5ms, [&] {
        fs::create_directories(dir_ / "a/b/c");
        write_file(dir_ / "a/b/c/y.py");
        write_file(dir_ / "a/z.py");
    });
    run(5s, true);
    ASSERT_EQ(batches_.size(), 2u);
    EXPECT_EQ(paths(1), (std::vector<fs::path>{dir_ / "a/b/c/y.py", dir_ / "a/z.py"}));
    EXPECT_EQ(watch_->watched_directories(), 5u);

    // Later writes deep in the new tree are seen by its own watches.
    loop_.after(5ms, [&] { write_file(dir_ / "a/b/c/y.py", "2"); });
    run(5s, true);
    ASSERT_EQ(batches_.size(), 3u);
    EXPECT_EQ(paths(2), std::vector<fs::path>{dir_ / "a/b/c/y.py"});
}

TEST_F(FileWatchTest, RemovedAndRenamedDirectoriesDropTheirWatches) {
    fs::create_directories(dir_ / "old/deep");
    write_file(dir_ / "old/deep/m.py");
    fs::create_directories(dir_ / "gone/deep");
    write_file(dir_ / "gone/deep/n.py");
    start({dir_});
    EXPECT_EQ(watch_->watched_directories(), 5u);
    loop_.after(5ms, [&] {
        fs::rename(dir_ / "old", dir_ / "new");
        fs::remove_all(dir_ / "gone");
    });
    run(5s, true);
    ASSERT_EQ(batches_.size(), 1u);
    const auto& changed = paths();
    EXPECT_NE(std::find(changed.begin(), changed.end(), dir_ / "old"), changed.end());
    EXPECT_NE(std::find(changed.begin(), changed.end(), dir_ / "new/deep/m.py"), changed.end());
    EXPECT_NE(std::find(changed.begin(), changed.end(), dir_ / "gone"), changed.end());
    EXPECT_EQ(watch_->watched_directories(), 3u);  // root, new, new/deep

    loop_.after(5ms, [&] { write_file(dir_ / "new/deep/m.py", "2"); });
    run(5s, true);
    ASSERT_EQ(batches_.size(), 2u);
    EXPECT_EQ(paths(1), std::vector<fs::path>{dir_ / "new/deep/m.py"});  // under its new name
}

TEST_F(FileWatchTest, AWatchedFileIsWatchedThroughItsDirectory) {
    write_file(dir_ / "settings.py");
    write_file(dir_ / "other.py");
    start({dir_ / "settings.py"});
    loop_.after(5ms, [&] { write_file(dir_ / "other.py", "2"); });
    run(600ms, false);
    EXPECT_TRUE(batches_.empty());
    // Replaced by rename, as editors and deploy tools do.
    loop_.after(5ms, [&] {
        write_file(dir_ / "settings.py.new", "2");
        fs::rename(dir_ / "settings.py.new", dir_ / "settings.py");
    });
    run_for_one_batch();
    EXPECT_EQ(batches_.size(), 1u);
    EXPECT_EQ(paths(), std::vector<fs::path>{dir_ / "settings.py"});
}

TEST_F(FileWatchTest, APathThatDoesNotExistIsAnErrorAtStart) {
    try {
        start({dir_, dir_ / "nope"});
        FAIL() << "no error";
    } catch (const UsageError& e) {
        EXPECT_EQ(std::string(e.what()), "watch path " + (dir_ / "nope").string() + " does not exist");
    }
}

TEST_F(FileWatchTest, ContinuousWritesReloadAtTheCeiling) {
    start({dir_});
    auto began = Clock::now();
    every(50ms, 60, [&](int i) { write_file(dir_ / "gen.py", std::to_string(i)); });  // 3 s without pause
    run_until(5s, 2);
    run(500ms, false);
    ASSERT_EQ(batches_.size(), 2u);        // at the ceiling, then on the trailing edge once the writes stop
    EXPECT_GE(times_[0] - began, 1900ms);  // not before the ceiling: the writes never paused 300 ms
    EXPECT_LE(times_[0] - began, 2200ms);
    EXPECT_EQ(paths(), std::vector<fs::path>{dir_ / "gen.py"});
}

TEST_F(FileWatchTest, AQueueOverflowIsOneBatchAndTheWatchGoesOn) {
    fs::create_directories(dir_ / "sub");
    start({dir_});
    // More events than the kernel queues (fs.inotify.max_queued_events, 16384 by default) before the loop reads:
    // two files closed after writing in turn, so no two events in a row are alike (the kernel merges those).
    const int limit = std::stoi(read_text_file("/proc/sys/fs/inotify/max_queued_events", 64));
    loop_.after(5ms, [&] {
        const std::string files[] = {(dir_ / "sub/a.py").string(), (dir_ / "sub/b.py").string()};
        for (int i = 0; i <= limit; ++i) {
            UniqueFd fd(::open(files[i % 2].c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
            ASSERT_TRUE(fd);
        }
    });
    run(10s, true);
    ASSERT_EQ(batches_.size(), 1u);
    EXPECT_TRUE(batches_[0].overflowed);
    // The root (anything below may have changed), and what was seen before the queue overflowed.
    EXPECT_EQ(paths(), (std::vector<fs::path>{dir_, dir_ / "sub/a.py", dir_ / "sub/b.py"}));
    EXPECT_EQ(batches_[0].summary(), dir_.string() + " (+2 more) (events were lost: rescanned)");
    EXPECT_EQ(watch_->watched_directories(), 2u);  // set up again

    loop_.after(5ms, [&] { write_file(dir_ / "sub/c.py"); });
    run(5s, true);
    ASSERT_EQ(batches_.size(), 2u);
    EXPECT_FALSE(batches_[1].overflowed);
    EXPECT_EQ(paths(1), std::vector<fs::path>{dir_ / "sub/c.py"});
}

TEST_F(FileWatchTest, TheCallbackMayDestroyTheWatch) {
    WatchOptions options;
    options.roots = {dir_};
    watch_ = std::make_unique<FileWatch>(loop_, std::move(options), [&](const ChangeBatch& batch) {
        batches_.push_back(batch);
        watch_.reset();
        loop_.stop();
    });
    loop_.after(5ms, [&] { write_file(dir_ / "x.py"); });
    run(5s, false);
    EXPECT_EQ(batches_.size(), 1u);
    EXPECT_EQ(watch_, nullptr);
}

TEST(FileWatchErrors, TheWatchLimitMessageSaysHowToRaiseIt) {
    auto message = inotify_error_message("/srv/app/node_modules", ENOSPC);
    EXPECT_NE(message.find("cannot watch /srv/app/node_modules: "), std::string::npos) << message;
    EXPECT_NE(message.find("fs.inotify.max_user_watches = "), std::string::npos) << message;
    EXPECT_NE(message.find("sysctl -w fs.inotify.max_user_watches="), std::string::npos) << message;
    EXPECT_NE(inotify_error_message("/x", EMFILE).find("fs.inotify.max_user_instances"), std::string::npos);
    EXPECT_EQ(inotify_error_message("/x", EACCES), "cannot watch /x: Permission denied");
}

}  // namespace ccmulti
