// An owned file descriptor: closed exactly once, movable, never copied. Every fd ccmulti opens lives in one.
#pragma once

#include <unistd.h>

#include <utility>

namespace ccmulti {

class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) reset(std::exchange(other.fd_, -1));
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    int release() noexcept { return std::exchange(fd_, -1); }
    // close(2) is not retried on EINTR: on Linux the fd is gone either way.
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

// Creates a pipe with O_CLOEXEC on both ends; [0] reads, [1] writes. Throws SystemError.
struct Pipe {
    UniqueFd read, write;
};
Pipe make_pipe(int extra_flags = 0);

// write(2) of all of `size` bytes, retrying on EINTR and short writes. False on error (errno set).
bool write_all(int fd, const void* data, std::size_t size) noexcept;

// The highest fd number a loop over "every fd" must reach: RLIMIT_NOFILE's soft limit (capped). Call it before
// fork, for cloexec_from / close_from in the child.
int fd_ceiling() noexcept;

// Every fd from `low` up: close-on-exec (cloexec_from) or closed (close_from). close_range(2) when the kernel has
// it (CLOSE_RANGE_CLOEXEC needs 5.11), else a loop up to `ceiling`. Async-signal-safe (between fork and exec);
// false (errno set) only when neither worked.
bool cloexec_from(int low, int ceiling) noexcept;
bool close_from(int low, int ceiling) noexcept;

}  // namespace ccmulti
