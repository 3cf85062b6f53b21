// libFuzzer target: the Celery message decoder (protocol/) turns any broker payload into a TaskMessage or one
// ProtocolError; a crash, a hang, a sanitizer report or any other exception escaping is a bug (scripts/fuzz).
// What decodes must encode again and decode to the same message (the worker republishes retries that way), and
// decode_string() (with its fast path, protocol/fast_decode.hpp) must agree with the DOM way on every input.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "protocol/protocol_error.hpp"
#include "protocol/task_message.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    std::optional<ccmulti::protocol::TaskMessage> fast, dom;
    try {
        fast = ccmulti::protocol::decode_string(text);
        auto again = ccmulti::protocol::decode_string(ccmulti::protocol::encode_string(*fast));
        again.protocol = fast->protocol;  // encode always writes v2
        if (!(again == *fast)) __builtin_trap();
    } catch (const ccmulti::protocol::ProtocolError&) {
        // the one way to say no
    }
    try {
        dom = ccmulti::protocol::decode(nlohmann::json::parse(text));
    } catch (const nlohmann::json::exception&) {
    } catch (const ccmulti::protocol::ProtocolError&) {
    }
    if (fast.has_value() != dom.has_value() || (fast && !(*fast == *dom))) __builtin_trap();
    return 0;
}
