#include "broker/amqp/link.hpp"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <random>

namespace ccmulti::broker::amqp {

namespace {

void watch_readable(int epoll, int fd) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    if (::epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) != 0) throw SystemError("epoll_ctl", errno);
}

std::chrono::milliseconds reconnect_delay(int attempt) {
    static thread_local std::mt19937 engine{std::random_device{}()};
    double base = 500.0 * static_cast<double>(1 << std::min(attempt, 6));
    base = std::min(base, 30000.0);
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    return std::chrono::milliseconds(static_cast<long long>(base * jitter(engine)));
}

}  // namespace

Link::Link(AmqpUrl url, std::string name, std::string who, Setup setup, Connection::OnMessage on_message,
           std::function<void()> on_down)
    : url_(std::move(url)),
      name_(std::move(name)),
      who_(std::move(who)),
      setup_(std::move(setup)),
      on_message_(std::move(on_message)),
      on_down_(std::move(on_down)),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      timer_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)),
      kick_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (!epoll_) throw SystemError("epoll_create1", errno);
    if (!timer_) throw SystemError("timerfd_create", errno);
    if (!kick_) throw SystemError("eventfd", errno);
    watch_readable(epoll_.get(), timer_.get());
    watch_readable(epoll_.get(), kick_.get());
    try {
        connect();
    } catch (const ConnectionError& error) {
        go_down(error);
    }
}

Link::~Link() = default;

void Link::arm(std::chrono::milliseconds delay, bool repeat) {
    itimerspec spec{};
    spec.it_value.tv_sec = static_cast<time_t>(delay.count() / 1000);
    spec.it_value.tv_nsec = static_cast<long>(delay.count() % 1000 * 1000000);
    if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
    if (repeat) spec.it_interval = spec.it_value;
    ::timerfd_settime(timer_.get(), 0, &spec, nullptr);
}

void Link::connect() {
    auto connection = std::make_unique<Connection>(url_, name_);
    ++generation_;  // before setup: deliveries its consume brings belong to this connection
    setup_(*connection);
    watch_readable(epoll_.get(), connection->fd());
    connection_ = std::move(connection);
    if (down_) spdlog::info("{}: connected to the AMQP broker {} again", who_, url_.address());
    down_.reset();
    attempts_ = 0;
    // Heartbeats go out (and a silent broker is noticed) from poll(): tick at half the negotiated interval.
    arm(std::chrono::milliseconds(url_.heartbeat > 0 ? url_.heartbeat * 500 : 30000), true);
    kick_if_buffered();
}

void Link::go_down(const Error& error) {
    if (connection_) {
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, connection_->fd(), nullptr);
        connection_.reset();
    }
    if (on_down_) on_down_();
    if (closed_) return;
    auto delay = reconnect_delay(attempts_++);
    if (!down_ || attempts_ <= 3 || attempts_ % 10 == 0)
        spdlog::warn("{}: {}; reconnecting in {}ms", who_, error.what(), delay.count());
    down_ = error.what();
    arm(delay, false);
}

void Link::kick_if_buffered() {
    if (!connection_ || !connection_->buffered()) return;
    std::uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(kick_.get(), &one, sizeof one);
}

void Link::pump() {
    if (!connection_) return;
    try {
        connection_->poll(on_message_);
        kick_if_buffered();  // a callback's RPC may have buffered more
    } catch (const ConnectionError& error) {
        go_down(error);
    }
}

bool Link::use(const std::function<void(Connection&)>& operation) {
    if (!connection_) return false;
    try {
        operation(*connection_);
        kick_if_buffered();
        return true;
    } catch (const ChannelError& error) {
        spdlog::warn("{}: {}", who_, error.what());
        return false;
    } catch (const ConnectionError& error) {
        go_down(error);
        return false;
    }
}

void Link::on_readable() {
    std::uint64_t count = 0;
    bool timer_fired = ::read(timer_.get(), &count, sizeof count) == sizeof count;
    [[maybe_unused]] auto kicked = ::read(kick_.get(), &count, sizeof count);
    if (closed_) return;
    if (!connection_) {
        if (!timer_fired) return;
        try {
            connect();
        } catch (const ConnectionError& error) {
            go_down(error);
        }
        return;
    }
    pump();
}

void Link::close() {
    closed_ = true;
    if (connection_) {
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, connection_->fd(), nullptr);
        connection_.reset();
    }
    itimerspec off{};
    ::timerfd_settime(timer_.get(), 0, &off, nullptr);
}

}  // namespace ccmulti::broker::amqp
