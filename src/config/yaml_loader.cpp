// YAML → document tree, with yaml-cpp (positions from each node's Mark, 0-based there, 1-based here).
// yaml-cpp keeps scalars as text: plain ones are typed here by the YAML 1.2 core schema, quoted and block
// ones are strings, so `concurrency: "4"` is a string in YAML exactly as in TOML.
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <sstream>

#include "config/loader.hpp"

namespace ccmulti::config {

namespace {

constexpr std::string_view core_tag = "tag:yaml.org,2002:";

class YamlConverter {
public:
    YamlConverter(const std::string& file, ConfigErrors& errors) : file_(file), errors_(errors) {}

    Location at(const YAML::Mark& mark) const {
        if (mark.line < 0) return {file_, 0, 0};
        return {file_, mark.line + 1, mark.column + 1};
    }

    // Nothing comes back for a value past the depth or size guards (alias bombs); that has been reported.
    std::optional<Value> convert(const YAML::Node& node, int depth) {
        Value value;
        value.at = at(node.Mark());
        if (depth > max_depth || ++count_ > max_values) {
            if (!guard_reported_) errors_.add(value.at, "document nested too deeply or too large");
            guard_reported_ = true;
            return std::nullopt;
        }
        switch (node.Type()) {
            case YAML::NodeType::Undefined:
            case YAML::NodeType::Null:
                break;
            case YAML::NodeType::Scalar:
                return scalar(node, value.at);
            case YAML::NodeType::Sequence:
                value.kind = Value::Kind::array;
                for (const auto& child : node) {
                    auto converted = convert(child, depth + 1);
                    if (!converted) return std::nullopt;
                    value.array.push_back(std::move(*converted));
                }
                break;
            case YAML::NodeType::Map:
                value.kind = Value::Kind::table;
                for (const auto& pair : node) {
                    Location key_at = at(pair.first.Mark());
                    if (!pair.first.IsScalar()) {
                        errors_.add(key_at, "keys must be plain strings");
                        continue;
                    }
                    std::string key = pair.first.Scalar();
                    if (!valid_utf8(key)) {
                        errors_.add(key_at, "key is not valid UTF-8");
                        continue;
                    }
                    if (key == "<<" && pair.first.Tag() == "?") {
                        errors_.add(key_at,
                                    "YAML merge keys (<<) are not supported; use [defaults] for shared settings");
                        continue;
                    }
                    auto converted = convert(pair.second, depth + 1);
                    if (!converted) return std::nullopt;
                    value.table.push_back({std::move(key), key_at, std::move(*converted)});
                }
                break;
        }
        return value;
    }

private:
    Value scalar(const YAML::Node& node, const Location& where) {
        const std::string& tag = node.Tag();
        const std::string& text = node.Scalar();
        if (!valid_utf8(text)) {
            errors_.add(where, "not valid UTF-8");
            Value null;
            null.at = where;
            return null;
        }
        if (tag == "!" || tag == std::string(core_tag) + "str") {  // quoted, block or !!str: a string
            Value value;
            value.kind = Value::Kind::string;
            value.string = text;
            value.at = where;
            return value;
        }
        Value value = plain_scalar(text, where, errors_);
        if (tag == "?" || tag.empty()) return value;
        // !!int, !!float, !!bool, !!null: the text must be what the tag says.
        static const std::vector<std::pair<std::string, Value::Kind>> tags = {{"int", Value::Kind::integer},
                                                                              {"float", Value::Kind::floating},
                                                                              {"bool", Value::Kind::boolean},
                                                                              {"null", Value::Kind::null}};
        for (const auto& [name, kind] : tags) {
            if (tag != std::string(core_tag) + name) continue;
            if (kind == Value::Kind::floating && value.kind == Value::Kind::integer) {
                value.kind = kind;
                value.floating = static_cast<double>(value.integer);
            }
            if (value.kind != kind) errors_.add(where, "'" + text + "' is not a valid !!" + name);
            return value;
        }
        errors_.add(where, "unsupported YAML tag '" + tag + "'");
        return value;
    }

    const std::string& file_;
    ConfigErrors& errors_;
    std::size_t count_ = 0;
    bool guard_reported_ = false;
};

// Where each document of a stream starts, for at most `limit` documents. yaml-cpp 0.7's LoadAll never
// returns on some malformed streams (a stray ',' at the top level yields empty documents forever, found by
// the fuzzer), so documents are counted here with a bound before the first one is loaded.
class DocumentStarts : public YAML::EventHandler {
public:
    std::vector<YAML::Mark> marks;

    void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
};

std::vector<YAML::Mark> document_starts(const std::string& text, std::size_t limit) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentStarts starts;
    while (starts.marks.size() < limit && parser.HandleNextDocument(starts)) {
    }
    return starts.marks;
}

}  // namespace

std::optional<Value> parse_yaml_document(std::string_view text, const std::string& file, ConfigErrors& errors) {
    YamlConverter converter(file, errors);
    const std::string source(text);
    YAML::Node document;
    try {
        auto starts = document_starts(source, 2);
        if (starts.empty()) {
            Value empty;
            empty.at = {file, 1, 1};
            return empty;
        }
        if (starts.size() > 1) {
            // A real second document starts with '---'; anything else is a character the parser could not place.
            auto pos = static_cast<std::size_t>(starts[1].pos);
            if (source.compare(pos, 3, "---") == 0) {
                errors.add(converter.at(starts[1]), "more than one YAML document; ccmulti reads a single one");
            } else {
                std::string found = pos < source.size() ? std::string(1, source[pos]) : "end of file";
                errors.add(converter.at(starts[1]), "YAML syntax error: unexpected '" + found + "'");
            }
            return std::nullopt;
        }
        document = YAML::Load(source);
    } catch (const YAML::Exception& e) {
        errors.add(converter.at(e.mark), "YAML syntax error: " + e.msg);
        return std::nullopt;
    }
    try {
        auto root = converter.convert(document, 0);
        if (root && root->kind == Value::Kind::null) root->at = {file, 1, 1};
        return root;
    } catch (const YAML::Exception& e) {
        errors.add(converter.at(e.mark), "YAML error: " + e.msg);
        return std::nullopt;
    }
}

}  // namespace ccmulti::config
