// The dashboard is the module ccmulti-dashboard.so (platform/module.hpp says why: cpp-httplib brings OpenSSL and
// brotli, which no node, shim or pool process should map). This is all the rest of ccmulti sees of it: a
// dashboard bound to its address, served in the foreground (`ccmulti dashboard`) or on a thread of the master
// (dashboard/service.hpp says why a thread). The module is loaded by the first call.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "dashboard/options.hpp"

namespace ccmulti::dashboard {

// Served by the caller: serve() until stop() (from any thread).
class Foreground {
public:
    virtual ~Foreground() = default;
    virtual std::string url() const = 0;
    virtual bool serve() = 0;  // false when the server could not run
    virtual void stop() = 0;   // idempotent
};

// Serving on a thread of its own from construction; destroying it stops and joins everything, stop() first only
// asks (for an owner that must keep answering the dashboard's requests until its threads are done).
class Served {
public:
    virtual ~Served() = default;
    virtual std::string url() const = 0;
    virtual void stop() = 0;
};

// Loads the module now; throws Error saying why it cannot be.
void load();

// Both throw Error when the address cannot be bound, or the module cannot be loaded.
std::unique_ptr<Foreground> bind_foreground(Source source, AccessOptions access, std::chrono::milliseconds interval);
std::unique_ptr<Served> serve_in_background(Source source, AccessOptions access, std::chrono::milliseconds interval);

// What the module exports (dashboard/module.cpp).
struct Module {
    std::unique_ptr<Foreground> (*foreground)(Source, AccessOptions, std::chrono::milliseconds);
    std::unique_ptr<Served> (*background)(Source, AccessOptions, std::chrono::milliseconds);
};
inline constexpr const char* module_name = "ccmulti-dashboard";
inline constexpr const char* module_entry = "ccmulti_dashboard_module";
using ModuleEntry = const Module* (*)();

}  // namespace ccmulti::dashboard
