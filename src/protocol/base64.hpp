// Standard base64 (RFC 4648, with padding), as kombu uses for message bodies.
#pragma once

#include <string>
#include <string_view>

namespace ccmulti::protocol {

std::string base64_encode(std::string_view bytes);

// Ignores ASCII whitespace; throws ProtocolError on any other character outside the alphabet or bad padding.
std::string base64_decode(std::string_view text);

}  // namespace ccmulti::protocol
