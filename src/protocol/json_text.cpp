#include "protocol/json_text.hpp"

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
    switch (value.type()) {
        case nlohmann::json::value_t::null:
            out += "null";
            return;
        case nlohmann::json::value_t::boolean:
            out += value.get<bool>() ? "true" : "false";
            return;
        case nlohmann::json::value_t::string:
            append_json_string(out, value.get_ref<const std::string&>(), errors);
            return;
        case nlohmann::json::value_t::array:
            if (value.empty()) {
                out += "[]";
                return;
            }
            break;
        case nlohmann::json::value_t::object:
            if (value.empty()) {
                out += "{}";
                return;
            }
            break;
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
