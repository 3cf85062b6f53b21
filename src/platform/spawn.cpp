#include "platform/spawn.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include <boost/process/child.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/search_path.hpp>

#include "platform/fd.hpp"
#include "platform/signals.hpp"
#include "util/error.hpp"

namespace bp = boost::process;

namespace ccmulti {

std::optional<std::filesystem::path> find_program(const std::string& name) {
    if (name.empty()) return std::nullopt;
    if (name.find('/') != std::string::npos) {
        if (::access(name.c_str(), X_OK) == 0) return std::filesystem::path(name);
        return std::nullopt;
    }
    auto found = bp::search_path(name);
    if (found.empty()) return std::nullopt;
    return std::filesystem::path(found.string());
}

namespace {

// Everything the child needs, prepared before fork: between fork and exec only async-signal-safe calls run,
// so no allocation, no string building, no logging happens there.
struct Prepared {
    std::string exe;
    std::vector<std::string> strings;  // argv, then env
    std::vector<char*> argv, envp;
    UniqueFd dev_null;
    Pipe setup_error;  // (stage, errno) from a child whose setup failed; EOF at exec (CLOEXEC)
    pid_t parent = 0;
    std::vector<int> blocked;
    sigset_t blocked_set{};
};

enum Stage : int {
    stage_setpgid,
    stage_prctl,
    stage_stdin,
    stage_stdout,
    stage_stderr,
    stage_chdir,
    stage_fcntl,
    stage_setgroups,
    stage_setgid,
    stage_setuid,
    stage_verify_user
};
constexpr const char* stage_names[] = {"setpgid",
                                       "prctl",
                                       "dup2 stdin",
                                       "dup2 stdout",
                                       "dup2 stderr",
                                       "chdir",
                                       "fcntl",
                                       "setgroups",
                                       "setgid",
                                       "setuid",
                                       "dropping privileges did not hold"};

}  // namespace

// Reports a failed setup step in the child and leaves without running any atexit handler or destructor of the
// parent's objects. Not through Boost.Process's set_error: in the child it writes its report in three write(2)
// calls which the parent may read half of. One 8-byte write to a pipe is atomic.
[[noreturn]] void child_fail(const Prepared& p, Stage stage) {
    int report[2] = {stage, errno};
    write_all(p.setup_error.write.get(), report, sizeof report);
    ::_exit(127);
}

// Becomes `user` for good (between fork and exec: syscalls only).
void drop_privileges(const Prepared& p, const Owner& user) {
    if (::setgroups(user.groups.size(), user.groups.data()) != 0) child_fail(p, stage_setgroups);
    if (::setgid(user.gid) != 0) child_fail(p, stage_setgid);
    if (::setuid(user.uid) != 0) child_fail(p, stage_setuid);
    if (::getuid() != user.uid || ::geteuid() != user.uid || ::getgid() != user.gid || ::getegid() != user.gid ||
        (user.uid != 0 && ::setuid(0) == 0)) {
        errno = EPERM;
        child_fail(p, stage_verify_user);
    }

}  // namespace

pid_t spawn(const SpawnOptions& options) {
    auto resolved = find_program(options.program);
    if (!resolved) {
        if (options.program.find('/') != std::string::npos)
            throw Error("cannot run '" + options.program + "': " + std::strerror(errno ? errno : ENOENT));
        throw Error("cannot run '" + options.program + "': not found on PATH");
    }
    Prepared p;
    p.exe = resolved->string();
    p.strings.push_back(options.argv0.value_or(options.program));
    p.strings.insert(p.strings.end(), options.args.begin(), options.args.end());
    p.strings.insert(p.strings.end(), options.env.begin(), options.env.end());
    const std::size_t argc = options.args.size() + 1;
    for (std::size_t i = 0; i < p.strings.size(); ++i) (i < argc ? p.argv : p.envp).push_back(p.strings[i].data());
    p.argv.push_back(nullptr);
    p.envp.push_back(nullptr);
    p.dev_null.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!p.dev_null) throw SystemError("open /dev/null", errno);
    p.setup_error = make_pipe();
    p.parent = ::getpid();
    p.blocked = options.blocked_signals;
    sigemptyset(&p.blocked_set);
    for (int sig : p.blocked) sigaddset(&p.blocked_set, sig);
    const std::string cwd = options.cwd.string();
    const int ceiling = fd_ceiling();

    auto setup = [&p](auto& exec) {  // parent, before fork
        exec.exe = p.exe.c_str();
        exec.cmd_line = p.argv.data();
        exec.env = p.envp.data();
    };
    auto exec_setup = [&p, &options, &cwd, ceiling](auto&) {  // child, after fork: async-signal-safe only
        if (options.cgroup_procs_fd >= 0) (void)!::write(options.cgroup_procs_fd, "0", 1);  // the caller verifies
        if (options.new_process_group && ::setpgid(0, 0) != 0) child_fail(p, stage_setpgid);
        if (options.run_as) drop_privileges(p, *options.run_as);
        if (options.parent_death_signal) {
            if (::prctl(PR_SET_PDEATHSIG, options.parent_death_signal, 0, 0, 0) != 0) child_fail(p, stage_prctl);
            // The parent may have died before prctl: then no signal will ever come.
            if (::getppid() != p.parent) ::_exit(127);
        }
        if (::dup2(p.dev_null.get(), 0) < 0) child_fail(p, stage_stdin);
        if (options.stdout_fd >= 0 && ::dup2(options.stdout_fd, 1) < 0) child_fail(p, stage_stdout);
        if (options.stderr_fd >= 0 && ::dup2(options.stderr_fd, 2) < 0) child_fail(p, stage_stderr);
        if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) child_fail(p, stage_chdir);
        // Another thread of the parent (the master's dashboard: cpp-httplib's accept, hiredis) may have opened an
        // fd without O_CLOEXEC just now: none but pass_fd crosses exec.
        if (!cloexec_from(3, ceiling)) child_fail(p, stage_fcntl);
        if (options.pass_fd >= 0 && ::fcntl(options.pass_fd, F_SETFD, 0) != 0) child_fail(p, stage_fcntl);
        reset_signals_for_exec();
        if (!p.blocked.empty()) ::sigprocmask(SIG_BLOCK, &p.blocked_set, nullptr);
    };

    pid_t pid = -1;
    {
        // No signal may run a handler in the child before it has reset the dispositions.
        BlockAllSignals blocked;
        try {
            bp::child child(bp::extend::on_setup = setup, bp::extend::on_exec_setup = exec_setup);
            pid = child.id();
            child.detach();  // never let Boost.Process wait: our reaper owns this pid
        } catch (const std::system_error& e) {
            throw Error("cannot run '" + options.program + "': " + e.code().message());  // execve failed
        }
    }
    // Boost.Process has waited for exec or exit already, so the pipe holds a report or is at EOF.
    p.setup_error.write.reset();
    int report[2] = {0, 0};
    ssize_t n;
    do n = ::read(p.setup_error.read.get(), report, sizeof report);
    while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof report)) {
        // The child has exited (127); it stays a zombie for the caller's reaper, like any other child.
        std::string what = std::strerror(report[1]);
        if (report[0] == stage_chdir) throw Error("cannot run '" + options.program + "' in " + cwd + ": " + what);
        const char* stage = report[0] >= 0 && report[0] <= stage_verify_user ? stage_names[report[0]] : "setup";
        if (options.run_as && report[0] >= stage_setgroups)
            throw Error("cannot run '" + options.program + "' as " + options.run_as->name + ": " + stage + ": " + what);
        throw Error("cannot run '" + options.program + "': " + stage + ": " + what);
    }
    return pid;
}

}  // namespace ccmulti
