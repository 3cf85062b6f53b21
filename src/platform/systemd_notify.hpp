// sd_notify(3), with libsystemd loaded only by a process that has someone to notify (NOTIFY_SOCKET set: a node
// under its shim, a master under systemd). libsystemd brings libgcrypt, libgpg-error, liblzma, libzstd, liblz4
// and libcap with it, about 0.5 MB of RSS in each process that maps them; the shims, the pool processes (forked
// before their node first notifies) and a master outside systemd never need them.
#pragma once

#include <string>

namespace ccmulti::platform {

// Sends `state` ("READY=1\nSTATUS=…") as sd_notify(0, state) does; nothing without NOTIFY_SOCKET. Best effort,
// as sd_notify: false when it could not be sent (libsystemd missing is logged once).
bool systemd_notify(const std::string& state);

}  // namespace ccmulti::platform
