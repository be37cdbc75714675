#include "pg/pool.hpp"

#include <pqxx/except>
#include <pqxx/nontransaction>

#include <cstring>
#include <utility>

#include "pgelect/errors.hpp"

namespace pgelect::detail {
namespace {
// libpq's multi-line messages on one line: a line break and the indentation
// after it become one space.
std::string trimmed(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\n') {
            out += s[i];
            continue;
        }
        out += ' ';
        while (i + 1 < s.size() && (s[i + 1] == '\t' || s[i + 1] == ' ')) ++i;
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}
}  // namespace

bool WarningLog::operator()(const char msg[]) noexcept {
    // Without client_min_messages (transaction pooling sets no session
    // settings) lesser notices arrive too; any other severity, also in
    // another language, counts.
    for (const char* lesser : {"NOTICE:", "INFO:", "LOG:", "DEBUG"}) {
        if (std::strncmp(msg, lesser, std::strlen(lesser)) == 0) return true;
    }
    try {
        if (!any_) first_ = trimmed(msg);
        any_ = true;
    } catch (...) {
        any_ = true;  // out of memory: still a warning
    }
    return true;
}

std::string WarningLog::take() {
    std::string out = any_ ? (first_.empty() ? std::string("WARNING") : first_) : std::string();
    first_.clear();
    any_ = false;
    return out;
}

ConnectionPool::Handle::Handle(ConnectionPool* pool, std::unique_ptr<Pooled> conn)
    : pool_(pool), conn_(std::move(conn)) {
    if (conn_) conn_->warnings->take();  // only what this borrower's statements caused
    if (pool_->watchdog_ != nullptr && conn_) {
        ticket_ = pool_->watchdog_->arm(conn_->conn->sock(),
                                        StatementWatchdog::Clock::now() + pool_->statement_limit_);
    }
}

ConnectionPool::Handle::Handle(Handle&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      conn_(std::move(other.conn_)),
      ticket_(std::exchange(other.ticket_, 0)),
      cut_off_(other.cut_off_) {}

ConnectionPool::Handle::~Handle() {
    if (pool_ == nullptr) return;
    stop_watch();
    if (cut_off_) conn_.reset();  // its socket is shut down: never reuse it
    pool_->give_back(std::move(conn_));
}

void ConnectionPool::Handle::stop_watch() {
    if (ticket_ == 0) return;
    if (pool_->watchdog_->disarm(ticket_)) cut_off_ = true;
    ticket_ = 0;
}

void ConnectionPool::Handle::discard() {
    stop_watch();  // before the socket closes (and its number can be reused)
    conn_.reset();
}

bool ConnectionPool::Handle::cut_off() {
    stop_watch();
    return cut_off_;
}

std::string ConnectionPool::Handle::warning() { return conn_ ? conn_->warnings->take() : std::string(); }

ConnectionPool::ConnectionPool(ConnInfo info, std::size_t size,
                               std::function<void(pqxx::connection&)> setup,
                               StatementWatchdog* watchdog,
                               std::chrono::milliseconds statement_limit)
    : info_(std::move(info)),
      size_(size),
      setup_(std::move(setup)),
      watchdog_(watchdog),
      statement_limit_(statement_limit) {}

ConnectionPool::~ConnectionPool() = default;

std::unique_ptr<pqxx::connection> ConnectionPool::connect(const ConnInfo& info,
                                                          const std::string& context) {
    try {
        return std::make_unique<pqxx::connection>(info.conninfo);
    } catch (const std::exception& e) {
        const std::string msg = redact_dsn(trimmed(e.what()));
        if (msg.find("unsupported startup parameter") != std::string::npos) {
            throw FailedPreconditionError(
                context + ": PostgreSQL (" + info.description +
                ") refuses a startup parameter: " + msg +
                "; a connection pooler such as PgBouncer accepts only a few: remove it from the "
                "connection string or the PG* environment (e.g. options, PGOPTIONS), or add it "
                "to the pooler's ignore_startup_parameters");
        }
        throw UnavailableError(context + ": cannot connect to PostgreSQL (" + info.description +
                               "): " + msg);
    }
}

void ConnectionPool::set_up_session(pqxx::connection& conn, const ConnInfo& info) {
    if (info.statement_timeout.count() == 0) return;
    // One statement, not startup `options`: PgBouncer refuses those (or, told
    // to ignore them, drops them without a word).  Only warnings and worse
    // are sent: a warning during a write then always means its outcome is
    // unknown (see WarningLog).
    pqxx::nontransaction tx(conn);
    tx.exec_params("SELECT set_config('statement_timeout', $1, false),"
                   " set_config('client_min_messages', 'warning', false)",
                   std::to_string(info.statement_timeout.count()));
}

ConnectionPool::Handle ConnectionPool::borrow(const std::string& context) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return !idle_.empty() || in_use_ + idle_.size() < size_; });
    ++in_use_;
    if (!idle_.empty()) {
        auto conn = std::move(idle_.back());
        idle_.pop_back();
        return Handle(this, std::move(conn));
    }
    lk.unlock();
    std::unique_ptr<Pooled> pooled;
    try {
        pooled = std::make_unique<Pooled>();
        pooled->conn = connect(info_, context);
        pooled->warnings = std::make_unique<WarningLog>(*pooled->conn);
    } catch (...) {
        give_back(nullptr);
        throw;
    }
    // The session setup and `setup` run statements: watched like any other,
    // so that a server that stops answering cannot hold the caller.
    Handle handle(this, std::move(pooled));
    try {
        set_up_session(*handle, info_);
        if (setup_) setup_(*handle);
    } catch (const Error&) {
        handle.discard();
        throw;
    } catch (const std::exception& e) {
        const bool cut_off = handle.cut_off();
        handle.discard();
        if (cut_off) {
            throw UnavailableError(context + ": no answer from PostgreSQL (" + info_.description +
                                   ") within " + std::to_string(statement_limit_.count()) +
                                   " ms while setting up a new connection; the connection was closed");
        }
        throw UnavailableError(context + ": cannot set up a connection to PostgreSQL (" +
                               info_.description + "): " + redact_dsn(trimmed(e.what())));
    }
    return handle;
}

void ConnectionPool::give_back(std::unique_ptr<Pooled> conn) {
    {
        std::lock_guard lk(mu_);
        --in_use_;
        if (conn && conn->conn->is_open()) idle_.push_back(std::move(conn));
    }
    cv_.notify_one();
}

void ConnectionPool::clear_idle() {
    std::vector<std::unique_ptr<Pooled>> drop;
    {
        std::lock_guard lk(mu_);
        drop.swap(idle_);
    }
    cv_.notify_all();
}

std::size_t ConnectionPool::open_connections() const {
    std::lock_guard lk(mu_);
    return in_use_ + idle_.size();
}

}  // namespace pgelect::detail
