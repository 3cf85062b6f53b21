// libFuzzer target: what a command task's program leaves behind (tasks/command_output.hpp) is a result or one
// TaskError; a crash, a sanitizer report or any other exception escaping is a bug (scripts/fuzz). A result must
// encode (the pool process sends it to the node as JSON), however it nests.
//
// Input: one byte saying how it ended (low 7 bits an exit status, or with the high bit set the signal that
// killed it), then its stdout, a NUL, its stderr.
#include <sys/wait.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <ccmulti/task.hpp>

#include "tasks/command_output.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    ccmulti::tasks::CommandRun run;
    const int code = data[0] & 0x7f;
    const bool signalled = (data[0] & 0x80) != 0 && code > 0 && code < 64;
    run.wait_status = signalled ? code : (code << 8);  // as waitpid reports a signal death or an exit
    run.soft_signalled = signalled;
    std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    auto nul = rest.find('\0');
    run.out = std::string(rest.substr(0, nul));
    if (nul != std::string_view::npos) run.err = std::string(rest.substr(nul + 1));
    try {
        auto result = ccmulti::tasks::command_result(run, {"fuzz", "arg"});
        (void)result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } catch (const ccmulti::TaskError& e) {
        if (e.type().empty()) __builtin_trap();
    }
    return 0;
}
