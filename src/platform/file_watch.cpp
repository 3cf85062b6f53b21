#include "platform/file_watch.hpp"

#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <exception>
#include <system_error>

#include "platform/read_file.hpp"
#include "util/error.hpp"

namespace ccmulti {

namespace {

// The same mask for every watch: roots that share a directory (--watch proj --watch proj/app.py) share its
// watch descriptor, and a second inotify_add_watch replaces the mask of the first.
constexpr std::uint32_t kWatchMask =
    IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK;

// "proj/" and "proj/./x" print as "proj" and "proj/x".
std::filesystem::path display_path(const std::filesystem::path& path) {
    auto normal = path.lexically_normal();
    if (!normal.has_filename() && normal.has_relative_path()) normal = normal.parent_path();
    return normal;
}

bool is_within(const std::filesystem::path& path, const std::filesystem::path& base) {
    auto [b, p] = std::mismatch(base.begin(), base.end(), path.begin(), path.end());
    return b == base.end();
}

std::string inotify_limit(const char* name) {
    try {
        auto text = read_text_file(std::string("/proc/sys/fs/inotify/") + name, 64);
        while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
        return text;
    } catch (const std::exception&) {
        return "?";
    }
}

}  // namespace

std::string inotify_error_message(const std::filesystem::path& path, int errnum) {
    const std::string what = "cannot watch " + path.string() + ": ";
    if (errnum == ENOSPC) {
        auto limit = inotify_limit("max_user_watches");
        return what + "the inotify watch limit is reached (fs.inotify.max_user_watches = " + limit +
               ", one watch per directory, shared by all of this user's processes); raise it with "
               "`sysctl -w fs.inotify.max_user_watches=524288` (and a line in /etc/sysctl.d/ to keep it), "
               "or ignore large directories with --watch-ignore";
    }
    if (errnum == EMFILE) {
        auto limit = inotify_limit("max_user_instances");
        return what + "too many inotify instances (fs.inotify.max_user_instances = " + limit +
               "); raise it with `sysctl -w fs.inotify.max_user_instances=1024` (and a line in /etc/sysctl.d/ "
               "to keep it)";
    }
    return what + std::strerror(errnum);
}

std::string ChangeBatch::summary() const {
    if (paths.empty()) return {};
    std::string text = paths.front().string();
    if (paths.size() > 1) text += " (+" + std::to_string(paths.size() - 1) + " more)";
    if (overflowed) text += " (events were lost: rescanned)";
    return text;
}

FileWatch::FileWatch(EventLoop& loop, WatchOptions options, Callback on_change, ErrorCallback on_error)
    : loop_(loop),
      options_(std::move(options)),
      on_change_(std::move(on_change)),
      on_error_(std::move(on_error)),
      debounce_(options_.debounce) {
    for (const auto& given : options_.roots) {
        std::error_code error;
        auto status = std::filesystem::status(given, error);
        if (!std::filesystem::exists(status))
            throw UsageError("watch path " + given.string() + " does not exist" +
                             (error && error.value() != ENOENT ? " (" + error.message() + ")" : ""));
        Root root{given, {}, {}, {}};
        auto absolute = display_path(std::filesystem::absolute(given));
        if (std::filesystem::is_directory(status)) {
            root.dir = absolute;
        } else {
            root.dir = absolute.parent_path();
            root.file = absolute.filename().string();
        }
        root.resolved_dir = std::filesystem::canonical(root.dir, error);
        if (error) root.resolved_dir = root.dir;
        roots_.push_back(std::move(root));
    }
    open_inotify();
    try {
        watch_roots(false);
    } catch (...) {
        loop_.unwatch(inotify_.get());  // no destructor runs for a constructor that throws
        throw;
    }
}

FileWatch::~FileWatch() {
    if (timer_) loop_.cancel(timer_);
    if (inotify_) loop_.unwatch(inotify_.get());
}

void FileWatch::open_inotify() {
    UniqueFd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!fd) throw Error(inotify_error_message(roots_.empty() ? "" : roots_.front().given, errno));
    if (inotify_) loop_.unwatch(inotify_.get());
    watches_.clear();
    inotify_ = std::move(fd);
    loop_.watch(inotify_.get(), EPOLLIN, [this](std::uint32_t) { on_readable(); });
}

void FileWatch::watch_roots(bool count_contents) {
    for (std::size_t i = 0; i < roots_.size(); ++i) add_tree(i, {}, count_contents);
}

void FileWatch::add_tree(std::size_t root, const std::filesystem::path& relative, bool count_contents) {
    const Root& r = roots_[root];
    const auto path = relative.empty() ? r.dir : r.dir / relative;
    const int wd = ::inotify_add_watch(inotify_.get(), path.c_str(), kWatchMask);
    if (wd < 0) {
        const int errnum = errno;
        // Gone (or replaced by a file) since it was seen: its removal is an event of its own.
        if (!relative.empty() && (errnum == ENOENT || errnum == ENOTDIR)) return;
        if (relative.empty() || errnum == ENOSPC) throw Error(inotify_error_message(path, errnum));
        if (on_error_) on_error_(inotify_error_message(path, errnum) + " (its changes are not seen)");
        return;
    }
    auto& subscriptions = watches_[wd];
    // Once per root and directory: a bind mount of a directory inside itself is the same inode again.
    for (const auto& s : subscriptions)
        if (s.root == root) return;
    subscriptions.push_back({root, relative});
    if (!r.file.empty()) return;  // a watched file's directory: not recursive

    std::error_code error;
    for (std::filesystem::directory_iterator it(path, error), end; !error && it != end; it.increment(error)) {
        const auto child = relative / it->path().filename();
        std::error_code status_error;
        const bool is_dir = it->is_directory(status_error) && !it->is_symlink(status_error);
        if (options_.ignore.ignored(child, r.resolved_dir / child, is_dir)) continue;
        if (is_dir)
            add_tree(root, child, count_contents);
        else if (count_contents)
            changed(root, child);
    }
}

void FileWatch::drop_tree(std::size_t root, const std::filesystem::path& relative) {
    for (auto it = watches_.begin(); it != watches_.end();) {
        auto& subscriptions = it->second;
        std::erase_if(subscriptions,
                      [&](const Subscription& s) { return s.root == root && is_within(s.relative, relative); });
        if (subscriptions.empty()) {
            ::inotify_rm_watch(inotify_.get(), it->first);  // its IN_IGNORED then finds no entry
            it = watches_.erase(it);
        } else {
            ++it;
        }
    }
}

void FileWatch::on_readable() {
    alignas(inotify_event) std::array<char, 64 * 1024> buffer;
    bool overflow = false;
    for (;;) {
        const ssize_t n = ::read(inotify_.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && on_error_) on_error_(std::string("inotify read: ") + std::strerror(errno));
        if (n <= 0) break;
        for (ssize_t offset = 0; offset < n;) {
            const auto* event = reinterpret_cast<const inotify_event*>(buffer.data() + offset);
            offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
            if (event->mask & IN_Q_OVERFLOW) {
                overflow = true;
                continue;
            }
            try {
                on_event(event->wd, event->mask, event->len ? std::string(event->name) : std::string());
            } catch (const std::exception& e) {
                if (on_error_) on_error_(e.what());
            }
        }
    }
    if (overflow) {
        // Events were dropped: new directories may be unwatched and removed ones still mapped. Start over with a
        // fresh inotify instance, and report every root as changed.
        overflowed_ = true;
        for (std::size_t i = 0; i < roots_.size(); ++i) changed(i, {});
        try {
            open_inotify();
            watch_roots(false);
        } catch (const std::exception& e) {
            if (on_error_) on_error_(e.what());
        }
    }
    arm_timer();
}

void FileWatch::on_event(int wd, std::uint32_t mask, const std::string& name) {
    if (mask & IN_IGNORED) {
        watches_.erase(wd);
        return;
    }
    auto found = watches_.find(wd);
    if (found == watches_.end()) return;
    const auto subscriptions = found->second;  // a copy: add_tree and drop_tree change the map
    if (mask & IN_DELETE_SELF) {
        for (const auto& s : subscriptions)
            if (s.relative.empty() && roots_[s.root].file.empty()) {
                changed(s.root, {});
                if (on_error_) on_error_("watched directory " + roots_[s.root].given.string() + " was removed");
            }
        return;  // a subdirectory's removal was reported by its parent
    }
    if (name.empty()) return;
    for (const auto& s : subscriptions) {
        const Root& r = roots_[s.root];
        const bool is_dir = mask & IN_ISDIR;
        if (!r.file.empty()) {
            if (name == r.file && !is_dir && (mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)))
                changed(s.root, {});
            continue;
        }
        const auto child = s.relative / name;
        if (options_.ignore.ignored(child, r.resolved_dir / child, is_dir)) continue;
        if (is_dir) {
            if (mask & (IN_CREATE | IN_MOVED_TO)) add_tree(s.root, child, true);
            if (mask & (IN_MOVED_FROM | IN_DELETE)) drop_tree(s.root, child);
            if (mask & (IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)) changed(s.root, child);
        } else if (mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)) {
            changed(s.root, child);
        } else if (mask & IN_CREATE) {
            // A regular file counts when its writer closes it; a symlink or a hard link gets no close.
            struct stat st {};
            if (::lstat((r.dir / child).c_str(), &st) == 0 && !S_ISREG(st.st_mode)) changed(s.root, child);
        }
    }
}

void FileWatch::changed(std::size_t root, const std::filesystem::path& relative) {
    const Root& r = roots_[root];
    pending_paths_.insert(display_path(relative.empty() ? r.given : r.given / relative));
    pending_roots_.insert(root);
    debounce_.note(EventLoop::Clock::now());
}

void FileWatch::arm_timer() {
    const auto due = debounce_.due();
    if (!due || (timer_ && timer_due_ == *due)) return;
    if (timer_) loop_.cancel(timer_);
    timer_due_ = *due;
    timer_ = loop_.at(*due, [this] {
        timer_ = 0;
        on_timer();
    });
}

void FileWatch::on_timer() {
    if (!debounce_.take(EventLoop::Clock::now())) {
        arm_timer();
        return;
    }
    ChangeBatch batch;
    batch.paths.assign(pending_paths_.begin(), pending_paths_.end());
    batch.roots.assign(pending_roots_.begin(), pending_roots_.end());
    batch.overflowed = std::exchange(overflowed_, false);
    pending_paths_.clear();
    pending_roots_.clear();
    auto callback = on_change_;  // it may destroy this watch: touch no member after it
    callback(batch);
}

}  // namespace ccmulti
