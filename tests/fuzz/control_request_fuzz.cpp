// libFuzzer target: a line on the master's control socket (supervisor/control_request.hpp) is a ControlRequest or
// one BadControlRequest; a crash, a sanitizer report or any other exception escaping is a bug (scripts/fuzz).
// The node specs it carries must encode again (the master writes them into its status).
#include <cstddef>
#include <cstdint>
#include <string>

#include "supervisor/control_request.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string line(reinterpret_cast<const char*>(data), size);
    try {
        auto request = ccmulti::supervisor::parse_control_request(line);
        for (const auto& spec : request.specs) {
            nlohmann::json again = spec;
            (void)again.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
        if (request.timeout && request.timeout->count() < 0) __builtin_trap();
    } catch (const ccmulti::supervisor::BadControlRequest&) {
        // the one way to say no
    }
    return 0;
}
