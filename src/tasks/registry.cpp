#include "tasks/registry.hpp"

#include "util/error.hpp"

namespace ccmulti::tasks {

Registry::~Registry() {
    // Plugins are never dlclose()d: a plugin may have registered static destructors or threads that outlive
    // this registry, and a node loads them once for its lifetime anyway. The handles are only kept as a record.
    tasks_.clear();
}

void Registry::add(Task task) {
    if (task.name.empty()) throw UsageError("a task needs a name (" + task.origin + ")");
    if (!task.run) throw UsageError("task " + task.name + " has no function (" + task.origin + ")");
    if (auto it = tasks_.find(task.name); it != tasks_.end())
        throw UsageError("task " + task.name + " is registered twice: by " + it->second.origin + " and by " +
                         task.origin);
    std::string name = task.name;
    tasks_.emplace(std::move(name), std::move(task));
}

void Registry::add(const std::string& name, TaskFunction function) {
    add(Task{name, origin_, std::move(function)});
}

const Task* Registry::find(const std::string& name) const {
    auto it = tasks_.find(name);
    return it == tasks_.end() ? nullptr : &it->second;
}

std::vector<std::string> Registry::names() const {
    std::vector<std::string> out;
    for (const auto& [name, task] : tasks_) out.push_back(name);
    return out;
}

std::vector<const Task*> Registry::all() const {
    std::vector<const Task*> out;
    for (const auto& [name, task] : tasks_) out.push_back(&task);
    return out;
}

}  // namespace ccmulti::tasks
