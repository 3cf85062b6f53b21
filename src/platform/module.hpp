// The parts of ccmulti that need heavy libraries are modules loaded the first time they are used: the RabbitMQ
// transport (rabbitmq-c, and through it OpenSSL) and the dashboard (cpp-httplib, OpenSSL, brotli). A node on
// Redis or SQLite, its shim and its pool processes then never map those libraries: libcrypto alone is about
// 1.6 MB of RSS in every process that maps it, 0.4 MB of it pages its loader relocated privately. 3 nodes × -c 2
// on Redis (13 processes) took 101 MB RSS and 18.2 MB PSS before, 72 MB and 11.5 MB since.
//
// A module is built with the executable, from the same sources, and resolves what it uses of ccmulti from the
// executable itself (which exports its symbols): one copy of every library and of every global (spdlog's
// registry, the error types a module throws and the executable catches). It is found, in this order, in
// $CCMULTI_MODULE_DIR, beside the executable (the build tree) and in the install's lib/ccmulti relative to it.
#pragma once

#include <string>

namespace ccmulti::platform {

// The address of `symbol` in module `name` (say "ccmulti-amqp": the file is ccmulti-amqp.so), loading the module
// on first use; thread-safe. A module is never unloaded. Throws Error saying what `what` needs, where the module
// was looked for and what the loader said, when it cannot be loaded, lacks the symbol, or was built for another
// version of ccmulti.
void* module_symbol(const std::string& name, const char* symbol, const std::string& what);

}  // namespace ccmulti::platform

// What every module defines (`CCMULTI_MODULE_VERSION;` in its module.cpp): the version it was built for, checked
// before anything else is looked up in it.
#define CCMULTI_MODULE_VERSION_SYMBOL "ccmulti_module_version"
#define CCMULTI_MODULE_VERSION extern "C" const char* const ccmulti_module_version = CCMULTI_VERSION
