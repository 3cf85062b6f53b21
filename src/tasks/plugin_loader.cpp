#include "tasks/plugin_loader.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#include "platform/fd.hpp"
#include "util/error.hpp"

namespace ccmulti::tasks {

namespace {

// A private copy of the plugin in an anonymous memory file (memfd), taken now: the loader maps the copy, so a
// compiler or `cp` truncating and rewriting the .so later cannot pull pages from under running code (SIGBUS, or
// new bytes executed as old code in every pool process). Returns an invalid fd when memfds or /proc are unavailable
// (then the file is loaded in place, as before); throws UsageError when the file cannot be read.
UniqueFd private_copy(const std::filesystem::path& file) {
    UniqueFd source(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!source) {
        const int errnum = errno;
        throw UsageError("cannot load plugin " + file.string() + ": " + std::strerror(errnum));
    }
    // Without /proc (a bare chroot) the copy could not be opened by name: load the file in place.
    if (::access("/proc/self/fd", X_OK) != 0) return {};
    UniqueFd copy(::memfd_create(("ccmulti-plugin:" + file.filename().string()).c_str(), MFD_CLOEXEC));
    if (!copy) return {};
    std::array<char, 64 * 1024> buffer;
    for (;;) {
        const ssize_t n = ::read(source.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int errnum = errno;
            throw UsageError("cannot load plugin " + file.string() + ": reading it: " + std::strerror(errnum));
        }
        if (n == 0) break;
        if (!write_all(copy.get(), buffer.data(), static_cast<std::size_t>(n)))
            throw UsageError("cannot load plugin " + file.string() + ": copying it to memory: " + std::strerror(errno));
    }
    return copy;
}

}  // namespace

void load_plugin(Registry& registry, const std::filesystem::path& path) {
    // A bare name would make dlopen search the library path; a plugin is a file the user named.
    std::filesystem::path file = path.is_absolute() ? path : std::filesystem::absolute(path);
    UniqueFd copy = private_copy(file);
    // The copy is opened through its /proc/self/fd link, and every process forked later maps the same frozen
    // bytes. Its fd stays open as long as the plugin stays loaded (for ever): the loader knows libraries by the
    // name they were opened with, and a second plugin opened as the same /proc/self/fd/N after a close would be
    // taken for the first.
    const std::string target = copy ? "/proc/self/fd/" + std::to_string(copy.get()) : file.string();
    void* handle = ::dlopen(target.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char* reason = ::dlerror();
        std::string why = reason ? reason : "unknown error";
        // dlerror names what it opened: say the plugin's own path instead of /proc/self/fd/N.
        if (auto at = why.find(target); copy && at != std::string::npos) why.replace(at, target.size(), file.string());
        throw UsageError("cannot load plugin " + file.string() + ": " + why);
    }
    static std::vector<UniqueFd> loaded_copies;  // plugins are loaded at startup, by one thread
    if (copy) loaded_copies.push_back(std::move(copy));
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
