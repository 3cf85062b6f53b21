#include "tasks/command_task.hpp"

#include "tasks/command_output.hpp"
#include "tasks/command_runner.hpp"
#include "util/strings.hpp"

namespace ccmulti::tasks {

namespace {

using nlohmann::json;

json run(const std::vector<std::string>& argv, const std::filesystem::path& cwd, const TaskCall& call) {
    json input = {
        {"id", call.id}, {"task", call.name}, {"args", call.args}, {"kwargs", call.kwargs}, {"retries", call.retries}};
    return command_result(run_command(argv, input.dump() + "\n", {call.soft_deadline, call.hard_deadline}, cwd), argv);
}

}  // namespace

Task command_task(const std::string& name, std::vector<std::string> argv, std::filesystem::path cwd) {
    std::string origin = "command: " + shell_join(argv);
    return {name, origin,
            [argv = std::move(argv), cwd = std::move(cwd)](const TaskCall& call) { return run(argv, cwd, call); }};
}

}  // namespace ccmulti::tasks
