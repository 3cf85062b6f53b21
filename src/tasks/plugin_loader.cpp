#include "tasks/plugin_loader.hpp"

#include <dlfcn.h>

#include "util/error.hpp"

namespace ccmulti::tasks {

void load_plugin(Registry& registry, const std::filesystem::path& path) {
    // A bare name would make dlopen search the library path; a plugin is a file the user named.
    std::filesystem::path file = path.is_absolute() ? path : std::filesystem::absolute(path);
    void* handle = ::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char* reason = ::dlerror();
        throw UsageError("cannot load plugin " + file.string() + ": " + (reason ? reason : "unknown error"));
    }
    registry.keep_library(handle);
    using AbiFunction = int (*)();
    using RegisterFunction = void (*)(TaskRegistrar&);
    auto abi = reinterpret_cast<AbiFunction>(::dlsym(handle, "ccmulti_plugin_abi_version"));
    auto register_tasks = reinterpret_cast<RegisterFunction>(::dlsym(handle, "ccmulti_register_tasks"));
    if (!abi || !register_tasks)
        throw UsageError("plugin " + file.string() + " is not a ccmulti plugin (no CCMULTI_PLUGIN entry point)");
    if (int version = abi(); version != plugin_abi_version)
        throw UsageError("plugin " + file.string() + " was built for plugin ABI " + std::to_string(version) +
                         ", this ccmulti has " + std::to_string(plugin_abi_version) + ": rebuild it");
    registry.set_origin("plugin: " + file.string());
    try {
        register_tasks(registry);
    } catch (const Error&) {
        registry.set_origin("built-in");
        throw;
    } catch (const std::exception& error) {
        registry.set_origin("built-in");
        throw UsageError("plugin " + file.string() + " failed to register its tasks: " + error.what());
    }
    registry.set_origin("built-in");
}

}  // namespace ccmulti::tasks
