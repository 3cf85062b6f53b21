// Finding processes by what their environment says: a marker (CCMULTI_GROUP=…, CCMULTI_NODE=…) that every
// descendant of a node inherits, whatever process group or session it moved to, and that is still readable after
// its ancestors died. /proc/PID/environ is the environment the process was exec'd with, readable for our own uid
// (and by root for everyone); a process that cleared its environment (env -i) carries no marker.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace ccmulti {

// Every live process (not this one, no zombies) whose environment holds all of `entries` ("KEY=VALUE").
std::vector<pid_t> processes_with_environment(const std::vector<std::string>& entries);

// Whether the NUL-separated environment block `environ_text` holds all of `entries`. Separate for tests.
bool environment_holds(const std::string& environ_text, const std::vector<std::string>& entries);

}  // namespace ccmulti
