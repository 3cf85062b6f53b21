#include "config/locate.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

#include "config/load.hpp"
#include "util/error.hpp"

namespace fs = std::filesystem;

namespace ccmulti::config {

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "ccmulti-config-XXXXXX").string();
        path = mkdtemp(pattern.data());
    }
    ~TempDir() { fs::remove_all(path); }
    fs::path write(const std::string& name, const std::string& text) const {
        fs::create_directories((path / name).parent_path());
        std::ofstream(path / name) << text;
        return path / name;
    }
};

std::optional<ConfigFile> locate(const std::optional<std::string>& flag, const Environment& env, const fs::path& cwd,
                                 std::vector<std::string>* warnings = nullptr) {
    std::vector<std::string> ignored;
    return locate_config(flag, env, cwd, warnings ? *warnings : ignored);
}

TEST(Locate, NothingFoundIsFine) {
    TempDir dir;
    EXPECT_FALSE(locate(std::nullopt, {{"XDG_CONFIG_HOME", (dir.path / "xdg").string()}}, dir.path));
}

TEST(Locate, SearchOrder) {
    TempDir dir;
    Environment env{{"XDG_CONFIG_HOME", (dir.path / "xdg").string()}};
    dir.write("xdg/ccmulti/ccmulti.yaml", "");
    EXPECT_EQ(locate(std::nullopt, env, dir.path)->path, dir.path / "xdg/ccmulti/ccmulti.yaml");
    dir.write("xdg/ccmulti/ccmulti.toml", "");
    EXPECT_EQ(locate(std::nullopt, env, dir.path)->path, dir.path / "xdg/ccmulti/ccmulti.toml");
    dir.write("ccmulti.yaml", "");
    auto found = locate(std::nullopt, env, dir.path);
    EXPECT_EQ(found->path, dir.path / "ccmulti.yaml");
    EXPECT_EQ(found->name, "ccmulti.yaml");  // named relative to the working directory
    dir.write("ccmulti.toml", "");
    std::vector<std::string> warnings;
    EXPECT_EQ(locate(std::nullopt, env, dir.path, &warnings)->path, dir.path / "ccmulti.toml");
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("reading ccmulti.toml only"), std::string::npos);
}

TEST(Locate, XdgDefaultsToHomeConfig) {
    TempDir dir;
    dir.write("home/.config/ccmulti/ccmulti.toml", "");
    auto found = locate(std::nullopt, {{"HOME", (dir.path / "home").string()}}, dir.path / "home");
    EXPECT_EQ(found->path, dir.path / "home/.config/ccmulti/ccmulti.toml");
}

TEST(Locate, FlagThenVariable) {
    TempDir dir;
    dir.write("ccmulti.toml", "");
    dir.write("a.yaml", "");
    dir.write("b.toml", "");
    Environment env{{"CCMULTI_CONFIG", "b.toml"}};
    auto by_flag = locate(std::string("a.yaml"), env, dir.path);
    EXPECT_EQ(by_flag->path, dir.path / "a.yaml");
    EXPECT_EQ(by_flag->origin, "-C");
    auto by_env = locate(std::nullopt, env, dir.path);
    EXPECT_EQ(by_env->path, dir.path / "b.toml");
    EXPECT_EQ(by_env->origin, "$CCMULTI_CONFIG");
}

TEST(Locate, NamedFileMustExist) {
    TempDir dir;
    try {
        locate(std::string("missing.toml"), {}, dir.path);
        FAIL();
    } catch (const UsageError& e) {
        EXPECT_STREQ(e.what(), "configuration file missing.toml (from -C) does not exist");
    }
    EXPECT_THROW(locate(std::nullopt, {{"CCMULTI_CONFIG", "gone.yaml"}}, dir.path), UsageError);
}

TEST(Load, FileThenEnvironmentWithEveryError) {
    TempDir dir;
    dir.write("ccmulti.toml", "app = 5\n[defaults]\nconcurrency = 2\n");
    Environment env{{"CCMULTI_LOGLEVEL", "loud"}, {"CCMULTI_APPP", "x"}, {"HOME", dir.path.string()}};
    Loaded loaded = load_config(std::nullopt, env, dir.path);
    EXPECT_EQ(loaded.errors.lines(),
              (std::vector<std::string>{
                  "ccmulti.toml:1:7: 'app': expected string, got integer 5",
                  "$CCMULTI_LOGLEVEL: unknown log level \"loud\" (one of debug, info, warning, error, critical)"}));
    EXPECT_EQ(loaded.warnings,
              std::vector<std::string>{"unknown environment variable CCMULTI_APPP — did you mean CCMULTI_APP?"});
    EXPECT_EQ(*loaded.settings.defaults.concurrency, 2);
}

TEST(Load, UnknownExtensionAndUnreadableFile) {
    TempDir dir;
    dir.write("conf.ini", "");
    Loaded loaded = load_config(std::string("conf.ini"), {}, dir.path);
    EXPECT_EQ(loaded.errors.lines(),
              std::vector<std::string>{"conf.ini: cannot tell the format; name the file .toml, .yaml or .yml"});
    fs::create_directory(dir.path / "dir.toml");
    Loaded directory = load_config(std::string("dir.toml"), {}, dir.path);
    EXPECT_EQ(directory.errors.lines(),
              std::vector<std::string>{(dir.path / "dir.toml").string() + " is not a regular file"});
}

}  // namespace

}  // namespace ccmulti::config
