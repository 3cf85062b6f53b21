#include <gtest/gtest.h>

#include "task_call.hpp"

#include <filesystem>

#include "tasks/builtins.hpp"
#include "tasks/execute.hpp"
#include "tasks/plugin_loader.hpp"
#include "util/error.hpp"

using namespace ccmulti;
using namespace ccmulti::tasks;
using nlohmann::json;
using test_support::task_call;


TEST(Plugin, LoadsTheExamplePlugin) {
    Registry registry;
    add_builtin_tasks(registry);
    load_plugin(registry, CCMULTI_EXAMPLE_PLUGIN);
    ASSERT_NE(registry.find("example.add"), nullptr);
    EXPECT_NE(registry.find("example.add")->origin.find("plugin: "), std::string::npos);
    EXPECT_EQ(registry.find("ccmulti.ping")->origin, "built-in");

    auto sum = execute(registry, task_call("example.add", {2, 3}));
    ASSERT_TRUE(sum.ok);
    EXPECT_EQ(sum.result, 5.0);
    // A TaskError thrown inside the plugin is caught here with its type.
    auto divided = execute(registry, task_call("example.divide", {1, 0}));
    EXPECT_EQ(divided.exception.describe(), "ZeroDivisionError: division by zero");
    EXPECT_EQ(execute(registry, task_call("example.greet", json::array(), {{"name", "ann"}})).result,
              "hello, ann (attempt 1)");
}

TEST(Plugin, RefusesWhatIsNotAPlugin) {
    Registry registry;
    EXPECT_THROW(load_plugin(registry, "/nonexistent/libx.so"), UsageError);
    // A real shared library without the entry points.
    for (const char* libm :
         {"/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib64/libm.so.6"})
        if (std::filesystem::exists(libm)) {
            EXPECT_THROW(load_plugin(registry, libm), UsageError);
        }
    load_plugin(registry, CCMULTI_EXAMPLE_PLUGIN);
    try {
        load_plugin(registry, CCMULTI_EXAMPLE_PLUGIN);
        FAIL() << "loaded twice";
    } catch (const UsageError& error) {
        EXPECT_NE(std::string(error.what()).find("registered twice"), std::string::npos);
    }
}
