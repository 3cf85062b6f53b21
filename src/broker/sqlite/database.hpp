// A small RAII wrapper over the sqlite3 C API: a connection, prepared statements, and write transactions.
// Errors become ccmulti::Error naming the database file.
//
// Every write runs in a WriteTransaction (BEGIN IMMEDIATE): it takes the database's write lock up front, so two
// processes can never both read a row as unclaimed and then both claim it, and no deferred transaction has to
// upgrade its lock mid-way (which SQLite resolves with SQLITE_BUSY, bypassing the busy timeout).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <sqlite3.h>

namespace ccmulti::broker::sqlite {

class Database;

class Statement {
public:
    Statement(Database& db, std::string_view sql);
    ~Statement();
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    // Binds by 1-based position; returns *this to chain.
    Statement& bind(int index, std::string_view value);
    Statement& bind(int index, std::int64_t value);
    Statement& bind(int index, int value) { return bind(index, static_cast<std::int64_t>(value)); }
    Statement& bind(int index, double value);
    Statement& bind(int index, std::nullopt_t);
    template <typename T>
    Statement& bind(int index, const std::optional<T>& value) {
        return value ? bind(index, *value) : bind(index, std::nullopt);
    }

    bool step();   // true: a row is available; false: done
    void run();    // steps to the end, ignoring rows
    void reset();  // to run again (bindings are kept)

    bool is_null(int column) const;
    std::string text(int column) const;
    std::int64_t integer(int column) const;
    double real(int column) const;

private:
    Database& db_;
    sqlite3_stmt* stmt_ = nullptr;
};

// A file's identity: the database a connection has open is the file at its path only while these match.
struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    bool operator==(const FileId&) const = default;
};

class Database {
public:
    // Opens (creating) `path` in WAL mode with a busy timeout and foreign keys on; `setup` runs on every
    // connection opened (the schema migration), under the same lock as the open.
    explicit Database(const std::filesystem::path& path,
                      std::chrono::milliseconds busy_timeout = std::chrono::seconds(30),
                      std::function<void(Database&)> setup = {});
    ~Database();
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    void exec(std::string_view sql);  // one or more statements, no results
    std::int64_t changes() const;     // rows changed by the last statement
    const std::filesystem::path& path() const noexcept { return path_; }
    sqlite3* handle() const noexcept { return db_; }

    // Checks that the file at path() is still the one open (device and inode). When it was deleted or replaced
    // (rm, a restore), reopens path() (creating it), logs that loudly and returns true: generation() grows, and
    // whoever keeps rows in the database (a consumer's registration) writes them again. Cheap (one stat): called
    // before every broker operation. Throws Error when the new file cannot be opened (the old connection stays).
    bool revalidate();
    std::uint64_t generation() const noexcept { return generation_; }

    [[noreturn]] void fail(const std::string& what) const;  // throws Error with sqlite's message

private:
    void open();
    void retire(sqlite3* old);

    std::filesystem::path path_;
    std::chrono::milliseconds busy_timeout_;
    std::function<void(Database&)> setup_;
    sqlite3* db_ = nullptr;
    std::optional<FileId> id_;
    std::uint64_t generation_ = 0;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back when destroyed uncommitted (an exception left the scope).
class WriteTransaction {
public:
    explicit WriteTransaction(Database& db);
    ~WriteTransaction();
    WriteTransaction(const WriteTransaction&) = delete;
    WriteTransaction& operator=(const WriteTransaction&) = delete;
    void commit();

private:
    Database& db_;
    bool open_ = true;
};

}  // namespace ccmulti::broker::sqlite
