// Signal plumbing shared by every process ccmulti runs: names for messages, a scoped "block everything"
// for the moments around fork(), and the reset a child does before exec.
#pragma once

#include <signal.h>

#include <initializer_list>
#include <string>

namespace ccmulti {

// "TERM", "QUIT", "KILL"... (no "SIG" prefix); "signal 42" for a number without a name.
std::string signal_name(int sig);

// The number for "TERM", "SIGTERM" or "15"; 0 when unknown.
int signal_number(const std::string& name);

sigset_t make_sigset(std::initializer_list<int> signals);

// Blocks every signal for its lifetime and restores the previous mask afterwards: wrap fork() in one, so a
// signal cannot run a handler in the child before it has reset its dispositions.
class BlockAllSignals {
public:
    BlockAllSignals();
    ~BlockAllSignals();
    BlockAllSignals(const BlockAllSignals&) = delete;
    BlockAllSignals& operator=(const BlockAllSignals&) = delete;
    const sigset_t& previous() const { return previous_; }

private:
    sigset_t previous_;
};

// While it lives, a write to a pipe whose reader is gone fails with EPIPE instead of killing the process with
// SIGPIPE, on this thread and whatever SIGPIPE's disposition is. A SIGPIPE raised meanwhile is taken back before
// the previous mask returns (unless one was already pending before).
class SuppressSigpipe {
public:
    SuppressSigpipe();
    ~SuppressSigpipe();
    SuppressSigpipe(const SuppressSigpipe&) = delete;
    SuppressSigpipe& operator=(const SuppressSigpipe&) = delete;

private:
    sigset_t previous_;
    bool was_pending_ = false;
};

// In a freshly forked child, before exec: every disposition back to default and an empty mask, so the
// program starts as if from a clean shell (ccmulti blocks signals for signalfd; exec would keep the mask).
// Async-signal-safe.
void reset_signals_for_exec() noexcept;

}  // namespace ccmulti
