// Where ccmulti keeps its files, resolved in one place.
//
//   run dir    pid files, the control socket   --run-dir   $CCMULTI_RUN_DIR   /run/ccmulti  | $XDG_RUNTIME_DIR/ccmulti, /tmp/ccmulti-$UID
//   log dir    node and master logs            --log-dir   $CCMULTI_LOG_DIR   /var/log/ccmulti | $XDG_STATE_HOME/ccmulti/log
//   state dir  the embedded broker database    --state-dir $CCMULTI_STATE_DIR /var/lib/ccmulti | $XDG_STATE_HOME/ccmulti
//
// (root | normal user). The first layer that sets a directory wins; each Dir remembers which one did, so
// `ccmulti dirs` and error messages can say where a path came from and which flag changes it.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

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

// `layers` in precedence order (command line first); the environment and defaults come after them.
// Relative paths are made absolute against `base`.
Dirs resolve_dirs(const std::vector<DirLayer>& layers, uid_t uid, const Getenv& getenv,
                  const std::filesystem::path& base);

// Creates `dir` 0700 when missing. Refuses a symlink, a non-directory, or a directory owned by another user.
// Errors name the path, the reason, and the flag or variable that changes it. Returns true when created.
bool ensure_private_dir(const Dir& dir);

// Checks that `file` (a pid or log file a user asked for) can be created: its directory exists and is
// writable, or can be created. `flag` is the option that named it, `fallback` the dir used without it.
void check_file_location(const std::filesystem::path& file, const std::string& flag, const Dir& fallback);

// The flag and the environment variable that set a kind of directory: "--run-dir or $CCMULTI_RUN_DIR".
std::string dir_fix_hint(const std::string& kind);

}  // namespace ccmulti
