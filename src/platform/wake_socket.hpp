// A doorbell between processes: a unix datagram socket in the abstract namespace that anyone may ring.
//
// The SQLite broker wakes idle consumers and result waiters this way instead of polling: each one binds a
// WakeSocket under a random name and records the name in the database; whoever commits a change they care about
// rings the names it finds (WakeSocket::ring). Abstract names need no file, so a SIGKILLed process leaves nothing
// to clean up, and ringing a name nobody holds any more fails at once (ECONNREFUSED) and is ignored.
// A ring carries no data: its only meaning is "look again".
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "platform/fd.hpp"

namespace ccmulti {

class WakeSocket {
public:
    // Binds "\0ccmulti-wake/<random>" (close-on-exec, non-blocking).
    WakeSocket();

    const std::string& name() const noexcept { return name_; }  // without the leading NUL
    int fd() const noexcept { return fd_.get(); }               // readable after a ring

    // Discards pending rings; returns whether there were any.
    bool drain();

    // Blocks until a ring arrives or `timeout` passes (no timeout: for ever). Returns whether a ring arrived;
    // EINTR counts as a (spurious) wakeup.
    bool wait(std::optional<std::chrono::milliseconds> timeout);

    // Rings the socket called `name`. Never blocks; a full queue (already rung) or a vanished socket is fine.
    static void ring(const std::string& name);

private:
    UniqueFd fd_;
    std::string name_;
};

}  // namespace ccmulti
