// A private directory with a fresh broker database for one test, and a helper to run code in a forked process.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

#include "broker/connect.hpp"

namespace ccmulti::broker::testing {

class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "ccmulti-broker-XXXXXX").string();
        path_ = ::mkdtemp(pattern.data());
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

inline Connection open_in(const TempDir& dir, std::chrono::seconds expires = std::chrono::seconds(86400)) {
    return connect({"sqlite://", dir.path(), expires, ""});
}

// Runs `body` in a child process (which opens its own connections: never the parent's) and returns the child's
// pid without waiting. The child exits with _exit(0), or 1 when `body` throws.
inline pid_t fork_child(const std::function<void()>& body) {
    pid_t pid = ::fork();
    if (pid == 0) {
        int code = 0;
        try {
            body();
        } catch (...) {
            code = 1;
        }
        ::_exit(code);
    }
    return pid;
}

inline int wait_child(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace ccmulti::broker::testing
