// libFuzzer target: the Celery message decoder (protocol/) turns any broker payload into a TaskMessage or one
// ProtocolError; a crash, a hang, a sanitizer report or any other exception escaping is a bug (scripts/fuzz).
// What decodes must encode again and decode to the same message (the worker republishes retries that way).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocol/protocol_error.hpp"
#include "protocol/task_message.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        auto message = ccmulti::protocol::decode_string(text);
        auto again = ccmulti::protocol::decode_string(ccmulti::protocol::encode_string(message));
        again.protocol = message.protocol;  // encode always writes v2
        if (!(again == message)) __builtin_trap();
    } catch (const ccmulti::protocol::ProtocolError&) {
        // the one way to say no
    }
    return 0;
}
