#include "config/document.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string_view>

namespace ccmulti::config {

std::string quote(const std::string& text) {
    constexpr std::size_t limit = 60;
    std::string out = "\"";
    for (std::size_t i = 0; i < text.size() && i < limit; ++i) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    if (text.size() > limit) out += "…";
    return out + "\"";
}

namespace {

std::string format_double(double value) {
    if (std::isnan(value)) return "nan";
    if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%g", value);
    return buffer;
}

bool all_of(std::string_view text, bool (*accept)(char)) {
    if (text.empty()) return false;
    for (char c : text)
        if (!accept(c)) return false;
    return true;
}
bool is_dec(char c) {
    return c >= '0' && c <= '9';
}
bool is_hex(char c) {
    return is_dec(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_oct(char c) {
    return c >= '0' && c <= '7';
}

// Integer in base 10 (optionally signed), 16 (0x) or 8 (0o), as in the YAML 1.2 core schema. Hand-written
// rather than std::regex, whose recursive matcher overflows the stack on long input.
bool parse_integer(const std::string& text, std::int64_t& out, bool& overflow) {
    int base = 10;
    std::string_view digits = text;
    if (text.starts_with("0x")) {
        base = 16;
        digits.remove_prefix(2);
        if (!all_of(digits, is_hex)) return false;
    } else if (text.starts_with("0o")) {
        base = 8;
        digits.remove_prefix(2);
        if (!all_of(digits, is_oct)) return false;
    } else {
        std::string_view unsigned_part = digits;
        if (!unsigned_part.empty() && (unsigned_part[0] == '-' || unsigned_part[0] == '+'))
            unsigned_part.remove_prefix(1);
        if (!all_of(unsigned_part, is_dec)) return false;
    }
    std::string copy(digits);
    errno = 0;
    out = std::strtoll(copy.c_str(), nullptr, base);
    overflow = errno == ERANGE;
    return true;
}

// [-+]? ( .DIGITS | DIGITS ( . DIGITS? )? ) ( [eE] [-+]? DIGITS )?, or .inf / .nan in their three spellings.
bool parse_float(const std::string& text, double& out) {
    std::string_view rest = text;
    bool negative = false;
    if (!rest.empty() && (rest[0] == '-' || rest[0] == '+')) {
        negative = rest[0] == '-';
        rest.remove_prefix(1);
    }
    if (rest == ".inf" || rest == ".Inf" || rest == ".INF") {
        out = negative ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
        return true;
    }
    if (text == ".nan" || text == ".NaN" || text == ".NAN") {
        out = std::numeric_limits<double>::quiet_NaN();
        return true;
    }
    auto digits = [&rest] {
        std::size_t n = 0;
        while (n < rest.size() && is_dec(rest[n])) ++n;
        rest.remove_prefix(n);
        return n;
    };
    std::size_t whole = digits();
    if (!rest.empty() && rest[0] == '.') {
        rest.remove_prefix(1);
        std::size_t fraction = digits();
        if (whole == 0 && fraction == 0) return false;
    } else if (whole == 0) {
        return false;
    }
    if (!rest.empty() && (rest[0] == 'e' || rest[0] == 'E')) {
        rest.remove_prefix(1);
        if (!rest.empty() && (rest[0] == '-' || rest[0] == '+')) rest.remove_prefix(1);
        if (digits() == 0) return false;
    }
    if (!rest.empty()) return false;
    out = std::strtod(text.c_str(), nullptr);
    return true;
}

}  // namespace

std::string kind_name(Value::Kind kind) {
    switch (kind) {
        case Value::Kind::null:
            return "null";
        case Value::Kind::boolean:
            return "boolean";
        case Value::Kind::integer:
            return "integer";
        case Value::Kind::floating:
            return "float";
        case Value::Kind::string:
            return "string";
        case Value::Kind::datetime:
            return "date-time";
        case Value::Kind::array:
            return "array";
        case Value::Kind::table:
            return "table";
    }
    return "value";
}

std::string describe(const Value& value) {
    switch (value.kind) {
        case Value::Kind::boolean:
            return std::string("boolean ") + (value.boolean ? "true" : "false");
        case Value::Kind::integer:
            return "integer " + std::to_string(value.integer);
        case Value::Kind::floating:
            return "float " + format_double(value.floating);
        case Value::Kind::string:
            return "string " + quote(value.string);
        case Value::Kind::datetime:
            return "date-time " + value.string;
        default:
            return kind_name(value.kind);
    }
}

bool valid_utf8(std::string_view text) {
    for (std::size_t i = 0; i < text.size();) {
        auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
        unsigned char lead = byte(i);
        std::size_t length;
        char32_t code, min;
        if (lead < 0x80) {
            ++i;
            continue;
        } else if ((lead & 0xe0) == 0xc0) {
            length = 2, code = lead & 0x1f, min = 0x80;
        } else if ((lead & 0xf0) == 0xe0) {
            length = 3, code = lead & 0x0f, min = 0x800;
        } else if ((lead & 0xf8) == 0xf0) {
            length = 4, code = lead & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (i + length > text.size()) return false;
        for (std::size_t k = 1; k < length; ++k) {
            if ((byte(i + k) & 0xc0) != 0x80) return false;
            code = (code << 6) | (byte(i + k) & 0x3f);
        }
        if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return false;
        i += length;
    }
    return true;
}

Value plain_scalar(const std::string& text, const Location& at, ConfigErrors& errors) {
    Value value;
    value.at = at;
    if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") return value;
    if (text == "true" || text == "True" || text == "TRUE" || text == "false" || text == "False" || text == "FALSE") {
        value.kind = Value::Kind::boolean;
        value.boolean = text[0] == 't' || text[0] == 'T';
        return value;
    }
    bool overflow = false;
    if (parse_integer(text, value.integer, overflow)) {
        if (overflow) {
            errors.add(at, "integer " + text + " does not fit in 64 bits");
            Value null;
            null.at = at;
            return null;
        }
        value.kind = Value::Kind::integer;
        return value;
    }
    if (parse_float(text, value.floating)) {
        value.kind = Value::Kind::floating;
        return value;
    }
    value.kind = Value::Kind::string;
    value.string = text;
    return value;
}

Value text_value(const std::string& text, const Location& at, bool typed, ConfigErrors& errors) {
    if (!valid_utf8(text)) {
        errors.add(at, "not valid UTF-8");
        Value null;
        null.at = at;
        return null;
    }
    if (typed) return plain_scalar(text, at, errors);
    Value value;
    value.kind = Value::Kind::string;
    value.string = text;
    value.at = at;
    return value;
}

}  // namespace ccmulti::config
