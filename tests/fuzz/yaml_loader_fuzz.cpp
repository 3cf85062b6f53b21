// libFuzzer target: the YAML loader and the schema behind it turn any input into Settings or collected
// ConfigErrors; a crash, a hang, a sanitizer report or any exception escaping is a bug (scripts/fuzz).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/json.hpp"
#include "config/loader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    ccmulti::config::ConfigErrors errors;
    auto settings = ccmulti::config::parse_config(text, "fuzz.yaml", ccmulti::config::Format::yaml, errors);
    auto lines = errors.lines();
    auto json = ccmulti::config::to_json(settings).dump();  // every stored value is representable
    return lines.empty() && json.empty() ? 1 : 0;
}
