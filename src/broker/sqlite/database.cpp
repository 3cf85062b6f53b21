#include "broker/sqlite/database.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "platform/fd.hpp"
#include "util/error.hpp"

namespace ccmulti::broker::sqlite {

Statement::Statement(Database& db, std::string_view sql) : db_(db) {
    if (sqlite3_prepare_v2(db.handle(), sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr) != SQLITE_OK)
        db.fail("prepare");
}

Statement::~Statement() {
    sqlite3_finalize(stmt_);
}

Statement& Statement::bind(int index, std::string_view value) {
    if (sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT) != SQLITE_OK)
        db_.fail("bind");
    return *this;
}

Statement& Statement::bind(int index, std::int64_t value) {
    if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK) db_.fail("bind");
    return *this;
}

Statement& Statement::bind(int index, double value) {
    if (sqlite3_bind_double(stmt_, index, value) != SQLITE_OK) db_.fail("bind");
    return *this;
}

Statement& Statement::bind(int index, std::nullopt_t) {
    if (sqlite3_bind_null(stmt_, index) != SQLITE_OK) db_.fail("bind");
    return *this;
}

bool Statement::step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    db_.fail("query");
}

void Statement::run() {
    while (step()) {
    }
}

void Statement::reset() {
    sqlite3_reset(stmt_);
}

bool Statement::is_null(int column) const {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::string Statement::text(int column) const {
    const auto* data = sqlite3_column_text(stmt_, column);
    if (!data) return {};
    return std::string(reinterpret_cast<const char*>(data),
                       static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::int64_t Statement::integer(int column) const {
    return sqlite3_column_int64(stmt_, column);
}

double Statement::real(int column) const {
    return sqlite3_column_double(stmt_, column);
}

namespace {

std::filesystem::path sibling(const std::filesystem::path& path, const char* suffix) {
    auto out = path;
    out += suffix;
    return out;
}

std::optional<FileId> file_id(const std::filesystem::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return FileId{st.st_dev, st.st_ino};
}

// The database holds task arguments and results: created 0600 (SQLite gives its -wal and -shm files the same
// mode), and never through a symlink or onto a FIFO or device planted at its path in a shared state dir.
// Returns the file's identity; the fd is closed again before SQLite opens the file (closing any fd of a file
// drops the process's fcntl locks on it, SQLite's included).
FileId create_private_file(const std::filesystem::path& path) {
    int fd;
    do fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno == ELOOP)
        throw Error("refusing broker database " + path.string() +
                    ": it is a symlink (remove it if you did not put it there, or choose another --state-dir)");
    if (fd < 0) throw SystemError("cannot open broker database " + path.string(), errno);
    UniqueFd file(fd);
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw SystemError("stat " + path.string(), errno);
    if (!S_ISREG(st.st_mode))
        throw Error("refusing broker database " + path.string() + ": not a regular file (choose another --state-dir)");
    // SQLite opens its -wal, -shm and -journal files beside it with O_NOFOLLOW, and fails with "unable to open
    // database file" on a symlink there; say which file and why instead. A FIFO there would be written to.
    for (const char* suffix : {"-wal", "-shm", "-journal"}) {
        const std::filesystem::path sibling = path.string() + suffix;
        struct stat sibling_st {};
        if (::lstat(sibling.c_str(), &sibling_st) == 0 && !S_ISREG(sibling_st.st_mode))
            throw Error("refusing broker database " + path.string() + ": " + sibling.string() + " is " +
                        (S_ISLNK(sibling_st.st_mode) ? "a symlink" : "not a regular file") +
                        " (remove it if you did not put it there, or choose another --state-dir)");
    }
    return FileId{st.st_dev, st.st_ino};
}

}  // namespace

Database::Database(const std::filesystem::path& path, std::chrono::milliseconds busy_timeout,
                   std::function<void(Database&)> setup)
    : path_(path), busy_timeout_(busy_timeout), setup_(std::move(setup)) {
    open();
}

Database::~Database() {
    sqlite3_close_v2(db_);
}

void Database::open() {
    // Switching a new file to WAL and creating the schema take locks SQLite's busy timeout does not wait for,
    // so nodes starting together would fail with "database is locked". An flock on a side file serializes
    // just this step (flock and SQLite's fcntl locks do not interact).
    const auto lock_path = sibling(path_, ".init-lock");
    UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!lock) throw SystemError("cannot open " + lock_path.string(), errno);
    while (::flock(lock.get(), LOCK_EX) < 0)
        if (errno != EINTR) throw SystemError("cannot lock " + lock_path.string(), errno);
    // A -wal or -shm without its database is what is left of a deleted one (the file removed while nodes used
    // it): opened beside a new database, SQLite would replay the old log into it and share the old connections'
    // index. They belong to no file any more. Only regular files are removed: a symlink or FIFO planted there is
    // refused below, not quietly cleared away.
    std::error_code ec;
    if (!std::filesystem::exists(path_, ec) && !ec) {
        for (const char* suffix : {"-wal", "-shm"}) {
            const auto leftover = sibling(path_, suffix);
            if (std::filesystem::is_regular_file(std::filesystem::symlink_status(leftover, ec)))
                std::filesystem::remove(leftover, ec);
        }
    }
    const FileId created = create_private_file(path_);
    sqlite3* handle = nullptr;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW;
    if (sqlite3_open_v2(path_.c_str(), &handle, flags, nullptr) != SQLITE_OK) {
        std::string message = handle ? sqlite3_errmsg(handle) : "out of memory";
        sqlite3_close(handle);
        throw Error("cannot open broker database " + path_.string() + ": " + message);
    }
    if (file_id(path_) != created) {  // replaced between our open and SQLite's: the next revalidate() sees it
        sqlite3_close(handle);
        throw Error("broker database " + path_.string() + " was replaced while it was being opened; try again");
    }
    sqlite3* previous = db_;
    db_ = handle;
    try {
        sqlite3_extended_result_codes(db_, 1);
        sqlite3_busy_timeout(db_, static_cast<int>(busy_timeout_.count()));
        // WAL: readers never block the writer and the other way round; NORMAL sync is safe against any process
        // crash (a power loss may undo the last commits, never corrupt the file).
        exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
        if (setup_) setup_(*this);
    } catch (...) {
        sqlite3_close_v2(db_);
        db_ = previous;
        throw;
    }
    id_ = created;
    if (previous) retire(previous);
}

void Database::retire(sqlite3* old) {
    // The old file is gone from its path, but its -wal and -shm paths may now be a new database's: SQLite must
    // not delete them when it closes the old connection (it deletes them by name), so its WAL is made persistent.
    int persist = 1;
    sqlite3_file_control(old, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    sqlite3_close_v2(old);  // a statement still prepared on it (a waiter) keeps it until finalized
}

bool Database::revalidate() {
    const auto now = file_id(path_);
    if (now == id_) return false;
    // Deleted (rm, a tmp cleaner) or replaced (a restore, mv) while we use it: whoever runs `ccmulti call` now
    // uses the file at the path, so this connection must too, or its tasks stay PENDING for ever.
    std::int64_t left = -1;
    try {
        Statement count(*this, "SELECT COUNT(*) FROM messages WHERE consumer IS NULL");
        if (count.step()) left = count.integer(0);
    } catch (const Error&) {
    }
    open();  // throws when it cannot (the state dir gone too): the old connection stays, try again later
    ++generation_;
    spdlog::error(
        "broker database {} was {} while this process used it: now using the file at that path{}; tasks held "
        "from the old file finish, their messages went with it",
        path_.string(), now ? "deleted or replaced (another file is at its path now)" : "deleted",
        left > 0 ? " (" + std::to_string(left) + " queued message(s) stayed in the old file and are lost)" : "");
    return true;
}

void Database::exec(std::string_view sql) {
    std::string text(sql);
    char* message = nullptr;
    if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
        std::string reason = message ? message : sqlite3_errmsg(db_);
        sqlite3_free(message);
        throw Error("broker database " + path_.string() + ": " + reason);
    }
}

std::int64_t Database::changes() const {
    return sqlite3_changes(db_);
}

void Database::fail(const std::string& what) const {
    throw Error("broker database " + path_.string() + ": " + what + ": " + sqlite3_errmsg(db_));
}

WriteTransaction::WriteTransaction(Database& db) : db_(db) {
    db_.exec("BEGIN IMMEDIATE");
}

WriteTransaction::~WriteTransaction() {
    if (open_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void WriteTransaction::commit() {
    db_.exec("COMMIT");
    open_ = false;
}

}  // namespace ccmulti::broker::sqlite
