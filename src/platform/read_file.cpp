#include "platform/read_file.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.hpp"

namespace ccmulti {

namespace {

const char* kind_of(mode_t mode) {
    if (S_ISLNK(mode)) return "a symlink";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISDIR(mode)) return "a directory";
    return "not a regular file";
}

std::string not_regular(mode_t mode) {
    return std::string("it is ") + kind_of(mode) + ", not a regular file";
}

// /proc/self/mem and the files of /sys call themselves regular.
bool kernel_file(int fd) {
    struct statfs fs {};
    if (::fstatfs(fd, &fs) != 0) return false;
    return fs.f_type == PROC_SUPER_MAGIC || fs.f_type == SYSFS_MAGIC || fs.f_type == DEBUGFS_MAGIC;
}

}  // namespace

RegularFile open_regular_file(const std::filesystem::path& path, int flags, mode_t mode) {
    RegularFile result;
    int raw;
    do raw = ::open(path.c_str(), flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, mode);
    while (raw < 0 && errno == EINTR);
    if (raw < 0) {
        const int error = errno;
        struct stat st {};
        // ELOOP: the last component is a symlink. ENXIO: a FIFO without a reader (write-only), or a device.
        if ((error == ELOOP || error == ENXIO || error == EISDIR) && ::lstat(path.c_str(), &st) == 0)
            result.why = S_ISLNK(st.st_mode) ? "it is a symlink" : not_regular(st.st_mode);
        else
            result.why = std::strerror(error);
        errno = error;
        return result;
    }
    UniqueFd fd(raw);
    struct stat st {};
    if (::fstat(raw, &st) != 0) {
        result.why = std::strerror(errno);
        return result;
    }
    if (!S_ISREG(st.st_mode)) {
        result.why = not_regular(st.st_mode);
        errno = EINVAL;
        return result;
    }
    if (kernel_file(raw)) {
        result.why = "it is a kernel file (/proc, /sys), not a regular file";
        errno = EINVAL;
        return result;
    }
    int status = ::fcntl(raw, F_GETFL);
    if (status >= 0) ::fcntl(raw, F_SETFL, status & ~O_NONBLOCK);
    result.fd = std::move(fd);
    return result;
}

UniqueFd open_log_file(const std::filesystem::path& path, const std::string& what) {
    auto file = open_regular_file(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (file.fd) return std::move(file.fd);
    if (errno == EINVAL || errno == ELOOP || errno == ENXIO || errno == EISDIR)
        throw Error("refusing " + what + " " + path.string() + ": " + file.why +
                    " (remove it if you did not put it there, or choose another path)");
    throw Error("cannot open " + what + " " + path.string() + ": " + file.why);
}

std::string log_path_problem(const std::filesystem::path& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return {};  // created at start (or its directory is reported then)
    if (S_ISLNK(st.st_mode)) return "it is a symlink";
    if (!S_ISREG(st.st_mode)) return not_regular(st.st_mode);
    struct statfs fs {};
    if (::statfs(path.c_str(), &fs) == 0 &&
        (fs.f_type == PROC_SUPER_MAGIC || fs.f_type == SYSFS_MAGIC || fs.f_type == DEBUGFS_MAGIC))
        return "it is a kernel file (/proc, /sys), not a regular file";
    if (::faccessat(AT_FDCWD, path.c_str(), W_OK, AT_EACCESS) != 0)
        return std::string("it is not writable: ") + std::strerror(errno);
    return {};
}

std::string read_text_file(const std::filesystem::path& path, std::size_t limit) {
    int raw;
    // O_NONBLOCK: a FIFO given as the configuration file must not hang us in open(2).
    do raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    while (raw < 0 && errno == EINTR);
    if (raw < 0) throw SystemError("cannot open " + path.string(), errno);
    UniqueFd fd(raw);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw SystemError("cannot stat " + path.string(), errno);
    if (!S_ISREG(st.st_mode)) throw Error(path.string() + " is not a regular file");

    std::string text;
    char buffer[16384];
    while (true) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw SystemError("cannot read " + path.string(), errno);
        if (n == 0) return text;
        text.append(buffer, static_cast<std::size_t>(n));
        if (text.size() > limit)
            throw Error(path.string() + " is larger than " + std::to_string(limit / 1024) + " KiB");
    }
}

}  // namespace ccmulti
