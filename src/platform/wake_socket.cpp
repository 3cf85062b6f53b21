#include "platform/wake_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "util/error.hpp"

namespace ccmulti {

namespace {

constexpr const char* prefix = "ccmulti-wake/";

// An abstract address: sun_path starts with NUL and the length, not a terminator, ends the name.
socklen_t make_address(const std::string& name, sockaddr_un& address) {
    std::memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    if (name.size() + 1 > sizeof address.sun_path) throw Error("wake socket name too long: " + name);
    std::memcpy(address.sun_path + 1, name.data(), name.size());
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
}

std::string random_name() {
    // Reseeded after a fork, or parent and child would race for the same names.
    static thread_local std::mt19937_64 engine;
    static thread_local pid_t seeded_for = 0;
    if (seeded_for != getpid()) {
        seeded_for = getpid();
        std::random_device device;
        std::seed_seq seed{device(), device(), device(), device()};
        engine.seed(seed);
    }
    char buffer[40];
    std::snprintf(buffer, sizeof buffer, "%016llx%016llx", static_cast<unsigned long long>(engine()),
                  static_cast<unsigned long long>(engine()));
    return prefix + std::string(buffer);
}

}  // namespace

WakeSocket::WakeSocket() {
    fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd_) throw SystemError("socket(AF_UNIX, SOCK_DGRAM)", errno);
    for (int attempt = 0;; ++attempt) {
        name_ = random_name();
        sockaddr_un address;
        socklen_t length = make_address(name_, address);
        if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&address), length) == 0) break;
        if (errno != EADDRINUSE || attempt > 8) throw SystemError("bind wake socket", errno);
    }
}

bool WakeSocket::drain() {
    bool rung = false;
    char byte;
    while (true) {
        ssize_t n = ::recv(fd_.get(), &byte, 1, MSG_DONTWAIT);
        if (n >= 0) {
            rung = true;
            continue;
        }
        if (errno == EINTR) continue;
        return rung;  // EAGAIN: empty
    }
}

bool WakeSocket::wait(std::optional<std::chrono::milliseconds> timeout) {
    pollfd entry{fd_.get(), POLLIN, 0};
    int ms = -1;
    if (timeout) ms = static_cast<int>(std::max<std::chrono::milliseconds::rep>(0, timeout->count()));
    int n = ::poll(&entry, 1, ms);
    if (n < 0 && errno != EINTR) throw SystemError("poll wake socket", errno);
    return n != 0;
}

void WakeSocket::ring(const std::string& name) {
    // A fresh socket per ring keeps this free of shared state; rings are rare (one per commit per consumer).
    UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return;
    sockaddr_un address;
    socklen_t length = make_address(name, address);
    char byte = 1;
    while (::sendto(fd.get(), &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&address), length) <
               0 &&
           errno == EINTR) {
    }
}

}  // namespace ccmulti
