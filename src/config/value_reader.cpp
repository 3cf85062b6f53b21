#include "config/value_reader.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>

#include "naming/template.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace ccmulti::config {

// A key as TOML would print it in a table header: bare when it can be, quoted otherwise.
std::string toml_key(const std::string& key) {
    bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
    if (bare) return key;
    std::string out = "\"";
    for (char c : key) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

bool has_control(std::string_view text) {
    return std::any_of(text.begin(), text.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
}

bool has_space(std::string_view text) {
    return std::any_of(text.begin(), text.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
}

std::string number_text(double value) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%g", value);
    return buffer;
}

std::string label_for(const Entry& entry, const std::string& section) {
    if (entry.key_at.line <= 0) return "";
    return "'" + entry.key + "'" + (section.empty() ? "" : " in " + section);
}

// ---- value checks shared by several keys ----

bool check_queue_name(Reader& reader, const Field& field, const std::string& name, bool in_list) {
    if (name.empty()) {
        reader.problem(field, in_list ? "empty queue name in " + describe(field.value) : "empty queue name");
        return false;
    }
    if (has_space(name)) {
        reader.problem(field, "queue name \"" + name + "\" contains a space");
        return false;
    }
    if (!in_list && name.find(',') != std::string::npos) {
        reader.problem(field, "queue name \"" + name + "\" contains a comma; list each queue as its own item");
        return false;
    }
    return true;
}

// "high,low" (as -Q takes them) or ["high", "low"].
std::optional<std::vector<std::string>> read_queues(Reader& reader, const Field& field) {
    std::vector<std::string> names;
    bool ok = true;
    if (field.value.kind == Value::Kind::string) {
        auto text = reader.string(field);
        if (!text) return std::nullopt;
        for (const auto& name : split(*text, ',')) {
            if (!check_queue_name(reader, field, name, true)) return std::nullopt;
            names.push_back(name);
        }
    } else if (field.value.kind == Value::Kind::array) {
        for (const auto& item : field.value.array) {
            Field sub{item, field.key, field.label};
            auto name = reader.string(sub);
            if (name && check_queue_name(reader, sub, *name, false))
                names.push_back(*name);
            else
                ok = false;
        }
        if (ok && names.empty()) {
            reader.problem(field, "needs at least one queue");
            return std::nullopt;
        }
    } else {
        reader.problem(field, "expected array of queue names, got " + describe(field.value));
        return std::nullopt;
    }
    if (!ok) return std::nullopt;
    return names;
}

std::optional<std::string> read_loglevel(Reader& reader, const Field& field) {
    auto text = reader.string(field);
    if (!text) return std::nullopt;
    std::string upper;
    for (char c : *text) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (upper == "WARN") upper = "WARNING";  // Python's logging accepts both aliases
    if (upper == "FATAL") upper = "CRITICAL";
    static const std::vector<std::string> levels = {"debug", "info", "warning", "error", "critical"};
    for (const auto& level : levels) {
        std::string canonical;
        for (char c : level) canonical += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (upper == canonical) return canonical;
    }
    std::string lower;
    for (char c : *text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string guess = closest_match(lower, levels);
    reader.problem(field, "unknown log level " + quote(*text) +
                              (guess.empty() ? "" : " — did you mean '" + guess + "'?") +
                              " (one of debug, info, warning, error, critical)");
    return std::nullopt;
}

// A file name template such as "%n%I.log": unknown %x is an error now rather than when the node starts.
std::optional<std::string> read_template(Reader& reader, const Field& field) {
    auto text = reader.nonempty(field);
    if (!text) return std::nullopt;
    try {
        naming::expand(*text, naming::node_keys("w1", "host"), field.key);
    } catch (const UsageError& e) {
        reader.problem(field, e.what());
        return std::nullopt;
    }
    return text;
}

// "scheme://rest" with a scheme from `schemes`.
std::optional<std::string> read_url(Reader& reader, const Field& field, const std::vector<std::string>& schemes) {
    auto text = reader.nonempty(field);
    if (!text) return std::nullopt;
    auto sep = text->find("://");
    if (sep == std::string::npos || sep == 0) {
        reader.problem(field,
                       "expected a URL such as " + schemes.front() + "://localhost, got " + describe(field.value));
        return std::nullopt;
    }
    std::string scheme = text->substr(0, sep);
    if (std::find(schemes.begin(), schemes.end(), scheme) == schemes.end()) {
        std::string guess = closest_match(scheme, schemes);
        reader.problem(field, "unknown URL scheme '" + scheme + "'" +
                                  (guess.empty() ? "" : " — did you mean '" + guess + "'?") +
                                  " (supported: " + join(schemes, ", ") + ")");
        return std::nullopt;
    }
    return text;
}

// A user or group name or number: no spaces and no ':' (chown's separator).
std::optional<std::string> read_account(Reader& reader, const Field& field) {
    auto text = reader.nonempty(field);
    if (!text) return std::nullopt;
    if (has_space(*text) || text->find(':') != std::string::npos) {
        reader.problem(field, "not a user or group name: " + describe(field.value));
        return std::nullopt;
    }
    return text;
}

bool valid_env_name(const std::string& name) {
    if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

void read_env(Reader& reader, const Field& field, NodeSettings& node) {
    if (!reader.expect(field, Value::Kind::table)) return;
    std::map<std::string, int> seen;
    for (const auto& entry : field.value.table) {
        if (!valid_env_name(entry.key)) {
            reader.problem(entry.key_at, field.label,
                           "\"" + entry.key + "\" is not an environment variable name (letters, digits, _)");
            continue;
        }
        if (auto [it, fresh] = seen.emplace(entry.key, entry.key_at.line); !fresh) {
            reader.problem(entry.key_at, field.label,
                           "duplicate variable '" + entry.key + "' (first at line " + std::to_string(it->second) + ")");
            continue;
        }
        const Value& value = entry.value;
        Field sub{value, field.key, field.label};
        std::string text;
        switch (value.kind) {
            case Value::Kind::string:
                if (auto s = reader.string(sub))
                    text = *s;
                else
                    continue;
                break;
            case Value::Kind::integer:
                text = std::to_string(value.integer);
                break;
            case Value::Kind::floating:
                text = number_text(value.floating);
                break;
            case Value::Kind::boolean:
                text = value.boolean ? "true" : "false";
                break;
            default:
                reader.problem(sub, "variable " + entry.key + ": expected string, got " + describe(value));
                continue;
        }
        node.env[entry.key].set(text, value.at.origin());
    }
}

std::optional<std::vector<std::string>> read_watch_list(Reader& reader, const Field& field, const std::string& what) {
    if (field.value.kind != Value::Kind::string) return reader.strings(field, what);
    auto text = reader.string(field);
    if (text && text->empty()) {
        reader.problem(field, "empty " + what);
        return std::nullopt;
    }
    if (!text) return std::nullopt;
    return std::vector<std::string>{*text};
}

std::optional<std::int64_t> read_debounce(Reader& reader, const Field& field, std::int64_t max_ms) {
    std::optional<std::int64_t> ms;
    const auto& value = field.value;
    if (value.kind == Value::Kind::integer && value.integer >= 0 && value.integer <= max_ms / 1000)
        ms = value.integer * 1000;
    else if (value.kind == Value::Kind::floating)
        ms = parse_duration_ms(std::to_string(value.floating), max_ms);
    else if (value.kind == Value::Kind::string)
        ms = parse_duration_ms(value.string, max_ms);
    if (!ms)
        reader.problem(field, "expected a duration from 0 to " + std::to_string(max_ms / 1000) +
                                  " seconds (0.3, \"300ms\", \"0.3s\"), got " + describe(value));
    return ms;
}

}  // namespace ccmulti::config
