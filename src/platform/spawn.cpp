#include "platform/spawn.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
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
    pid_t parent = 0;
};

// Reports a failure in the child through Boost.Process's error pipe, then leaves without running any
// atexit handler or destructor of the parent's objects.
template <typename Executor>
[[noreturn]] void child_fail(Executor& exec, const char* what) {
    exec.set_error(std::error_code(errno, std::system_category()), what);
    ::_exit(127);
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
    p.parent = ::getpid();
    const std::string cwd = options.cwd.string();

    auto setup = [&p](auto& exec) {  // parent, before fork
        exec.exe = p.exe.c_str();
        exec.cmd_line = p.argv.data();
        exec.env = p.envp.data();
    };
    auto exec_setup = [&p, &options, &cwd](auto& exec) {  // child, after fork: async-signal-safe only
        if (options.new_process_group && ::setpgid(0, 0) != 0) child_fail(exec, "setpgid");
        if (options.parent_death_signal) {
            if (::prctl(PR_SET_PDEATHSIG, options.parent_death_signal, 0, 0, 0) != 0) child_fail(exec, "prctl");
            // The parent may have died before prctl: then no signal will ever come.
            if (::getppid() != p.parent) ::_exit(127);
        }
        if (::dup2(p.dev_null.get(), 0) < 0) child_fail(exec, "dup2 stdin");
        if (options.stdout_fd >= 0 && ::dup2(options.stdout_fd, 1) < 0) child_fail(exec, "dup2 stdout");
        if (options.stderr_fd >= 0 && ::dup2(options.stderr_fd, 2) < 0) child_fail(exec, "dup2 stderr");
        if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) child_fail(exec, "chdir");
        if (options.pass_fd >= 0 && ::fcntl(options.pass_fd, F_SETFD, 0) != 0) child_fail(exec, "fcntl");
        reset_signals_for_exec();
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
            std::string what = e.code().message();
            std::string where = e.what();
            if (where.starts_with("chdir")) throw Error("cannot run '" + options.program + "' in " + cwd + ": " + what);
            throw Error("cannot run '" + options.program + "': " + what);
        }
    }
    return pid;
}

}  // namespace ccmulti
