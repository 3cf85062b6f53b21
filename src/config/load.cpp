#include "config/load.hpp"

#include "config/loader.hpp"
#include "platform/read_file.hpp"

namespace ccmulti::config {

Settings read_config_file(const ConfigFile& file, ConfigErrors& errors) {
    Settings empty;
    empty.file = file.name;
    auto format = format_of(file.path);
    if (!format) {
        errors.add(file.name + ": cannot tell the format; name the file .toml, .yaml or .yml");
        return empty;
    }
    std::string text;
    try {
        text = read_text_file(file.path, max_config_size);
    } catch (const Error& e) {
        errors.add(std::string(e.what()));
        return empty;
    }
    return parse_config(text, file.name, *format, errors);
}

Loaded load_config_file(const ConfigFile& file, const Environment& env) {
    Loaded loaded;
    loaded.file = file;
    loaded.settings = builtin_settings();
    overlay(loaded.settings, read_config_file(file, loaded.errors));
    overlay(loaded.settings, read_environment(env, loaded.errors, loaded.warnings));
    return loaded;
}

Loaded load_config(const std::optional<std::string>& flag, const Environment& env, const std::filesystem::path& cwd) {
    std::vector<std::string> warnings;
    auto file = locate_config(flag, env, cwd, warnings);
    if (file) {
        Loaded loaded = load_config_file(*file, env);
        loaded.warnings.insert(loaded.warnings.begin(), warnings.begin(), warnings.end());
        return loaded;
    }
    Loaded loaded;
    loaded.warnings = warnings;
    loaded.settings = builtin_settings();
    overlay(loaded.settings, read_environment(env, loaded.errors, loaded.warnings));
    return loaded;
}

}  // namespace ccmulti::config
