// One error style for the whole code base: code below the CLI throws `Error` (or a subclass) carrying a
// message written for the user; the CLI catches it at the boundary, prints it as one line and exits with
// its code. Nothing else is thrown across module boundaries on purpose.
#pragma once

#include <stdexcept>
#include <string>

namespace ccmulti {

// Process exit codes, documented in docs/exit-codes.md. Keep both in sync.
enum class Exit : int {
    ok = 0,
    failure = 1,    // the command could not do what was asked (a node failed to start/stop, ...)
    usage = 2,      // bad command line or configuration
    not_ready = 3,  // status: some nodes are not ready
};

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message, Exit code = Exit::failure)
        : std::runtime_error(message), code_(code) {}
    Exit code() const noexcept { return code_; }

private:
    Exit code_;
};

// Bad command line or configuration: exit 2.
class UsageError : public Error {
public:
    explicit UsageError(const std::string& message) : Error(message, Exit::usage) {}
};

// A failed system call, with the call's errno text appended: "open /run/x.pid: Permission denied".
class SystemError : public Error {
public:
    SystemError(const std::string& what, int errnum);
    int errnum() const noexcept { return errnum_; }

private:
    int errnum_;
};

}  // namespace ccmulti
