#include "platform/daemon.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "util/error.hpp"

namespace ccmulti {

UniqueFd spawn_daemon(const std::filesystem::path& cwd, const std::function<int(UniqueFd report)>& body) {
    Pipe report = make_pipe();
    std::fflush(nullptr);  // or buffered output would be written twice
    pid_t first = ::fork();
    if (first < 0) throw SystemError("fork", errno);
    if (first > 0) {
        report.write.reset();
        int status = 0;
        while (::waitpid(first, &status, 0) < 0 && errno == EINTR) {
        }
        return std::move(report.read);
    }
    // Intermediate child: a new session without a terminal, then a grandchild that is not a session leader
    // and so can never acquire one.
    report.read.reset();
    if (::setsid() < 0) ::_exit(1);
    pid_t second = ::fork();
    if (second < 0) ::_exit(1);
    if (second > 0) ::_exit(0);

    int code = 1;
    int report_fd = report.write.get();  // for errors before `body` takes it over
    try {
        if (::chdir(cwd.c_str()) != 0) throw SystemError("chdir " + cwd.string(), errno);
        {
            UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
            if (!null) throw SystemError("open /dev/null", errno);
            for (int fd = 0; fd <= 2; ++fd)
                if (::dup2(null.get(), fd) < 0) throw SystemError("dup2", errno);
        }
        report_fd = -1;
        code = body(std::move(report.write));
    } catch (const std::exception& e) {
        // Nobody can see stderr any more: a plain (non-JSON) line on the report pipe is shown as the error.
        if (report_fd >= 0) {
            std::string line = std::string(e.what()) + "\n";
            write_all(report_fd, line.data(), line.size());
        }
        code = 1;
    }
    std::fflush(nullptr);
    std::exit(code);
}

}  // namespace ccmulti
