// Where ccmulti keeps its files, resolved in one place.
//
//   run dir    pid files, the control socket   --run-dir   $CCMULTI_RUN_DIR   /run/ccmulti  | $XDG_RUNTIME_DIR/ccmulti,
//   /tmp/ccmulti-$UID log dir    node and master logs            --log-dir   $CCMULTI_LOG_DIR   /var/log/ccmulti |
//   $XDG_STATE_HOME/ccmulti/log state dir  the embedded broker database    --state-dir $CCMULTI_STATE_DIR
//   /var/lib/ccmulti | $XDG_STATE_HOME/ccmulti
//
// (root | normal user). A normal user's log and state dirs need no home: without $XDG_STATE_HOME and a writable
// $HOME (a system user's home is often /nonexistent) they are /var/tmp/ccmulti-$UID/log and /var/tmp/ccmulti-$UID
// (kept across reboots, unlike /tmp). The first layer that sets a directory wins; each Dir remembers which one did,
// so `ccmulti dirs` and error messages can say where a path came from and which flag changes it.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "platform/users.hpp"

namespace ccmulti {

struct Dir {
    std::string kind;  // "run", "log", "state"
    std::filesystem::path path;
    std::string origin;  // "--run-dir", "$CCMULTI_RUN_DIR", "ccmulti.toml:3", "default"
};

struct Dirs {
    Dir run, log, state;
};

// One source of settings, e.g. the command line or a config file.
struct DirLayer {
    std::optional<std::string> run, log, state;
    std::string origin;  // e.g. "ccmulti.toml:3"; empty for the command line, where the flag itself is named
};

using Getenv = std::function<std::optional<std::string>(const char*)>;
std::optional<std::string> real_getenv(const char* name);

// Whether this process could create `path` (it exists and is writable, or its nearest existing parent is).
using CanCreate = std::function<bool(const std::filesystem::path&)>;
bool can_create(const std::filesystem::path& path);

// `layers` in precedence order (command line first); the environment and defaults come after them.
// Relative paths are made absolute against `base`.
Dirs resolve_dirs(const std::vector<DirLayer>& layers, uid_t uid, const Getenv& getenv,
                  const std::filesystem::path& base, const CanCreate& creatable = can_create);

// Creates `dir` 0700 when missing (its parents 0755), owned by `owner` when given. Refuses a symlink, a
// non-directory, or a directory owned by anyone but this user (or `owner`). Errors name the path, the reason,
// and the flag or variable that changes it. Returns true when created.
bool ensure_private_dir(const Dir& dir, const std::optional<Owner>& owner = std::nullopt);

// A directory that a pid or log file named by the user (--pidfile, --logfile) lives in.
struct FileDir {
    std::filesystem::path path;
    std::string flag;            // "--pidfile"
    std::filesystem::path file;  // "/var/run/celery/w1.pid", for messages
    Dir fallback;                // the dir used without the flag
    std::string node;            // "w1@host", for the `ccmulti dirs --create` line of a message
};

// Creates `dir.path` (and its parents) 0755 when missing, owned by `owner` when given, as celery multi creates
// its pid and log dirs. When this user cannot, throws Error naming the directory, why, and the fixes: a
// systemd RuntimeDirectory=/LogsDirectory=/StateDirectory= line, a tmpfiles.d line, `ccmulti dirs --create
// --owner USER` run once as root, or another dir. Returns true when created.
bool ensure_file_dir(const FileDir& dir, const std::optional<Owner>& owner = std::nullopt);

// Checks, without creating anything, what ensure_file_dir would do: throws the same error when it would fail.
void check_file_dir(const FileDir& dir);

// The flag and the environment variable that set a kind of directory: "--run-dir or $CCMULTI_RUN_DIR".
std::string dir_fix_hint(const std::string& kind);

}  // namespace ccmulti
