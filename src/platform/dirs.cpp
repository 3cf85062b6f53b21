#include "platform/dirs.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdlib>

#include "util/error.hpp"

namespace fs = std::filesystem;

namespace ccmulti {

std::optional<std::string> real_getenv(const char* name) {
    const char* value = std::getenv(name);
    if (!value || !*value) return std::nullopt;
    return std::string(value);
}

std::string dir_fix_hint(const std::string& kind) {
    std::string upper;
    for (char c : kind) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return "--" + kind + "-dir DIR or CCMULTI_" + upper + "_DIR";
}

namespace {

std::string user_name(uid_t uid) {
    if (const passwd* pw = getpwuid(uid)) return pw->pw_name;
    return "uid " + std::to_string(uid);
}

struct Defaults {
    Dir run, log, state;
};

Defaults default_dirs(uid_t uid, const Getenv& getenv) {
    if (uid == 0)
        return {{"run", "/run/ccmulti", "default for root"},
                {"log", "/var/log/ccmulti", "default for root"},
                {"state", "/var/lib/ccmulti", "default for root"}};
    Dir run{"run", "/tmp/ccmulti-" + std::to_string(uid), "default (no $XDG_RUNTIME_DIR)"};
    if (auto xdg = getenv("XDG_RUNTIME_DIR")) run = {"run", fs::path(*xdg) / "ccmulti", "$XDG_RUNTIME_DIR/ccmulti"};
    fs::path state_home;
    std::string state_origin;
    if (auto xdg = getenv("XDG_STATE_HOME")) {
        state_home = *xdg;
        state_origin = "$XDG_STATE_HOME/ccmulti";
    } else if (auto home = getenv("HOME")) {
        state_home = fs::path(*home) / ".local/state";
        state_origin = "~/.local/state/ccmulti";
    } else {
        state_home = "/tmp/ccmulti-" + std::to_string(uid) + "-state";
        state_origin = "default (no $HOME)";
    }
    return {run, {"log", state_home / "ccmulti/log", state_origin + "/log"},
            {"state", state_home / "ccmulti", state_origin}};
}

}  // namespace

Dirs resolve_dirs(const std::vector<DirLayer>& layers, uid_t uid, const Getenv& getenv, const fs::path& base) {
    Defaults defaults = default_dirs(uid, getenv);
    auto pick = [&](const std::string& kind, std::optional<std::string> DirLayer::*field,
                                const char* env_name, const Dir& fallback) -> Dir {
        for (const auto& layer : layers)
            if (layer.*field) {
                std::string origin = layer.origin.empty() ? "--" + kind + "-dir" : layer.origin;
                return {kind, (base / *(layer.*field)).lexically_normal(), origin};
            }
        if (auto value = getenv(env_name)) return {kind, (base / *value).lexically_normal(), std::string("$") + env_name};
        return fallback;
    };
    return {pick("run", &DirLayer::run, "CCMULTI_RUN_DIR", defaults.run),
            pick("log", &DirLayer::log, "CCMULTI_LOG_DIR", defaults.log),
            pick("state", &DirLayer::state, "CCMULTI_STATE_DIR", defaults.state)};
}

bool ensure_private_dir(const Dir& dir) {
    const std::string where = dir.kind + " dir " + dir.path.string() + " (from " + dir.origin + ")";
    const std::string fix = "; choose another with " + dir_fix_hint(dir.kind);
    struct stat st {};
    bool created = false;
    if (lstat(dir.path.c_str(), &st) != 0) {
        if (errno != ENOENT) throw SystemError("cannot use " + where, errno);
        // Parents are ordinary directories (0755 less umask); only the leaf is private.
        std::error_code ec;
        fs::create_directories(dir.path.parent_path(), ec);
        if (ec) throw Error("cannot create " + where + ": " + ec.message() + fix, Exit::failure);
        if (mkdir(dir.path.c_str(), 0700) != 0 && errno != EEXIST)
            throw Error("cannot create " + where + ": " + std::strerror(errno) + fix, Exit::failure);
        if (lstat(dir.path.c_str(), &st) != 0) throw SystemError("cannot use " + where, errno);
        created = true;
    }
    if (S_ISLNK(st.st_mode))
        throw Error("refusing " + where + ": it is a symlink, which could redirect pid files elsewhere" + fix,
                    Exit::failure);
    if (!S_ISDIR(st.st_mode)) throw Error("refusing " + where + ": not a directory" + fix, Exit::failure);
    if (st.st_uid != geteuid())
        throw Error("refusing " + where + ": owned by " + user_name(st.st_uid) + ", not by you (" +
                        user_name(geteuid()) + ")" + fix,
                    Exit::failure);
    return created;
}

void check_file_location(const fs::path& file, const std::string& flag, const Dir& fallback) {
    fs::path dir = file.parent_path();
    if (dir.empty()) dir = ".";
    fs::path existing = dir;
    while (!existing.empty() && access(existing.c_str(), F_OK) != 0) existing = existing.parent_path();
    if (existing.empty()) existing = ".";
    if (access(existing.c_str(), W_OK | X_OK) == 0) return;
    std::string why = existing == dir ? dir.string() + " is not writable by " + user_name(geteuid())
                                      : dir.string() + " does not exist and " + user_name(geteuid()) +
                                            " cannot create it (" + existing.string() + " is not writable)";
    throw Error("cannot use " + flag + " " + file.string() + ": " + why + "; drop " + flag + " to use the " +
                    fallback.kind + " dir " + fallback.path.string() + ", or choose another with " +
                    dir_fix_hint(fallback.kind),
                Exit::failure);
}

}  // namespace ccmulti
