#include "platform/pidfile.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cerrno>
#include <sstream>

#include "platform/proc.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace ccmulti {

std::optional<pid_t> parse_pidfile(const std::string& text) {
    std::istringstream in(text);
    std::string pid_text, start_text;
    if (!(in >> pid_text) || !is_digits(pid_text) || pid_text.size() > 9) return std::nullopt;
    const pid_t pid = std::stoi(pid_text);
    if (pid <= 0) return std::nullopt;
    if (in >> start_text && (!is_digits(start_text) || start_text.size() > 19)) return std::nullopt;
    return pid;
}

namespace {

UniqueFd open_pidfile(const std::filesystem::path& path, int flags) {
    for (;;) {
        // O_NONBLOCK: a FIFO planted at the path must not hang us in open (check_takeover refuses it after).
        int fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
        if (fd >= 0) return UniqueFd(fd);
        if (errno == EINTR) continue;
        if (errno == ENOENT && !(flags & O_CREAT)) return UniqueFd();
        if (errno == EEXIST && (flags & O_EXCL)) return UniqueFd();
        if (errno == ELOOP)
            throw Error("refusing pid file " + path.string() +
                        ": it is a symlink (remove it if you did not put it there)");
        throw SystemError("cannot open pid file " + path.string(), errno);
    }
}

bool try_lock(int fd, int operation) {
    for (;;) {
        if (::flock(fd, operation | LOCK_NB) == 0) return true;
        if (errno == EINTR) continue;
        if (errno == EWOULDBLOCK) return false;
        throw SystemError("flock", errno);
    }
}

bool same_inode(int fd, const std::filesystem::path& path) {
    struct stat by_fd {
    }, by_path{};
    if (::fstat(fd, &by_fd) != 0 || ::lstat(path.c_str(), &by_path) != 0) return false;
    return by_fd.st_dev == by_path.st_dev && by_fd.st_ino == by_path.st_ino;
}

std::string read_all(int fd) {
    std::string text;
    char buffer[128];
    off_t offset = 0;
    for (;;) {
        ssize_t n = ::pread(fd, buffer, sizeof buffer, offset);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || text.size() > 4096) break;
        text.append(buffer, static_cast<std::size_t>(n));
        offset += n;
    }
    return text;
}

}  // namespace

namespace {

// A file ccmulti may write into and later unlink: a regular file that is empty or holds a pid file's text. Anything
// else (`--pidfile=/etc/passwd`, a typo naming a real file) is refused before a byte of it changes.
void check_takeover(int fd, const std::filesystem::path& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw SystemError("stat " + path.string(), errno);
    if (!S_ISREG(st.st_mode))
        throw Error("refusing pid file " + path.string() + ": not a regular file; choose another --pidfile",
                    Exit::usage);
    if (st.st_size == 0) return;
    const std::string text = read_all(fd);
    if (st.st_size > 64 || !parse_pidfile(text) || text.find_first_not_of("0123456789 \n") != std::string::npos)
        throw Error("refusing pid file " + path.string() + ": it exists and is not a pid file (" +
                        std::to_string(st.st_size) +
                        " bytes); nothing was written to it: choose another --pidfile, "
                        "or remove the file if it is a leftover",
                    Exit::usage);
}

}  // namespace

std::optional<PidFile> PidFile::try_acquire(const std::filesystem::path& path) {
    // Another process may unlink a stale file between our open() and flock(): then we would hold a lock on
    // an inode nobody can find. Retry until the locked inode is the one at `path`.
    for (int attempt = 0; attempt < 100; ++attempt) {
        // A new file is created exclusively; an existing one is taken over only when it is a pid file.
        UniqueFd fd = open_pidfile(path, O_RDWR | O_CREAT | O_EXCL);
        if (!fd) fd = open_pidfile(path, O_RDWR);
        if (!fd) continue;  // removed between the two opens
        if (!try_lock(fd.get(), LOCK_EX)) return std::nullopt;
        if (!same_inode(fd.get(), path)) continue;
        check_takeover(fd.get(), path);
        return PidFile(path, std::move(fd));
    }
    throw Error("pid file " + path.string() + " keeps being replaced while ccmulti tries to lock it");
}

PidFile::Replacement::~Replacement() {
    if (fd_) ::unlink(path_.c_str());
}

PidFile::Replacement PidFile::prepare_write() {
    const std::filesystem::path next = path_.parent_path() / ("." + path_.filename().string() + ".new");
    UniqueFd fd;
    for (int attempt = 0; attempt < 2 && !fd; ++attempt) {
        fd = open_pidfile(next, O_RDWR | O_CREAT | O_EXCL);
        if (!fd) ::unlink(next.c_str());  // left by a write that died half-way (our own directory)
    }
    if (!fd) throw Error("cannot create " + next.string() + ": it keeps reappearing");
    if (!try_lock(fd.get(), LOCK_EX)) throw Error(next.string() + " is locked by another process");
    return Replacement(next, std::move(fd));
}

void PidFile::commit(Replacement next, pid_t pid) {
    const std::string text = std::to_string(pid) + "\n";
    if (!write_all(next.fd(), text.data(), text.size()))
        throw SystemError("write " + next.path_.string(), errno ? errno : EIO);
    if (::rename(next.path_.c_str(), path_.c_str()) != 0) throw SystemError("replace " + path_.string(), errno);
    fd_ = std::move(next.fd_);  // the old file's lock goes with its fd
}

void PidFile::remove() {
    if (!fd_) return;
    if (same_inode(fd_.get(), path_)) ::unlink(path_.c_str());
    fd_.reset();
}

bool same_process(pid_t pid, std::uint64_t start_time, const std::string& title_prefix, std::string& why) {
    auto stat = read_proc_stat(pid);
    if (!stat) {
        why = "pid " + std::to_string(pid) + " is not running";
        return false;
    }
    if (stat->zombie()) {
        why = "pid " + std::to_string(pid) + " has exited (zombie)";
        return false;
    }
    auto argv = read_cmdline(pid);
    std::string title = argv.empty() ? stat->comm : argv.front();
    if (start_time != 0 && stat->start_time != start_time) {
        why = "pid " + std::to_string(pid) + " now belongs to another process (" + title + ", started later)";
        return false;
    }
    // "ccmulti: node w1@host" must not match "ccmulti: node w1@host2": the prefix ends at a word boundary.
    if (title != title_prefix && !title.starts_with(title_prefix + " ")) {
        why = "pid " + std::to_string(pid) + " is another process (" + title + ")";
        return false;
    }
    return true;
}

PidCheck check_pidfile(const std::filesystem::path& path, const std::string& title_prefix) {
    PidCheck check;
    UniqueFd fd = open_pidfile(path, O_RDONLY);
    if (!fd) {
        check.reason = "no pid file " + path.string();
        return check;
    }
    const auto pid = parse_pidfile(read_all(fd.get()));
    if (pid) check.pid = *pid;
    check.state = PidCheck::State::stale;
    // A shared lock succeeds only when nobody holds the exclusive one; it is dropped at once (close).
    if (try_lock(fd.get(), LOCK_SH)) {
        check.reason = "stale pid file " + path.string() + " (not locked by any process)";
        return check;
    }
    if (!pid) {
        check.reason = "pid file " + path.string() + " is locked but names no pid yet";
        return check;
    }
    std::string why;
    const auto stat = read_proc_stat(*pid);
    if (!stat || !same_process(*pid, stat->start_time, title_prefix, why)) {
        check.reason =
            "stale pid file " + path.string() + ": " + (stat ? why : "pid " + std::to_string(*pid) + " is not running");
        return check;
    }
    check.start_time = stat->start_time;
    check.state = PidCheck::State::running;
    return check;
}

}  // namespace ccmulti
