// libFuzzer target: a line on a node's inspect socket (worker/inspect_request.hpp) names a method or is one
// BadInspectRequest; a crash, a sanitizer report or any other exception escaping is a bug (scripts/fuzz).
#include <cstddef>
#include <cstdint>
#include <string>

#include "worker/inspect_request.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string line(reinterpret_cast<const char*>(data), size);
    try {
        (void)ccmulti::worker::parse_inspect_request(line);
    } catch (const ccmulti::worker::BadInspectRequest&) {
    }
    return 0;
}
