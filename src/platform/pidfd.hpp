// A handle on a process that is not our child (pidfd_open, Linux 5.3): it pins the identity (a signal sent
// through it can never reach a process that later got the same pid) and becomes readable when the process
// exits, so waiting for another process's death needs no polling. A zombie counts as exited.
#pragma once

#include <sys/types.h>

#include <optional>

#include "platform/fd.hpp"

namespace ccmulti {

class ProcessHandle {
public:
    // nullopt when the process does not exist (ESRCH). Throws SystemError otherwise (e.g. ENOSYS).
    static std::optional<ProcessHandle> open(pid_t pid);

    pid_t pid() const { return pid_; }
    int fd() const { return fd_.get(); }
    // False when the process has already exited (ESRCH); throws on other errors.
    bool send_signal(int sig) const;
    bool exited() const;  // readable now (non-blocking check)

private:
    ProcessHandle(pid_t pid, UniqueFd fd) : pid_(pid), fd_(std::move(fd)) {}
    pid_t pid_;
    UniqueFd fd_;
};

}  // namespace ccmulti
