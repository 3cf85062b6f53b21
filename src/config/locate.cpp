#include "config/locate.hpp"

#include "util/error.hpp"

namespace fs = std::filesystem;

namespace ccmulti::config {

namespace {

bool file_exists(const fs::path& path) {
    std::error_code ec;
    return fs::exists(path, ec);
}

std::optional<std::string> get(const Environment& env, const std::string& name) {
    auto it = env.find(name);
    if (it == env.end() || it->second.empty()) return std::nullopt;
    return it->second;
}

}  // namespace

std::vector<fs::path> search_path(const Environment& env, const fs::path& cwd) {
    std::vector<fs::path> places = {cwd / "ccmulti.toml", cwd / "ccmulti.yaml"};
    std::optional<fs::path> xdg;
    if (auto dir = get(env, "XDG_CONFIG_HOME"))
        xdg = fs::path(*dir);
    else if (auto home = get(env, "HOME"))
        xdg = fs::path(*home) / ".config";
    if (xdg) {
        places.push_back(*xdg / "ccmulti/ccmulti.toml");
        places.push_back(*xdg / "ccmulti/ccmulti.yaml");
    }
    places.emplace_back("/etc/ccmulti/ccmulti.toml");
    places.emplace_back("/etc/ccmulti/ccmulti.yaml");
    return places;
}

std::optional<ConfigFile> locate_config(const std::optional<std::string>& flag, const Environment& env,
                                        const fs::path& cwd, std::vector<std::string>& warnings) {
    auto named = [&](const std::string& given, const std::string& origin) {
        fs::path path = cwd / given;
        if (!file_exists(path))
            throw UsageError("configuration file " + given + " (from " + origin + ") does not exist");
        return ConfigFile{path, given, origin};
    };
    if (flag) return named(*flag, "-C");
    if (auto var = get(env, "CCMULTI_CONFIG")) return named(*var, "$CCMULTI_CONFIG");

    auto places = search_path(env, cwd);
    for (std::size_t i = 0; i < places.size(); ++i) {
        if (!file_exists(places[i])) continue;
        // ccmulti.toml and ccmulti.yaml come in pairs: say which of a pair wins.
        if (i % 2 == 0 && file_exists(places[i + 1]))
            warnings.push_back("both " + places[i].string() + " and " + places[i + 1].string() + " exist; reading " +
                               places[i].filename().string() + " only");
        std::string name = places[i].parent_path() == cwd ? places[i].filename().string() : places[i].string();
        return ConfigFile{places[i], name, "search"};
    }
    return std::nullopt;
}

}  // namespace ccmulti::config
