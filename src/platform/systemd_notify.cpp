#include "platform/systemd_notify.hpp"

#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <mutex>

namespace ccmulti::platform {

namespace {

using SdNotify = int (*)(int unset_environment, const char* state);

SdNotify load_sd_notify() {
    void* library = ::dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        spdlog::warn("cannot notify the supervisor (NOTIFY_SOCKET): libsystemd.so.0 cannot be loaded: {}",
                     ::dlerror());
        return nullptr;
    }
    auto function = reinterpret_cast<SdNotify>(::dlsym(library, "sd_notify"));
    if (!function) spdlog::warn("cannot notify the supervisor (NOTIFY_SOCKET): libsystemd.so.0 has no sd_notify");
    return function;
}

}  // namespace

bool systemd_notify(const std::string& state) {
    const char* socket = std::getenv("NOTIFY_SOCKET");
    if (!socket || !*socket) return false;
    static std::once_flag once;
    static SdNotify function = nullptr;
    std::call_once(once, [] { function = load_sd_notify(); });
    return function && function(0, state.c_str()) > 0;
}

}  // namespace ccmulti::platform
