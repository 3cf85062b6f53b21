// Watching code for changes (hot reload): recursive inotify in the process's EventLoop, so a save wakes the
// master and nothing polls. What other tools get wrong and this one does not:
//
//   - one burst, one batch: events are debounced on the trailing edge with a ceiling (util/change_debounce), so
//     an editor's write-and-rename, a `git checkout` or a linker writing a `.so` reloads once, not once per event
//   - directories created (or moved in) later are watched too, and what they already hold counts as changed:
//     files may appear in a new directory before its watch is added
//   - ignored directories (.git, build trees) are never watched; ignored names never count (platform/watch_ignore)
//   - a watch limit reached (ENOSPC) is an error naming fs.inotify.max_user_watches and how to raise it, never a
//     silently partial watch; a kernel queue overflow (IN_Q_OVERFLOW) is "something changed": one batch, and all
//     watches are set up again from scratch
//
// What counts as a change: a file closed after writing (IN_CLOSE_WRITE: the writer is done, unlike IN_MODIFY,
// which would reload half-written files), renamed in or out, deleted, or a non-regular entry (a symlink) created.
// Creating a regular file does not count by itself: its close-after-write follows. A chmod (IN_ATTRIB) is not a
// code change. A watched file (not a directory) is watched through its directory, filtered to its name, since
// editors replace files by rename. Symlinked directories below a root are not followed (no loops, no escaping
// the tree); a root itself may be a symlink.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "platform/event_loop.hpp"
#include "platform/fd.hpp"
#include "platform/watch_ignore.hpp"
#include "util/change_debounce.hpp"

namespace ccmulti {

struct WatchOptions {
    std::vector<std::filesystem::path> roots;  // directories (recursive) or files; each must exist
    WatchIgnore ignore = WatchIgnore::defaults();
    DebouncePolicy debounce;  // 300 ms quiet, 2 s ceiling
};

struct ChangeBatch {
    // What changed, each as its root was given joined with the path below it, lexically normal ("proj/tasks.py"
    // for --watch proj or --watch .; a watched file is its root as given); sorted, without duplicates.
    std::vector<std::filesystem::path> paths;
    std::vector<std::size_t> roots;  // indexes into WatchOptions::roots of the roots with a change, sorted
    bool overflowed = false;         // the kernel dropped events: anything below `roots` (all) may have changed

    // "proj/tasks.py", "proj/tasks.py (+3 more)"; after an overflow "proj (+2 more) (events were lost: rescanned)".
    std::string summary() const;
};

class FileWatch {
public:
    using Callback = std::function<void(const ChangeBatch&)>;
    // Problems after start (a new directory that cannot be watched: the limit, permissions), one line each,
    // for the owner's log. The watch goes on with what it has. Unlike `on_change`, it must not destroy the watch.
    using ErrorCallback = std::function<void(const std::string&)>;

    // Watches every root now. Throws UsageError for a root that does not exist, and Error/SystemError when a
    // watch cannot be set up (the ENOSPC message says how to raise the limit). `on_change` may destroy the watch.
    FileWatch(EventLoop& loop, WatchOptions options, Callback on_change, ErrorCallback on_error = {});
    ~FileWatch();
    FileWatch(const FileWatch&) = delete;
    FileWatch& operator=(const FileWatch&) = delete;

    std::size_t watched_directories() const { return watches_.size(); }
    const WatchOptions& options() const { return options_; }

private:
    struct Root {
        std::filesystem::path given, dir, resolved_dir;  // dir: what inotify watches; resolved_dir: for ignores
        std::string file;                                // a watched file's name in `dir`; empty for a directory
    };
    struct Subscription {  // one root's interest in a watched directory: several roots may share an inode
        std::size_t root;
        std::filesystem::path relative;  // below the root's dir; empty for the dir itself
    };

    void open_inotify();
    void watch_roots(bool count_contents);
    void add_tree(std::size_t root, const std::filesystem::path& relative, bool count_contents);
    void drop_tree(std::size_t root, const std::filesystem::path& relative);
    void on_readable();
    void on_event(int wd, std::uint32_t mask, const std::string& name);
    void changed(std::size_t root, const std::filesystem::path& relative);
    void arm_timer();
    void on_timer();

    EventLoop& loop_;
    WatchOptions options_;
    Callback on_change_;
    ErrorCallback on_error_;
    std::vector<Root> roots_;
    UniqueFd inotify_;
    std::unordered_map<int, std::vector<Subscription>> watches_;
    ChangeDebounce debounce_;
    std::set<std::filesystem::path> pending_paths_;
    std::set<std::size_t> pending_roots_;
    bool overflowed_ = false;
    EventLoop::TimerId timer_ = 0;
    EventLoop::Clock::time_point timer_due_{};
};

// The message for a failed inotify_add_watch/inotify_init1 on `path`: for ENOSPC and EMFILE, which limit
// (fs.inotify.max_user_watches = N, fs.inotify.max_user_instances) and how to raise it.
std::string inotify_error_message(const std::filesystem::path& path, int errnum);

}  // namespace ccmulti
