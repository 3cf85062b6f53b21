#include "protocol/json_text.hpp"

#include <cstdint>

namespace ccmulti::protocol {

namespace {

// Printable ASCII other than '"' and '\\': written as is by every JSON writer.
bool plain(std::string_view text) {
    for (char c : text) {
        auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte >= 0x80 || c == '"' || c == '\\') return false;
    }
    return true;
}

}  // namespace

void append_json(std::string& out, const nlohmann::json& value, JsonErrors errors) {
    // Written here for every type but floating point (nlohmann's own shortest round-trip form) and binary:
    // a serializer per value (a 512-byte buffer and a localeconv() call) cost more than the writing.
    using type = nlohmann::json::value_t;
    switch (value.type()) {
        case type::null:
            out += "null";
            return;
        case type::boolean:
            out += value.get<bool>() ? "true" : "false";
            return;
        case type::string:
            append_json_string(out, value.get_ref<const std::string&>(), errors);
            return;
        case type::number_integer:
            out += std::to_string(value.get<std::int64_t>());
            return;
        case type::number_unsigned:
            out += std::to_string(value.get<std::uint64_t>());
            return;
        case type::array: {
            out += '[';
            bool first = true;
            for (const auto& item : value.get_ref<const nlohmann::json::array_t&>()) {
                if (!first) out += ',';
                first = false;
                append_json(out, item, errors);
            }
            out += ']';
            return;
        }
        case type::object: {
            out += '{';
            bool first = true;
            for (const auto& [key, item] : value.get_ref<const nlohmann::json::object_t&>()) {
                if (!first) out += ',';
                first = false;
                append_json_string(out, key, errors);
                out += ':';
                append_json(out, item, errors);
            }
            out += '}';
            return;
        }
        default:
            break;
    }
    nlohmann::detail::serializer<nlohmann::json> writer(nlohmann::detail::output_adapter<char, std::string>(out), ' ',
                                                        errors);
    writer.dump(value, false, false, 0);
}

void append_json_string(std::string& out, std::string_view text, JsonErrors errors) {
    if (plain(text)) {
        out += '"';
        out += text;
        out += '"';
        return;
    }
    nlohmann::detail::serializer<nlohmann::json> writer(nlohmann::detail::output_adapter<char, std::string>(out), ' ',
                                                        errors);
    writer.dump(nlohmann::json(std::string(text)), false, false, 0);
}

}  // namespace ccmulti::protocol
