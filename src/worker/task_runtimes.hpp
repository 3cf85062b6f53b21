// How long tasks take, per task name, as the node measures them (from the moment a pool process starts one to
// its outcome): what makes a task "quick". The node treats quick tasks differently (worker.cpp): a pool process
// is sent several at a time, the prefetch window grows while only quick tasks are held, and no STARTED state is
// stored for them. A task is known as quick only after a few runs, and stops being quick as soon as slow runs
// pull its average up. The node records only registered tasks; the table is capped all the same (max_names):
// a name past the cap is never known as quick, which costs speed, not correctness.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>

namespace ccmulti::worker {

class TaskRuntimes {
public:
    static constexpr double quick_seconds = 0.002;  // the running average a quick task stays under
    static constexpr int runs_to_know = 5;
    static constexpr std::size_t max_names = 1000;

    void record(const std::string& task, double seconds);
    bool is_quick(const std::string& task) const;

private:
    struct Runtime {
        double average = 0;  // seconds, exponentially weighted: recent runs count most
        int runs = 0;
    };
    std::map<std::string, Runtime, std::less<>> runtimes_;
};

}  // namespace ccmulti::worker
