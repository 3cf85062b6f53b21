// Telling whether a process that recorded itself somewhere (a broker claim, a consumer row) is still alive,
// without being fooled by pid reuse or by a pid from another machine or pid namespace.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace ccmulti {

struct ProcessIdentity {
    pid_t pid = 0;
    std::uint64_t start_time = 0;  // /proc/<pid>/stat field 22 (clock ticks since boot): unique with the pid
    std::string scope;             // "<boot id>/<pid namespace inode>": where the pid means something
};

ProcessIdentity self_identity();

// The scope this process's pids live in (same boot and pid namespace).
const std::string& process_scope();

enum class Liveness { alive, dead, unknown };

// dead: the pid no longer exists or is another process now; unknown: `who` lives in another scope.
Liveness liveness(const ProcessIdentity& who);

}  // namespace ccmulti
