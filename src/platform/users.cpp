#include "platform/users.hpp"

#include <grp.h>
#include <pwd.h>

#include "util/error.hpp"
#include "util/strings.hpp"

namespace ccmulti {

std::string user_name(uid_t uid) {
    if (const passwd* pw = ::getpwuid(uid)) return pw->pw_name;
    return "uid " + std::to_string(uid);
}

namespace {

constexpr std::size_t max_id_digits = 9;

std::optional<gid_t> find_group(const std::string& group) {
    if (const ::group* gr = ::getgrnam(group.c_str())) return gr->gr_gid;
    if (is_digits(group) && group.size() <= max_id_digits) return static_cast<gid_t>(std::stoul(group));
    return std::nullopt;
}

}  // namespace

Owner resolve_owner(const std::string& user, const std::string& group) {
    Owner owner;
    const passwd* pw = ::getpwnam(user.c_str());
    if (!pw && is_digits(user) && user.size() <= max_id_digits) pw = ::getpwuid(static_cast<uid_t>(std::stoul(user)));
    if (pw) {
        owner.uid = pw->pw_uid;
        owner.gid = pw->pw_gid;
        owner.name = pw->pw_name;
    } else if (is_digits(user) && user.size() <= max_id_digits) {
        owner.uid = static_cast<uid_t>(std::stoul(user));  // a uid without a passwd entry: no name, no groups
        owner.gid = owner.uid;
        owner.name = "uid " + user;
    } else {
        throw UsageError("unknown user '" + user + "' (from --uid or `user`); create it (useradd --system " + user +
                         ") or name an existing one");
    }
    if (!group.empty()) {
        auto gid = find_group(group);
        if (!gid)
            throw UsageError("unknown group '" + group + "' (from --gid or `group`); create it (groupadd --system " +
                             group + ") or name an existing one");
        owner.gid = *gid;
    }
    if (pw) {
        int count = 16;
        for (;;) {
            std::vector<gid_t> list(static_cast<std::size_t>(count));
            int n = count;
            if (::getgrouplist(pw->pw_name, owner.gid, list.data(), &n) >= 0) {
                list.resize(static_cast<std::size_t>(n));
                owner.groups = std::move(list);
                break;
            }
            count = n > count ? n : count * 2;
        }
    } else {
        owner.groups = {owner.gid};
    }
    return owner;
}

}  // namespace ccmulti
