// A small RAII wrapper over the sqlite3 C API: a connection, prepared statements, and write transactions.
// Errors become ccmulti::Error naming the database file.
//
// Every write runs in a WriteTransaction (BEGIN IMMEDIATE): it takes the database's write lock up front, so two
// processes can never both read a row as unclaimed and then both claim it, and no deferred transaction has to
// upgrade its lock mid-way (which SQLite resolves with SQLITE_BUSY, bypassing the busy timeout).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
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

class Database {
public:
    // Opens (creating) `path` in WAL mode with a busy timeout and foreign keys on.
    explicit Database(const std::filesystem::path& path,
                      std::chrono::milliseconds busy_timeout = std::chrono::seconds(30));
    ~Database();
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    void exec(std::string_view sql);  // one or more statements, no results
    std::int64_t changes() const;     // rows changed by the last statement
    const std::filesystem::path& path() const noexcept { return path_; }
    sqlite3* handle() const noexcept { return db_; }

    [[noreturn]] void fail(const std::string& what) const;  // throws Error with sqlite's message

private:
    std::filesystem::path path_;
    sqlite3* db_ = nullptr;
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
