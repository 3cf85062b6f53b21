// An example ccmulti task plugin: build it (CMake target ccmulti_example_plugin), then run a node with
// `--plugin path/to/libccmulti_example_plugin.so` and call `ccmulti call example.add '[2, 3]' --wait`.
#include <string>

#include <ccmulti/task.hpp>

using nlohmann::json;

namespace {

json add(const ccmulti::TaskCall& call) {
    if (call.args.size() != 2) throw ccmulti::TaskError("TypeError", "add() takes 2 arguments");
    return call.args[0].get<double>() + call.args[1].get<double>();
}

json divide(const ccmulti::TaskCall& call) {
    double a = call.args.at(0).get<double>(), b = call.args.at(1).get<double>();
    if (b == 0) throw ccmulti::TaskError("ZeroDivisionError", "division by zero");
    return a / b;
}

json greet(const ccmulti::TaskCall& call) {
    std::string name = call.kwargs.value("name", std::string("world"));
    return "hello, " + name + " (attempt " + std::to_string(call.retries + 1) + ")";
}

}  // namespace

CCMULTI_PLUGIN(registrar) {
    registrar.add("example.add", add);
    registrar.add("example.divide", divide);
    registrar.add("example.greet", greet);
}
