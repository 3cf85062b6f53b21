#include "platform/module.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <vector>

#include "platform/host.hpp"
#include "util/error.hpp"

namespace ccmulti::platform {

namespace {

// Where a module may be: the first of these directories that holds the file is the one loaded.
std::vector<std::filesystem::path> module_dirs() {
    std::vector<std::filesystem::path> dirs;
    if (const char* dir = std::getenv("CCMULTI_MODULE_DIR"); dir && *dir) dirs.emplace_back(dir);
    std::filesystem::path exe_dir;
    try {
        exe_dir = std::filesystem::path(self_executable()).parent_path();
    } catch (const Error&) {
        return dirs;  // no /proc: only the environment's directory
    }
    dirs.push_back(exe_dir);
    dirs.push_back((exe_dir / CCMULTI_MODULE_DIR_FROM_BINDIR).lexically_normal());
    return dirs;
}

void* load(const std::string& name, const std::string& what) {
    const std::string file = name + ".so";
    std::string tried;
    for (const auto& dir : module_dirs()) {
        auto path = dir / file;
        std::error_code ec;
        if (!std::filesystem::exists(path, ec)) {
            tried += (tried.empty() ? "" : ", ") + dir.string();
            continue;
        }
        // RTLD_NOW: a module that cannot resolve a symbol fails here, with the loader's message, not later.
        void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle) throw Error(what + " needs " + path.string() + ", which cannot be loaded: " + ::dlerror());
        auto* version = static_cast<const char* const*>(::dlsym(handle, CCMULTI_MODULE_VERSION_SYMBOL));
        if (!version || std::string(*version) != CCMULTI_VERSION) {
            std::string built_for = version ? *version : "an unknown version";
            ::dlclose(handle);
            throw Error(what + " needs " + path.string() + ", which was built for ccmulti " + built_for +
                        ", not " + CCMULTI_VERSION + "; reinstall ccmulti so that the two match");
        }
        return handle;
    }
    throw Error(what + " needs the module " + file + ", found in none of: " + tried +
                "; reinstall ccmulti, or point CCMULTI_MODULE_DIR at the directory that holds it");
}

}  // namespace

void* module_symbol(const std::string& name, const char* symbol, const std::string& what) {
    static std::mutex mutex;
    static std::map<std::string, void*> loaded;
    std::lock_guard lock(mutex);
    auto it = loaded.find(name);
    if (it == loaded.end()) it = loaded.emplace(name, load(name, what)).first;
    void* address = ::dlsym(it->second, symbol);
    if (!address) throw Error(what + ": the module " + name + ".so has no " + symbol + "; reinstall ccmulti");
    return address;
}

}  // namespace ccmulti::platform
