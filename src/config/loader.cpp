#include "config/loader.hpp"

#include "config/schema.hpp"

namespace ccmulti::config {

std::optional<Format> format_of(const std::filesystem::path& path) {
    auto ext = path.extension().string();
    if (ext == ".toml") return Format::toml;
    if (ext == ".yaml" || ext == ".yml") return Format::yaml;
    return std::nullopt;
}

Settings parse_config(std::string_view text, const std::string& file, Format format, ConfigErrors& errors) {
    auto document =
        format == Format::toml ? parse_toml_document(text, file, errors) : parse_yaml_document(text, file, errors);
    if (!document) {
        Settings empty;
        empty.file = file;
        return empty;
    }
    return read_settings(*document, errors);
}

Settings parse_config(std::string_view text, const std::string& file, Format format) {
    ConfigErrors errors;
    Settings settings = parse_config(text, file, format, errors);
    errors.throw_if_any();
    return settings;
}

}  // namespace ccmulti::config
