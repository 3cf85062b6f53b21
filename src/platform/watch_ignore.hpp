// Which paths below a watched directory are not code: a change there must not reload anything, and an ignored
// directory is not even watched (a `.git` or a build tree can hold more directories than the inotify limit
// allows). Patterns are globs matched by fnmatch(3), with gitignore's most used shapes:
//
//   *.pyc  .git  4913    no '/': any one name on the path below the root; an ignored directory hides its contents
//   build*/              a trailing '/': directories only
//   docs/*.md            a '/' inside: the path relative to the watched root ('*' does not cross '/')
//   /var/log/ccmulti     a leading '/': the absolute path (symlinks resolved); ccmulti's own run, log and state
//                        files are added this way by add_path, so a node's log inside the project never reloads it
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace ccmulti {

class WatchIgnore {
public:
    // Version control, Python bytecode, editor droppings (vim's swap, backup and "4913" write probe, emacs locks
    // and autosaves, JetBrains' safe-write copies), temporary files and build trees.
    static WatchIgnore defaults();

    // A glob as above. Throws UsageError for an empty one.
    void add_glob(const std::string& pattern);
    // A path taken literally (no glob characters): it and everything below it. Made absolute and resolved
    // (std::filesystem::weakly_canonical) so it compares with the resolved paths FileWatch matches.
    void add_path(const std::filesystem::path& path);
    // The absolute pattern add_path adds for `path` (resolved, glob characters escaped), and `glob_in_name`
    // appended unescaped ("*.log" → "/var/log/ccmulti/*.log"): for callers that pass patterns on as text.
    static std::string path_pattern(const std::filesystem::path& path, const std::string& glob_in_name = "");

    // `relative`: an entry below a watched root, lexically normal and not empty; `absolute`: the same entry under
    // the root's resolved path; `is_dir`: whether the entry itself is a directory (its parents are).
    bool ignored(const std::filesystem::path& relative, const std::filesystem::path& absolute, bool is_dir) const;

    // The patterns as given (add_path's escaped), for `--help`-style listings and logs.
    std::vector<std::string> patterns() const;

private:
    enum class Kind { name, relative, absolute };
    struct Rule {
        std::string given, glob;
        Kind kind;
        bool dirs_only;
    };
    std::vector<Rule> rules_;
};

}  // namespace ccmulti
