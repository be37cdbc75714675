#include "pg/pool.hpp"

#include <pqxx/except>

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

ConnectionPool::Handle::Handle(ConnectionPool* pool, std::unique_ptr<pqxx::connection> conn)
    : pool_(pool), conn_(std::move(conn)) {
    if (pool_->watchdog_ != nullptr && conn_) {
        ticket_ = pool_->watchdog_->arm(conn_->sock(),
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
        throw UnavailableError(context + ": cannot connect to PostgreSQL (" + info.description +
                               "): " + redact_dsn(trimmed(e.what())));
    }
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
    try {
        auto conn = connect(info_, context);
        if (setup_) setup_(*conn);
        return Handle(this, std::move(conn));
    } catch (...) {
        give_back(nullptr);
        throw;
    }
}

void ConnectionPool::give_back(std::unique_ptr<pqxx::connection> conn) {
    {
        std::lock_guard lk(mu_);
        --in_use_;
        if (conn && conn->is_open()) idle_.push_back(std::move(conn));
    }
    cv_.notify_one();
}

void ConnectionPool::clear_idle() {
    std::vector<std::unique_ptr<pqxx::connection>> drop;
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
