// Loading C++ task plugins (include/ccmulti/task.hpp): dlopen(RTLD_NOW | RTLD_LOCAL), so a missing symbol fails
// at load time with the linker's message rather than in the middle of a task, then the ABI check and the
// plugin's registration function. Plugins stay loaded for the life of the process.
#pragma once

#include <filesystem>

#include "tasks/registry.hpp"

namespace ccmulti::tasks {

// Throws UsageError naming the path: not loadable, not a ccmulti plugin, other ABI version, or a task name
// already taken.
void load_plugin(Registry& registry, const std::filesystem::path& path);

}  // namespace ccmulti::tasks
