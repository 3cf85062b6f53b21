#include "platform/dirs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

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

bool can_create(const fs::path& path) {
    fs::path existing = path;
    while (!existing.empty() && ::access(existing.c_str(), F_OK) != 0) existing = existing.parent_path();
    if (existing.empty()) existing = ".";
    return ::access(existing.c_str(), W_OK | X_OK) == 0;
}

namespace {

struct Defaults {
    Dir run, log, state;
};

Defaults default_dirs(uid_t uid, const Getenv& getenv, const CanCreate& creatable) {
    if (uid == 0)
        return {{"run", "/run/ccmulti", "default for root"},
                {"log", "/var/log/ccmulti", "default for root"},
                {"state", "/var/lib/ccmulti", "default for root"}};
    const std::string id = std::to_string(uid);
    Dir run{"run", "/tmp/ccmulti-" + id, "default (no $XDG_RUNTIME_DIR)"};
    if (auto xdg = getenv("XDG_RUNTIME_DIR")) run = {"run", fs::path(*xdg) / "ccmulti", "$XDG_RUNTIME_DIR/ccmulti"};
    if (auto xdg = getenv("XDG_STATE_HOME"))
        return {run,
                {"log", fs::path(*xdg) / "ccmulti/log", "$XDG_STATE_HOME/ccmulti/log"},
                {"state", fs::path(*xdg) / "ccmulti", "$XDG_STATE_HOME/ccmulti"}};
    auto home = getenv("HOME");
    if (home && creatable(fs::path(*home) / ".local/state/ccmulti"))
        return {run,
                {"log", fs::path(*home) / ".local/state/ccmulti/log", "~/.local/state/ccmulti/log"},
                {"state", fs::path(*home) / ".local/state/ccmulti", "~/.local/state/ccmulti"}};
    // A system user: no home, or one it cannot write (/nonexistent). /var/tmp survives a reboot, as a queue must.
    const std::string why = home ? "default ($HOME " + *home + " is not writable)" : "default (no $HOME)";
    const fs::path fallback = "/var/tmp/ccmulti-" + id;
    return {run, {"log", fallback / "log", why}, {"state", fallback, why}};
}

}  // namespace

Dirs resolve_dirs(const std::vector<DirLayer>& layers, uid_t uid, const Getenv& getenv, const fs::path& base,
                  const CanCreate& creatable) {
    Defaults defaults = default_dirs(uid, getenv, creatable);
    auto pick = [&](const std::string& kind, std::optional<std::string> DirLayer::*field, const char* env_name,
                    const Dir& fallback) -> Dir {
        for (const auto& layer : layers)
            if (layer.*field) {
                std::string origin = layer.origin.empty() ? "--" + kind + "-dir" : layer.origin;
                return {kind, (base / *(layer.*field)).lexically_normal(), origin};
            }
        if (auto value = getenv(env_name))
            return {kind, (base / *value).lexically_normal(), std::string("$") + env_name};
        return fallback;
    };
    return {pick("run", &DirLayer::run, "CCMULTI_RUN_DIR", defaults.run),
            pick("log", &DirLayer::log, "CCMULTI_LOG_DIR", defaults.log),
            pick("state", &DirLayer::state, "CCMULTI_STATE_DIR", defaults.state)};
}

namespace {

// Creates the missing parents of `path` with `parent_mode` (owned by whoever creates them: root's for
// /var/run/celery's parent), then `path` itself with `mode`, owned by `owner`. Returns errno, 0 on success.
int make_dirs(const fs::path& path, mode_t mode, mode_t parent_mode, const std::optional<Owner>& owner, bool& created) {
    std::vector<fs::path> missing;
    for (fs::path p = path; !p.empty() && ::access(p.c_str(), F_OK) != 0; p = p.parent_path()) {
        missing.push_back(p);
        if (p == p.parent_path()) break;
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        const bool leaf = *it == path;
        if (::mkdir(it->c_str(), leaf ? mode : parent_mode) != 0 && errno != EEXIST) return errno;
        if (leaf) {
            created = true;
            if (owner && ::chown(it->c_str(), owner->uid, owner->gid) != 0) return errno;
        }
    }
    return 0;
}

// The fixes for a directory this user cannot create, for the message: systemd, tmpfiles.d, ccmulti dirs.
std::string dir_fixes(const FileDir& file_dir, const std::string& user) {
    const fs::path& dir = file_dir.path;
    struct Managed {
        const char* prefix;
        const char* directive;
    };
    std::string fixes;
    const std::string text = dir.lexically_normal().string();
    for (const Managed& m : {Managed{"/run/", "RuntimeDirectory"}, Managed{"/var/run/", "RuntimeDirectory"},
                             Managed{"/var/log/", "LogsDirectory"}, Managed{"/var/lib/", "StateDirectory"}})
        if (text.starts_with(m.prefix) && text.size() > std::strlen(m.prefix))
            fixes = std::string(m.directive) + "=" + text.substr(std::strlen(m.prefix)) + " in the systemd unit, or ";
    const std::string tmpfiles_path = text.starts_with("/var/run/") ? "/run/" + text.substr(9) : text;
    return fixes + "the tmpfiles.d line 'd " + tmpfiles_path + " 0755 " + user + " " + user +
           " -', or once as root: ccmulti dirs --create --owner " + user + " " + file_dir.node + " " + file_dir.flag +
           "=" + file_dir.file.string();
}

}  // namespace

bool ensure_private_dir(const Dir& dir, const std::optional<Owner>& owner) {
    const std::string where = dir.kind + " dir " + dir.path.string() + " (from " + dir.origin + ")";
    const std::string fix = "; choose another with " + dir_fix_hint(dir.kind);
    struct stat st {};
    bool created = false;
    if (::lstat(dir.path.c_str(), &st) != 0) {
        if (errno != ENOENT) throw SystemError("cannot use " + where, errno);
        // Private all the way: ~/.local/state/ccmulti is both the state dir and the log dir's parent.
        if (int error = make_dirs(dir.path, 0700, 0700, owner, created); error != 0)
            throw Error("cannot create " + where + ": " + std::strerror(error) + fix, Exit::failure);
        if (::lstat(dir.path.c_str(), &st) != 0) throw SystemError("cannot use " + where, errno);
    }
    if (S_ISLNK(st.st_mode))
        throw Error("refusing " + where + ": it is a symlink, which could redirect pid files elsewhere" + fix,
                    Exit::failure);
    if (!S_ISDIR(st.st_mode)) throw Error("refusing " + where + ": not a directory" + fix, Exit::failure);
    if (st.st_uid != ::geteuid() && !(owner && st.st_uid == owner->uid))
        throw Error("refusing " + where + ": owned by " + user_name(st.st_uid) + ", not by you (" +
                        user_name(::geteuid()) + ")" + fix,
                    Exit::failure);
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        throw Error("refusing " + where + ": others can write to it (mode " + mode +
                        "), so they could plant pid files or sockets; chmod go-w " + dir.path.string() + ", or" +
                        fix.substr(1),
                    Exit::failure);
    }
    return created;
}

namespace {

[[noreturn]] void cannot_create(const FileDir& dir, const std::string& why, const std::string& user) {
    throw Error("cannot use " + dir.flag + " " + dir.file.string() + ": " + why + "; fix: " + dir_fixes(dir, user) +
                    "; or drop " + dir.flag + " to use the " + dir.fallback.kind + " dir " +
                    dir.fallback.path.string() + " (" + dir_fix_hint(dir.fallback.kind) + ")",
                Exit::failure);
}

std::string why_not_creatable(const fs::path& dir, const std::string& user) {
    fs::path existing = dir;
    while (!existing.empty() && ::access(existing.c_str(), F_OK) != 0) existing = existing.parent_path();
    if (existing == dir) return dir.string() + " is not writable by " + user;
    return dir.string() + " does not exist and " + user + " cannot create it (" + existing.string() +
           " is not writable)";
}

}  // namespace

void check_file_dir(const FileDir& dir) {
    const fs::path path = dir.path.empty() ? fs::path(".") : dir.path;
    if (!can_create(path) || (::access(path.c_str(), F_OK) == 0 && ::access(path.c_str(), W_OK | X_OK) != 0))
        cannot_create(dir, why_not_creatable(path, user_name(::geteuid())), user_name(::geteuid()));
}

bool ensure_file_dir(const FileDir& dir, const std::optional<Owner>& owner) {
    const fs::path path = dir.path.empty() ? fs::path(".") : dir.path;
    const std::string user = owner ? owner->name : user_name(::geteuid());
    bool created = false;
    if (::access(path.c_str(), F_OK) != 0) {
        if (int error = make_dirs(path, 0755, 0755, owner, created); error != 0) {
            if (error == EACCES || error == EROFS || error == EPERM)
                cannot_create(dir, why_not_creatable(path, user_name(::geteuid())), user);
            throw Error("cannot create " + path.string() + " for " + dir.flag + " " + dir.file.string() + ": " +
                            std::strerror(error),
                        Exit::failure);
        }
    }
    if (!owner && ::access(path.c_str(), W_OK | X_OK) != 0)
        cannot_create(dir, path.string() + " is not writable by " + user, user);
    return created;
}

}  // namespace ccmulti
