#include "tasks/execute.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <typeinfo>

namespace ccmulti::tasks {

namespace {

std::string demangled_name(const std::type_info& type) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
    return status == 0 && name ? std::string(name.get()) : std::string(type.name());
}

TaskOutcome failure(const std::string& type, const std::string& message, std::string traceback) {
    TaskOutcome outcome;
    outcome.exception = protocol::ExceptionInfo::of(type, message);
    outcome.traceback = traceback.empty() ? outcome.exception.describe() : std::move(traceback);
    return outcome;
}

}  // namespace

TaskOutcome execute(const Registry& registry, const TaskCall& call) {
    const Task* task = registry.find(call.name);
    if (!task) return failure("NotRegistered", call.name, "");
    try {
        TaskOutcome outcome;
        outcome.result = task->run(call);
        outcome.ok = true;
        return outcome;
    } catch (const TaskError& error) {
        return failure(error.type(), error.message(), error.traceback());
    } catch (const nlohmann::json::exception& error) {
        // Arguments of the wrong shape (call.args.at(1).get<int>() on a string): Python would raise TypeError.
        return failure("TypeError", error.what(), "");
    } catch (const std::exception& error) {
        // "std::out_of_range" is no Python name; keep the C++ type name's last component.
        std::string type = demangled_name(typeid(error));
        if (auto colon = type.rfind("::"); colon != std::string::npos) type = type.substr(colon + 2);
        return failure(type, error.what(), "");
    } catch (...) {
        return failure("Exception", "unknown C++ exception", "");
    }
}

}  // namespace ccmulti::tasks
