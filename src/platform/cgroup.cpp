#include "platform/cgroup.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <sstream>

#include "platform/proc.hpp"
#include "util/error.hpp"

namespace ccmulti::cgroup {

namespace fs = std::filesystem;

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_octal(const std::string& text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 3 < text.size()) {
            int value = 0;
            auto [end, ec] = std::from_chars(text.data() + i + 1, text.data() + i + 4, value, 8);
            if (ec == std::errc{} && end == text.data() + i + 4) {
                out += static_cast<char>(value);
                i += 3;
                continue;
            }
        }
        out += text[i];
    }
    return out;
}

// Writes `text` to a cgroup interface file. False with errno set.
bool write_file(const fs::path& path, const std::string& text) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return false;
    ssize_t n;
    do n = ::write(fd.get(), text.data(), text.size());
    while (n < 0 && errno == EINTR);
    return n == static_cast<ssize_t>(text.size());
}

bool has_word(const std::string& text, const std::string& word) {
    std::istringstream in(text);
    std::string each;
    while (in >> each)
        if (each == word) return true;
    return false;
}

bool delegated(const fs::path& dir) {
    for (const char* name : {"trusted.delegate", "user.delegate"}) {
        char value[8] = {};
        ssize_t n = ::getxattr(dir.c_str(), name, value, sizeof value - 1);
        if (n > 0 && value[0] == '1') return true;
    }
    return false;
}

}  // namespace

std::optional<fs::path> parse_mountinfo(const std::string& text) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        // ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
        auto dash = line.find(" - ");
        if (dash == std::string::npos) continue;
        std::istringstream after(line.substr(dash + 3));
        std::string fstype;
        after >> fstype;
        if (fstype != "cgroup2") continue;
        std::istringstream fields(line.substr(0, dash));
        std::string field, mount;
        for (int i = 0; i < 5 && fields >> field; ++i)
            if (i == 4) mount = field;
        if (!mount.empty()) return fs::path(unescape_octal(mount));
    }
    return std::nullopt;
}

std::optional<fs::path> mount_point() {
    return parse_mountinfo(read_proc_file("/proc/self/mountinfo"));
}

std::optional<std::string> parse_proc_cgroup(const std::string& text) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (line.starts_with("0::")) return line.substr(3);
    return std::nullopt;
}

std::optional<std::string> path_of(pid_t pid) {
    return parse_proc_cgroup(
        read_proc_file(pid == 0 ? "/proc/self/cgroup" : "/proc/" + std::to_string(pid) + "/cgroup"));
}

std::string why_not_usable(const fs::path& dir) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return dir.string() + ": " + std::strerror(errno);
    if (::access(dir.c_str(), W_OK) != 0 || ::access((dir / "cgroup.procs").c_str(), W_OK) != 0)
        return dir.string() + " is not writable" + (::geteuid() == 0 ? "" : " (not root, and not delegated to us)");
    // systemd owns the tree: only a delegated subtree is ours (Delegate=yes in the unit). Without systemd (a
    // container, a plain init) a writable directory is ours to use.
    std::error_code ec;
    if (fs::exists("/run/systemd/system", ec) && !delegated(dir))
        return dir.string() + " is not delegated to ccmulti (systemd: Delegate=yes in the unit)";
    return {};
}

void make(const fs::path& dir) {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) throw SystemError("mkdir " + dir.string(), errno);
}

UniqueFd open_procs(const fs::path& dir) {
    UniqueFd fd(::open((dir / "cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) throw SystemError("open " + (dir / "cgroup.procs").string(), errno);
    return fd;
}

std::vector<pid_t> procs(const fs::path& dir) {
    std::vector<pid_t> pids;
    std::istringstream in(read_proc_file((dir / "cgroup.procs").string()));
    pid_t pid;
    while (in >> pid) pids.push_back(pid);
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (!entry.is_directory(ec) || entry.is_symlink(ec)) continue;
        auto below = procs(entry.path());
        pids.insert(pids.end(), below.begin(), below.end());
    }
    return pids;
}

bool populated(const fs::path& dir) {
    std::istringstream in(read_proc_file((dir / "cgroup.events").string()));
    std::string key;
    int value = 0;
    while (in >> key >> value)
        if (key == "populated") return value != 0;
    return false;
}

void kill_all(const fs::path& dir) {
    if (write_file(dir / "cgroup.kill", "1")) return;
    // Before Linux 5.14: whatever is there now, a few rounds for what forks meanwhile.
    for (int round = 0; round < 5 && populated(dir); ++round)
        for (pid_t pid : procs(dir))
            if (pid > 0) ::kill(pid, SIGKILL);
}

bool wait_empty(const fs::path& dir, std::chrono::milliseconds timeout) {
    // cgroup.events wakes poll (POLLPRI) when it changes; reading it again re-arms.
    UniqueFd events(::open((dir / "cgroup.events").c_str(), O_RDONLY | O_CLOEXEC));
    if (!events) return errno == ENOENT;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        char buffer[256];
        ssize_t n = ::pread(events.get(), buffer, sizeof buffer - 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno == ENODEV || errno == ENOENT;
        buffer[n] = '\0';
        const char* found = std::strstr(buffer, "populated ");
        if (!found || found[10] == '0') return true;
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd fd{events.get(), POLLPRI, 0};
        if (::poll(&fd, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) return false;
    }
}

bool remove(const fs::path& dir) {
    std::error_code ec;
    bool ok = true;
    for (const auto& entry : fs::directory_iterator(dir, ec))
        if (entry.is_directory(ec) && !entry.is_symlink(ec)) ok = cgroup::remove(entry.path()) && ok;
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return ok;
    return false;
}

std::optional<std::uint64_t> memory_current(const fs::path& dir) {
    std::string text = read_proc_file((dir / "memory.current").string());
    std::uint64_t value = 0;
    if (text.empty() || std::from_chars(text.data(), text.data() + text.size(), value).ec != std::errc{})
        return std::nullopt;
    return value;
}

bool enable_for_children(const fs::path& dir, const std::string& controller) {
    if (has_word(read_proc_file((dir / "cgroup.subtree_control").string()), controller)) return true;
    if (!has_word(read_proc_file((dir / "cgroup.controllers").string()), controller)) return false;
    return write_file(dir / "cgroup.subtree_control", "+" + controller);
}

}  // namespace ccmulti::cgroup
