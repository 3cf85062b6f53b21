// A private redis-server on a free 127.0.0.1 port for one test, started and stopped by the test (tests are
// skipped where Debian's redis-server is not installed). stop()/start() keep the port, to test outages.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "broker/redis/connection.hpp"

extern char** environ;

namespace ccmulti::broker::testing {

inline int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    ::close(fd);
    return ntohs(address.sin_port);
}

inline bool have_redis_server() {
    return std::filesystem::exists("/usr/bin/redis-server");
}

class RedisServer {
public:
    explicit RedisServer(std::string extra_args = "") : port_(free_port()), extra_(std::move(extra_args)) { start(); }
    ~RedisServer() { stop(); }
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    int port() const { return port_; }
    std::string url(const std::string& suffix = "/0") const {
        return "redis://127.0.0.1:" + std::to_string(port_) + suffix;
    }
    redis::RedisUrl parsed(const std::string& suffix = "/0") const;

    void start() {
        std::vector<std::string> args{"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                      "--save",       "",       "--appendonly",        "no",     "--dir",
                                      "/tmp"};
        if (!extra_.empty()) {
            args.push_back("--requirepass");
            args.push_back(extra_);
        }
        std::vector<char*> argv;
        for (auto& arg : args) argv.push_back(arg.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
        ::posix_spawn(&pid_, "/usr/bin/redis-server", &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        // Poll with a deadline until it answers.
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < deadline) {
            try {
                redis::RedisUrl url;
                url.port = port_;
                if (!extra_.empty()) url.password = extra_;
                redis::Connection connection(url, std::chrono::milliseconds(200));
                if (connection.command({"PING"}).text() == "PONG") return;
            } catch (const Error&) {
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }

    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }

private:
    int port_;
    std::string extra_;  // a password to require, if any
    pid_t pid_ = -1;
};

inline redis::RedisUrl RedisServer::parsed(const std::string& suffix) const {
    return redis::parse_redis_url(url(suffix));
}

}  // namespace ccmulti::broker::testing
