#include "dashboard/entry.hpp"

#include "platform/module.hpp"

namespace ccmulti::dashboard {

namespace {

const Module& loaded() {
    auto entry = reinterpret_cast<ModuleEntry>(platform::module_symbol(module_name, module_entry, "the dashboard"));
    return *entry();
}

}  // namespace

void load() {
    loaded();
}

std::unique_ptr<Foreground> bind_foreground(Source source, AccessOptions access, std::chrono::milliseconds interval) {
    return loaded().foreground(std::move(source), std::move(access), interval);
}

std::unique_ptr<Served> serve_in_background(Source source, AccessOptions access, std::chrono::milliseconds interval) {
    return loaded().background(std::move(source), std::move(access), interval);
}

}  // namespace ccmulti::dashboard
