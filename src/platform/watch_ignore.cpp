#include "platform/watch_ignore.hpp"

#include <fnmatch.h>

#include <system_error>

#include "util/error.hpp"

namespace ccmulti {

WatchIgnore WatchIgnore::defaults() {
    WatchIgnore ignore;
    for (const char* glob : {".git", ".hg", ".svn", "__pycache__", "*.pyc", "*.pyo", "*.swp", "*.swx", "*~", ".#*",
                             "#*#", "4913", "*___jb_tmp___", "*___jb_old___", "*.tmp", "build*/"})
        ignore.add_glob(glob);
    return ignore;
}

void WatchIgnore::add_glob(const std::string& pattern) {
    if (pattern.empty()) throw UsageError("an ignore pattern must not be empty");
    Rule rule{pattern, pattern, Kind::name, false};
    while (rule.glob.size() > 1 && rule.glob.back() == '/') {
        rule.dirs_only = true;
        rule.glob.pop_back();
    }
    if (rule.glob.front() == '/')
        rule.kind = Kind::absolute;
    else if (rule.glob.find('/') != std::string::npos)
        rule.kind = Kind::relative;
    rules_.push_back(std::move(rule));
}

std::string WatchIgnore::path_pattern(const std::filesystem::path& path, const std::string& glob_in_name) {
    std::error_code error;
    auto resolved = std::filesystem::weakly_canonical(std::filesystem::absolute(path), error);
    if (error) resolved = std::filesystem::absolute(path).lexically_normal();
    std::string escaped;
    for (char c : resolved.string()) {
        if (c == '*' || c == '?' || c == '[' || c == '\\') escaped += '\\';
        escaped += c;
    }
    if (!glob_in_name.empty()) escaped += (escaped.ends_with('/') ? "" : "/") + glob_in_name;
    return escaped;
}

void WatchIgnore::add_path(const std::filesystem::path& path) {
    add_glob(path_pattern(path));
}

bool WatchIgnore::ignored(const std::filesystem::path& relative, const std::filesystem::path& absolute,
                          bool is_dir) const {
    // Every prefix of `relative` is an entry that can be ignored: "a", "a/b", "a/b/c.py"; all but the last
    // are directories. The absolute path of a prefix drops as many trailing names from `absolute`.
    std::vector<std::filesystem::path> names(relative.begin(), relative.end());
    std::filesystem::path prefix;
    for (std::size_t i = 0; i < names.size(); ++i) {
        prefix /= names[i];
        const bool dir = i + 1 < names.size() || is_dir;
        std::filesystem::path absolute_prefix = absolute;
        for (std::size_t up = i + 1; up < names.size(); ++up) absolute_prefix = absolute_prefix.parent_path();
        for (const auto& rule : rules_) {
            if (rule.dirs_only && !dir) continue;
            const std::string subject = rule.kind == Kind::name       ? names[i].string()
                                        : rule.kind == Kind::relative ? prefix.string()
                                                                      : absolute_prefix.string();
            if (::fnmatch(rule.glob.c_str(), subject.c_str(), rule.kind == Kind::name ? 0 : FNM_PATHNAME) == 0)
                return true;
        }
    }
    return false;
}

std::vector<std::string> WatchIgnore::patterns() const {
    std::vector<std::string> out;
    out.reserve(rules_.size());
    for (const auto& rule : rules_) out.push_back(rule.given);
    return out;
}

}  // namespace ccmulti
