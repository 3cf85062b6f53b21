#include "platform/notify_socket.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

namespace ccmulti {

TEST(NotifyFields, ParsesLines) {
    auto fields = parse_notify_fields("READY=1\nSTATUS=up and running\nnonsense\n=x\n");
    EXPECT_EQ(fields.size(), 2u);
    EXPECT_EQ(fields["READY"], "1");
    EXPECT_EQ(fields["STATUS"], "up and running");
}

TEST(NotifySocket, ReceivesWithTheSendersRealPid) {
    char pattern[] = "/tmp/ccmulti-notify-XXXXXX";
    ASSERT_TRUE(mkdtemp(pattern));
    std::filesystem::path dir = pattern;
    {
        NotifySocket socket(dir / "notify.sock");
        EXPECT_FALSE(socket.receive());
        int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strcpy(address.sun_path, (dir / "notify.sock").c_str());
        const char message[] = "READY=1";
        ASSERT_GT(sendto(fd, message, sizeof message - 1, 0, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
        close(fd);
        auto got = socket.receive();
        ASSERT_TRUE(got);
        EXPECT_EQ(got->pid, getpid());
        EXPECT_EQ(got->uid, geteuid());
        EXPECT_EQ(got->fields["READY"], "1");
    }
    EXPECT_FALSE(std::filesystem::exists(dir / "notify.sock"));
    std::filesystem::remove_all(dir);
}

}  // namespace ccmulti
