#include "supervisor/master_log.hpp"

#include <fcntl.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "platform/fd.hpp"
#include "platform/read_file.hpp"
#include "util/error.hpp"

namespace ccmulti::supervisor {

namespace {

// Never through a symlink planted in a shared log dir, never a FIFO (which would hang the master in open).
UniqueFd open_log(const std::filesystem::path& file, std::string& why) {
    auto opened = open_regular_file(file, O_WRONLY | O_CREAT | O_APPEND, 0644);
    why = opened.why;
    return std::move(opened.fd);
}

// A mutex: the master's loop is single-threaded, but the dashboard it may serve (dashboard/service.hpp) logs from
// threads of its own into the same log.
class FdSink : public spdlog::sinks::base_sink<std::mutex> {
public:
    FdSink(std::filesystem::path path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

    // False (`why` says why) when the path cannot be opened; the old file stays in use then.
    bool reopen(std::string& why) {
        UniqueFd fresh = open_log(path_, why);
        if (!fresh) return false;
        std::lock_guard lock(mutex_);
        fd_ = std::move(fresh);
        return true;
    }
    const std::filesystem::path& path() const { return path_; }

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        spdlog::memory_buf_t line;
        formatter_->format(msg, line);
        write_all(fd_.get(), line.data(), line.size());
    }
    void flush_() override {}

private:
    std::filesystem::path path_;
    UniqueFd fd_;
};

// stderr read by journald: "<N>" (sd-daemon.h's SD_ERR …) then the message, one line each.
class JournalSink : public spdlog::sinks::base_sink<std::mutex> {
protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        spdlog::memory_buf_t line;
        const char* prefix = "<6>";  // SD_INFO
        switch (msg.level) {
            case spdlog::level::trace:
            case spdlog::level::debug:
                prefix = "<7>";  // SD_DEBUG
                break;
            case spdlog::level::warn:
                prefix = "<4>";  // SD_WARNING
                break;
            case spdlog::level::err:
                prefix = "<3>";  // SD_ERR
                break;
            case spdlog::level::critical:
                prefix = "<2>";  // SD_CRIT
                break;
            default:
                break;
        }
        line.append(prefix, prefix + 3);
        formatter_->format(msg, line);
        write_all(STDERR_FILENO, line.data(), line.size());
    }
    void flush_() override {}
};

}  // namespace

bool stderr_is_journal() {
    const char* stream = std::getenv("JOURNAL_STREAM");  // "DEVICE:INODE" of the stream systemd connected
    if (!stream || !*stream) return false;
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) != 0) return false;
    unsigned long long device = 0, inode = 0;
    if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) return false;
    return device == static_cast<unsigned long long>(st.st_dev) && inode == static_cast<unsigned long long>(st.st_ino);
}

std::shared_ptr<spdlog::logger> make_master_log(const std::filesystem::path& file, bool to_stderr) {
    if (to_stderr && stderr_is_journal()) {
        auto sink = std::make_shared<JournalSink>();
        sink->set_pattern("%v");
        auto logger = std::make_shared<spdlog::logger>("master", sink);
        logger->set_level(spdlog::level::info);
        logger->flush_on(spdlog::level::info);
        return logger;
    }
    std::string why;
    UniqueFd fd = open_log(file, why);
    if (!fd) throw Error("cannot open the master log " + file.string() + ": " + why);
    std::vector<spdlog::sink_ptr> sinks{std::make_shared<FdSink>(file, std::move(fd))};
    if (to_stderr) {
        auto err = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
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

void reopen_master_log(spdlog::logger& logger) {
    for (const auto& sink : logger.sinks()) {
        auto* file = dynamic_cast<FdSink*>(sink.get());
        if (!file) continue;
        std::string why;
        if (file->reopen(why))
            logger.info("log reopened (SIGUSR1)");
        else
            logger.error("cannot reopen the master log {}: {}; still writing to the file that was open",
                         file->path().string(), why);
    }
}

}  // namespace ccmulti::supervisor
