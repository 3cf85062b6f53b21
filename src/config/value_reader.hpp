// Typed reading of configuration values, shared by every section of the schema (config/schema.cpp): a Field
// is one key's value with the label messages name it by, a Reader turns it into a C++ value or records why it
// cannot (problems are collected, never thrown one by one), and the value checks here are the rules several
// keys share (queue names, log levels, file-name templates, URLs, accounts, environment tables).
#pragma once

#include <cctype>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/document.hpp"
#include "config/settings.hpp"

namespace ccmulti::config {

// A key as TOML would print it in a table header: bare when it can be, quoted otherwise.
std::string toml_key(const std::string& key);
bool has_control(std::string_view text);
bool has_space(std::string_view text);
std::string number_text(double value);  // %g

// One key's value being read, and how messages name it: "'concurrency' in [nodes.w1]" for a file position;
// nothing for a variable or a flag, whose location already says everything.
struct Field {
    const Value& value;
    std::string key;
    std::string label;
};

std::string label_for(const Entry& entry, const std::string& section);

// Typed reads: each returns nothing after reporting why the value cannot be used.
class Reader {
public:
    explicit Reader(ConfigErrors& errors) : errors_(errors) {}

    void problem(const Location& at, const std::string& label, const std::string& message) {
        errors_.add(at, label.empty() ? message : label + ": " + message);
    }
    void problem(const Field& field, const std::string& message) { problem(field.value.at, field.label, message); }

    bool expect(const Field& field, Value::Kind kind) {
        if (field.value.kind == kind) return true;
        problem(field, "expected " + kind_name(kind) + ", got " + describe(field.value));
        return false;
    }

    std::optional<std::string> string(const Field& field) {
        if (!expect(field, Value::Kind::string)) return std::nullopt;
        if (has_control(field.value.string)) {
            problem(field, "must not contain control characters, got " + describe(field.value));
            return std::nullopt;
        }
        return field.value.string;
    }

    std::optional<std::string> nonempty(const Field& field) {
        auto text = string(field);
        if (text && text->empty()) {
            problem(field, "must not be empty");
            return std::nullopt;
        }
        return text;
    }

    std::optional<std::int64_t> integer(const Field& field, std::int64_t min, std::int64_t max) {
        if (!expect(field, Value::Kind::integer)) return std::nullopt;
        std::int64_t value = field.value.integer;
        if (value < min || value > max) {
            problem(field, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                               std::to_string(value));
            return std::nullopt;
        }
        return value;
    }

    // Seconds, integer or float, more than 0.
    std::optional<double> seconds(const Field& field, double max) {
        double value;
        if (field.value.kind == Value::Kind::integer)
            value = static_cast<double>(field.value.integer);
        else if (field.value.kind == Value::Kind::floating)
            value = field.value.floating;
        else {
            problem(field, "expected number of seconds, got " + describe(field.value));
            return std::nullopt;
        }
        if (!std::isfinite(value) || value <= 0 || value > max) {
            problem(field, "must be more than 0 and at most " + number_text(max) + " seconds, got " +
                               (std::isfinite(value) ? number_text(value) : describe(field.value)));
            return std::nullopt;
        }
        return value;
    }

    std::optional<bool> boolean(const Field& field) {
        if (field.value.kind == Value::Kind::boolean) return field.value.boolean;
        std::string lower = field.value.string;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        bool yaml11 = field.value.kind == Value::Kind::string && (lower == "yes" || lower == "no" || lower == "on" ||
                                                                  lower == "off" || lower == "y" || lower == "n");
        problem(field, "expected boolean, got " + describe(field.value) + (yaml11 ? " (write true or false)" : ""));
        return std::nullopt;
    }

    // An array of strings; `what` names an item in messages ("path").
    std::optional<std::vector<std::string>> strings(const Field& field, const std::string& what) {
        if (!expect(field, Value::Kind::array)) return std::nullopt;
        std::vector<std::string> out;
        bool ok = true;
        for (const auto& item : field.value.array) {
            Field sub{item, field.key, field.label};
            auto text = string(sub);
            if (text && text->empty()) {
                problem(sub, "empty " + what);
                text.reset();
            }
            if (text)
                out.push_back(*text);
            else
                ok = false;
        }
        if (!ok) return std::nullopt;
        return out;
    }

private:
    ConfigErrors& errors_;
};

template <class T>
void store(Setting<T>& setting, std::optional<T> value, const Field& field) {
    if (value) setting.set(std::move(*value), field.value.at.origin());
}

// A key of a section and how to read it into the section's target.
template <class Target>
struct Key {
    std::string_view name;
    void (*read)(Reader&, const Field&, Target&);
};

template <class Target>
std::vector<std::string> names_of(const std::vector<Key<Target>>& keys) {
    std::vector<std::string> out;
    for (const auto& key : keys) out.emplace_back(key.name);
    return out;
}

// ---- value checks shared by several keys ----

bool check_queue_name(Reader& reader, const Field& field, const std::string& name, bool in_list);
std::optional<std::vector<std::string>> read_queues(Reader& reader, const Field& field);
std::optional<std::string> read_loglevel(Reader& reader, const Field& field);
std::optional<std::string> read_template(Reader& reader, const Field& field);
std::optional<std::string> read_url(Reader& reader, const Field& field, const std::vector<std::string>& schemes);
std::optional<std::string> read_account(Reader& reader, const Field& field);
bool valid_env_name(const std::string& name);
void read_env(Reader& reader, const Field& field, NodeSettings& node);
// Watch paths or ignore globs: an array of non-empty strings, or one string (a flag's value).
std::optional<std::vector<std::string>> read_watch_list(Reader& reader, const Field& field, const std::string& what);
// A debounce: seconds (0.3) or a string with a unit ("300ms", "0.3s"), 0 to max_ms; milliseconds.
std::optional<std::int64_t> read_debounce(Reader& reader, const Field& field, std::int64_t max_ms);

}  // namespace ccmulti::config
