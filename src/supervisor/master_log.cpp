#include "supervisor/master_log.hpp"

#include <fcntl.h>
#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <cerrno>
#include <mutex>

#include "platform/fd.hpp"
#include "util/error.hpp"

namespace ccmulti::supervisor {

namespace {

// The master is single-threaded: no mutex.
class FdSink : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
public:
    explicit FdSink(UniqueFd fd) : fd_(std::move(fd)) {}

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        spdlog::memory_buf_t line;
        formatter_->format(msg, line);
        write_all(fd_.get(), line.data(), line.size());
    }
    void flush_() override {}

private:
    UniqueFd fd_;
};

}  // namespace

std::shared_ptr<spdlog::logger> make_master_log(const std::filesystem::path& file, bool to_stderr) {
    UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd) throw SystemError("cannot open the master log " + file.string(), errno);
    std::vector<spdlog::sink_ptr> sinks{std::make_shared<FdSink>(std::move(fd))};
    if (to_stderr) {
        auto err = std::make_shared<spdlog::sinks::stderr_color_sink_st>();
        err->set_pattern("ccmulti: %v");
        err->set_level(spdlog::level::warn);  // the terminal gets problems; the file gets everything
        sinks.push_back(err);
    }
    auto logger = std::make_shared<spdlog::logger>("master", sinks.begin(), sinks.end());
    sinks.front()->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] [pid %P] %v");
    logger->set_level(spdlog::level::info);
    logger->flush_on(spdlog::level::info);
    return logger;
}

}  // namespace ccmulti::supervisor
