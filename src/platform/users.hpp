// Users and groups by name, resolved before anything is forked: nodes started by root with --uid/--gid (celery
// multi's options) or the `user`/`group` settings run as that user, and the directories ccmulti creates for them
// belong to that user. getpwnam/getgrouplist read files and are not async-signal-safe, so everything the child
// needs between fork and exec (uid, gid, the supplementary groups) is looked up here, in the parent.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace ccmulti {

struct Owner {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;  // supplementary groups (initgroups' list), the primary one included
    std::string name;           // for messages: "celery" or "uid 999"

    bool operator==(const Owner&) const = default;
};

// `user`: a name or a numeric uid; `group`: a name, a numeric gid, or empty for the user's primary group.
// Throws UsageError (exit 2) naming what is unknown.
Owner resolve_owner(const std::string& user, const std::string& group);

// "celery" for a known uid, else "uid 999".
std::string user_name(uid_t uid);

}  // namespace ccmulti
