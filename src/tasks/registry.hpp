// The tasks a node can run, by name: built-ins, command tasks from the configuration, and plugin tasks.
// The registry also remembers where each task came from, for `inspect registered` and for error messages.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ccmulti/task.hpp>

namespace ccmulti::tasks {

struct Task {
    std::string name;
    std::string origin;  // "built-in", "command: python3 tasks/add.py", "plugin: /path/libx.so"
    TaskFunction run;
};

class Registry : public TaskRegistrar {
public:
    Registry() = default;
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;
    Registry(Registry&&) = default;
    Registry& operator=(Registry&&) = default;
    ~Registry() override;

    // Throws UsageError when the name is taken (naming both origins) or empty.
    void add(Task task);
    // TaskRegistrar: a plugin's registrations, attributed to the origin set by the loader.
    void add(const std::string& name, TaskFunction function) override;

    const Task* find(const std::string& name) const;  // nullptr when not registered
    std::vector<std::string> names() const;           // sorted
    std::vector<const Task*> all() const;             // sorted by name

    // Used by the plugin loader: the origin of the next add(name, function) calls, and the libraries to keep
    // loaded as long as their functions are registered.
    void set_origin(std::string origin) { origin_ = std::move(origin); }
    void keep_library(void* handle) { libraries_.push_back(handle); }

private:
    std::vector<void*> libraries_;  // declared first: closed only after the functions pointing into them die
    std::map<std::string, Task> tasks_;
    std::string origin_ = "built-in";
};

}  // namespace ccmulti::tasks
