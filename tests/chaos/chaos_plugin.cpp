// The chaos test's tasks (tests/chaos/test_chaos.py): like ccmulti.echo and ccmulti.sleep, but every run is
// written down, so the test can count how often each task really ran and in which process. Each run appends
// "S <task id> <pid>" before its work and "E <task id> <pid>" after it to the file named by the last argument,
// with one O_APPEND write each: lines from many pool processes never interleave, and a run whose process is
// SIGKILLed mid-task leaves an S without an E.
//
//   chaos.echo [VALUE, LOG]      returns VALUE
//   chaos.sleep [SECONDS, LOG]   sleeps, returns SECONDS
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <thread>

#include <ccmulti/task.hpp>

using nlohmann::json;

namespace {

void record(const ccmulti::TaskCall& call, char what) {
    if (call.args.size() != 2 || !call.args[1].is_string())
        throw ccmulti::TaskError("TypeError", "chaos tasks take [value, log path]");
    const std::string path = call.args[1].get<std::string>();
    const std::string line = std::string(1, what) + " " + call.id + " " + std::to_string(getpid()) + "\n";
    int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw ccmulti::TaskError("OSError", "cannot open " + path + ": " + std::to_string(errno));
    ssize_t written;
    do written = write(fd, line.data(), line.size());
    while (written < 0 && errno == EINTR);
    close(fd);
    if (written != static_cast<ssize_t>(line.size())) throw ccmulti::TaskError("OSError", "short write to " + path);
}

json echo_task(const ccmulti::TaskCall& call) {
    record(call, 'S');
    record(call, 'E');
    return call.args[0];
}

json sleep_task(const ccmulti::TaskCall& call) {
    record(call, 'S');
    std::this_thread::sleep_for(std::chrono::duration<double>(call.args[0].get<double>()));
    record(call, 'E');
    return call.args[0];
}

}  // namespace

CCMULTI_PLUGIN(registrar) {
    registrar.add("chaos.echo", echo_task);
    registrar.add("chaos.sleep", sleep_task);
}
