#include "platform/process_identity.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "platform/proc.hpp"

namespace ccmulti {

namespace {

std::string compute_scope() {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string boot_id;
    std::getline(in, boot_id);
    struct stat ns {};
    std::string ns_id = ::stat("/proc/self/ns/pid", &ns) == 0 ? std::to_string(ns.st_ino) : "?";
    return boot_id + "/" + ns_id;
}

}  // namespace

const std::string& process_scope() {
    static const std::string scope = compute_scope();
    return scope;
}

ProcessIdentity self_identity() {
    return {getpid(), self_start_time(), process_scope()};
}

Liveness liveness(const ProcessIdentity& who) {
    if (who.scope != process_scope() || who.pid <= 0) return Liveness::unknown;
    auto stat = read_proc_stat(who.pid);
    // Gone, or the pid now belongs to another process. A zombie will run nothing more either.
    if (!stat || stat->start_time != who.start_time || stat->zombie()) return Liveness::dead;
    return Liveness::alive;
}

}  // namespace ccmulti
