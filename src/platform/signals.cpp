#include "platform/signals.hpp"

#include <pthread.h>
#include <string.h>

#include <cctype>

#include "util/strings.hpp"

namespace ccmulti {

std::string signal_name(int sig) {
    if (const char* abbrev = ::sigabbrev_np(sig)) return abbrev;
    return "signal " + std::to_string(sig);
}

int signal_number(const std::string& name) {
    if (is_digits(name) && name.size() < 3) return std::stoi(name) < NSIG ? std::stoi(name) : 0;
    std::string upper;
    for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (upper.starts_with("SIG")) upper = upper.substr(3);
    for (int sig = 1; sig < NSIG; ++sig)
        if (const char* abbrev = ::sigabbrev_np(sig); abbrev && upper == abbrev) return sig;
    return 0;
}

sigset_t make_sigset(std::initializer_list<int> signals) {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : signals) sigaddset(&set, sig);
    return set;
}

BlockAllSignals::BlockAllSignals() {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &previous_);
}

BlockAllSignals::~BlockAllSignals() {
    sigprocmask(SIG_SETMASK, &previous_, nullptr);
}

SuppressSigpipe::SuppressSigpipe() {
    sigset_t pending;
    ::sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    sigset_t pipe = make_sigset({SIGPIPE});
    ::pthread_sigmask(SIG_BLOCK, &pipe, &previous_);
}

SuppressSigpipe::~SuppressSigpipe() {
    if (!was_pending_) {
        sigset_t pipe = make_sigset({SIGPIPE});
        timespec now{};
        while (::sigtimedwait(&pipe, nullptr, &now) == SIGPIPE) {
        }
    }
    ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
}

void reset_signals_for_exec() noexcept {
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    for (int sig = 1; sig < NSIG; ++sig)
        if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &action, nullptr);  // EINVAL for reserved ones
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

}  // namespace ccmulti
