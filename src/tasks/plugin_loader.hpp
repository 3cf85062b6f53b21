// Loading C++ task plugins (include/ccmulti/task.hpp): dlopen(RTLD_NOW | RTLD_LOCAL), so a missing symbol fails
// at load time with the linker's message rather than in the middle of a task, then the ABI check and the
// plugin's registration function. Plugins stay loaded for the life of the process.
// Each is loaded from a private copy taken at load time (a memfd), so rebuilding the .so in place (a compiler or
// `cp` truncating and rewriting it) while a node runs never crashes its pool processes: hot reload replaces the
// node to pick the new build up.
#pragma once

#include <filesystem>

#include "tasks/registry.hpp"

namespace ccmulti::tasks {

// Throws UsageError naming the path: not loadable, not a ccmulti plugin, other ABI version, or a task name
// already taken.
void load_plugin(Registry& registry, const std::filesystem::path& path);

}  // namespace ccmulti::tasks
