#include "platform/read_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "util/error.hpp"

namespace ccmulti {

namespace {

// Owns the descriptor for the duration of the read.
class ReadFd {
public:
    explicit ReadFd(int fd) : fd_(fd) {}
    ReadFd(const ReadFd&) = delete;
    ReadFd& operator=(const ReadFd&) = delete;
    ~ReadFd() {
        if (fd_ >= 0) close(fd_);
    }
    int get() const { return fd_; }

private:
    int fd_;
};

}  // namespace

std::string read_text_file(const std::filesystem::path& path, std::size_t limit) {
    int raw;
    do raw = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    while (raw < 0 && errno == EINTR);
    if (raw < 0) throw SystemError("cannot open " + path.string(), errno);
    ReadFd fd(raw);
    struct stat st {};
    if (fstat(fd.get(), &st) != 0) throw SystemError("cannot stat " + path.string(), errno);
    if (!S_ISREG(st.st_mode)) throw Error(path.string() + " is not a regular file");

    std::string text;
    char buffer[16384];
    while (true) {
        ssize_t n = read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw SystemError("cannot read " + path.string(), errno);
        if (n == 0) return text;
        text.append(buffer, static_cast<std::size_t>(n));
        if (text.size() > limit)
            throw Error(path.string() + " is larger than " + std::to_string(limit / 1024) + " KiB");
    }
}

}  // namespace ccmulti
