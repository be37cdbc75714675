// Bad input through the public API, each with the exact error it produces:
// lock and table names, option rules, configurations, connection strings,
// a missing lock table, a role without privileges.  After every failure the
// lock row is absent or free: nothing is left half-held.
// docs/errors.md lists these messages; keep the two in step.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <future>

#include "pgelect/service.hpp"
#include "ports.hpp"
#include "test_env.hpp"

namespace pgelect::test {
namespace {

using Clock = std::chrono::steady_clock;

// Runs `fn`, expects an E of `kind`, and returns its message ("" otherwise).
template <class E, class Fn>
std::string error_of(Fn&& fn, ErrorKind kind) {
    try {
        fn();
    } catch (const E& e) {
        EXPECT_EQ(e.kind(), kind) << e.what();
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "threw another exception: " << e.what();
        return "";
    }
    ADD_FAILURE() << "did not throw";
    return "";
}

std::string invalid(const std::function<void()>& fn) {
    return error_of<InvalidArgumentError>(fn, ErrorKind::invalid_argument);
}

const std::string kTableRule =
    " (expected [schema.]table, each part [A-Za-z_][A-Za-z0-9_]*, schema at most 63 and table at "
    "most 57 characters)";

// A local TCP port nothing listens on.
class TempFile {
  public:
    explicit TempFile(const std::string& text) {
        char tmpl[] = "/tmp/pgelect-bad-input-XXXXXX";
        const int fd = ::mkstemp(tmpl);
        ::close(fd);
        path_ = tmpl;
        std::ofstream(path_, std::ios::binary) << text;
    }
    ~TempFile() { std::remove(path_.c_str()); }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

// A login role for the duration of a test, dropped afterwards.
class Role {
  public:
    explicit Role(const std::string& prefix, const std::string& password)
        : name_(unique_table(prefix)) {
        sql("CREATE ROLE " + name_ + " LOGIN PASSWORD '" + password + "'");
        sql("GRANT CONNECT ON DATABASE postgres TO " + name_);
    }
    ~Role() {
        try {
            sql("DROP OWNED BY " + name_ + "; DROP ROLE " + name_);
        } catch (const std::exception& e) {
            std::cerr << "dropping role " << name_ << ": " << e.what() << "\n";
        }
    }
    const std::string& name() const { return name_; }

  private:
    std::string name_;
};

// ---- lock names -------------------------------------------------------------

class BadInput : public LockTableTest {
  protected:
    // No row at all, and no row held: a failed call left nothing behind.
    void expect_table_empty() {
        EXPECT_EQ(sql("SELECT count(*) FROM \"" + table_ + "\"")[0][0].as<int>(), 0);
    }
};

TEST_F(BadInput, LockNames) {
    const std::string nul("ab\0cd", 5);
    const std::string long_name(256, 'n');
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"", "invalid lock name: it is empty"},
        {long_name, "invalid lock name \"" + std::string(80, 'n') +
                        "...\": it has 256 characters, at most 255 are allowed"},
        {"ab\xff"
         "cd",
         "invalid lock name \"ab\\xffcd\": it is not valid UTF-8"},
        {"\xc3\x28", "invalid lock name \"\\xc3(\": it is not valid UTF-8"},
        {nul, "invalid lock name \"ab\\x00cd\": it contains a NUL byte"},
    };
    for (const auto& [name, message] : cases) {
        SCOPED_TRACE(::testing::PrintToString(name));
        EXPECT_EQ(invalid([&] { client_->acquire(name); }), message);
        EXPECT_EQ(invalid([&] { client_->try_acquire(name); }), message);
        EXPECT_EQ(invalid([&] { client_->get(name); }), message);
        EXPECT_EQ(invalid([&] { client_->with_lock(name, [](std::stop_token) {}); }), message);
        EXPECT_EQ(invalid([&] { Elector(*client_, ElectorOptions{.group = name}); }), message);
    }
    // 255 characters (not bytes) are fine.
    std::string e255;
    for (int i = 0; i < 255; ++i) e255 += "\xc3\xa9";
    client_->try_acquire(e255).release();
    expect_table_empty();
}

TEST_F(BadInput, OwnerAndIdentity) {
    EXPECT_EQ(
        invalid([&] { client_->acquire("x", AcquireOptions{.owner = std::string("a\0b", 3)}); }),
        "invalid owner \"a\\x00b\": it contains a NUL byte");
    EXPECT_EQ(invalid([&] { client_->acquire("x", AcquireOptions{.owner = ""}); }),
              "invalid owner: it is empty");
    auto o = options_for(table_);
    o.owner = std::string(256, 'o');
    EXPECT_EQ(invalid([&] { LockClient(dsn(), o); }),
              "invalid owner \"" + std::string(80, 'o') +
                  "...\": it has 256 characters, at most 255 are allowed");
    EXPECT_EQ(invalid([&] { Elector(*client_, ElectorOptions{.group = "g", .identity = "\xff"}); }),
              "invalid owner \"\\xff\": it is not valid UTF-8");
    expect_table_empty();
}

// ---- table names ------------------------------------------------------------

TEST(BadInputTable, HostileNamesAreRefusedBeforeAnySql) {
    const std::string victim = unique_table("victim");
    sql("CREATE TABLE " + victim + " (x int)");
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"locks; DROP TABLE " + victim,
         "invalid lock table name \"locks; DROP TABLE " + victim + "\"" + kTableRule},
        {"lo\"cks", "invalid lock table name \"lo\"cks\"" + kTableRule},
        {"lo'cks", "invalid lock table name \"lo'cks\"" + kTableRule},
        {"\"locks\"", "invalid lock table name \"\"locks\"\"" + kTableRule},
        {"", "invalid lock table name \"\"" + kTableRule},
        {"a.b.c", "invalid lock table name \"a.b.c\"" + kTableRule},
        {std::string(58, 't'),
         "invalid lock table name \"" + std::string(58, 't') +
             "\": the table part is 58 characters; at most 57 leave room for the sequence "
             "\"<table>_fence\" within PostgreSQL's 63-byte identifiers"},
        {std::string(64, 't'),
         "invalid lock table name \"" + std::string(64, 't') + "\"" + kTableRule},
        {std::string(64, 's') + ".locks", "invalid lock table name \"" + std::string(64, 's') +
                                              ".locks\": bad schema part" + kTableRule},
        {"l\xc3\xa4"
         "cks",
         "invalid lock table name \"l\\xc3\\xa4cks\"" + kTableRule},
    };
    for (const auto& [table, message] : cases) {
        SCOPED_TRACE(table);
        EXPECT_EQ(invalid([&] { LockClient(dsn(), options_for(table)); }), message);
        EXPECT_EQ(invalid([&] { schema_sql(table); }), message);
        Config cfg;
        cfg.database.dsn = dsn();
        cfg.database.table = table;
        cfg.groups = {GroupConfig{"g"}};
        cfg.metrics.listen = "";
        EXPECT_EQ(invalid([&] { ElectionService{cfg}; }), message);
    }
    EXPECT_EQ(sql("SELECT to_regclass('" + victim + "') IS NOT NULL")[0][0].as<bool>(), true);
    sql("DROP TABLE " + victim);
}

// Table names are always quoted: SQL keywords are ordinary names.
TEST(BadInputTable, ReservedWordsWorkAsTableNames) {
    const std::string schema = unique_table("select");  // not reserved itself: a fresh schema
    sql("CREATE SCHEMA " + schema);
    for (const std::string& table :
         std::vector<std::string>{"user", "select", "order", "table", "Group", schema + ".from"}) {
        SCOPED_TRACE(table);
        LockClient client(dsn(), options_for(table));
        client.create_table();
        auto lock = client.acquire("job", AcquireOptions{.data = "d1"});
        EXPECT_EQ(client.get("job").data, std::optional<std::string>("d1"));
        client.heartbeat(lock);
        lock.set_data("d2");
        ASSERT_EQ(client.get_all().size(), 1u);
        EXPECT_EQ(client.get_all()[0].data, std::optional<std::string>("d2"));
        // A waiter in another client is woken by the release (LISTEN/NOTIFY).
        LockClient other(dsn(), options_for(table));
        auto waiter = std::async(std::launch::async, [&] { return other.acquire("job"); });
        EXPECT_EQ(waiter.wait_for(200ms), std::future_status::timeout);
        lock.release();
        auto taken = waiter.get();
        EXPECT_GT(taken.fencing_token(), lock.fencing_token());
        taken.release();
        EXPECT_THROW(client.get("job"), NotFoundError);
        client.drop_table();
        EXPECT_FALSE(sql("SELECT to_regclass('" +
                         (table.find('.') == std::string::npos ? "\"" + table + "\""
                                                               : schema + ".\"from\"") +
                         "') IS NOT NULL")[0][0]
                         .as<bool>());
    }
    sql("DROP SCHEMA " + schema + " CASCADE");
}

// ---- option rules -----------------------------------------------------------

LeaseTiming timing(int lease, int deadline, int heartbeat, int retry = 50) {
    LeaseTiming t;
    t.lease_duration = std::chrono::milliseconds(lease);
    t.renew_deadline = std::chrono::milliseconds(deadline);
    t.heartbeat_interval = std::chrono::milliseconds(heartbeat);
    t.retry_interval = std::chrono::milliseconds(retry);
    return t;
}

TEST_F(BadInput, TimingRules) {
    const std::vector<std::pair<LeaseTiming, std::string>> cases = {
        {timing(1000, 900, 501),
         "invalid lease timing: heartbeat_interval (501ms) must be at most half of lease_duration "
         "(1000ms)"},
        {timing(1000, 900, 1000),
         "invalid lease timing: heartbeat_interval (1000ms) must be at most half of lease_duration "
         "(1000ms)"},
        {timing(0, 0, 0), "invalid lease timing: lease_duration must be positive (got 0ms)"},
        {timing(-1000, 700, 200),
         "invalid lease timing: lease_duration must be positive (got -1000ms)"},
        {timing(1000, 700, -200),
         "invalid lease timing: heartbeat_interval must be positive, or 0 to turn heartbeats off "
         "(got -200ms)"},
        {timing(1000, 200, 200),
         "invalid lease timing: renew_deadline (200ms) must be greater than heartbeat_interval "
         "(200ms)"},
        {timing(1000, 0, 0),
         "invalid lease timing: renew_deadline (0ms) must be greater than heartbeat_interval "
         "(0ms)"},
        {timing(1000, 1000, 200),
         "invalid lease timing: renew_deadline (1000ms) must be less than lease_duration (1000ms)"},
        {timing(1000, 700, 200, 0),
         "invalid lease timing: retry_interval must be positive (got 0ms)"},
        {timing(1000, 700, 200, -50),
         "invalid lease timing: retry_interval must be positive (got -50ms)"},
    };
    for (const auto& [t, message] : cases) {
        SCOPED_TRACE(message);
        EXPECT_EQ(invalid([&] { validate_timing(t); }), message);
        EXPECT_EQ(invalid([&] { LockClient(dsn(), options_for(table_, t)); }), message);
        EXPECT_EQ(invalid([&] { client_->acquire("t", AcquireOptions{.timing = t}); }), message);
        EXPECT_EQ(invalid([&] { Elector(*client_, ElectorOptions{.group = "g", .timing = t}); }),
                  message);
    }
    // A lock's own timing must also leave the client's renewal connection time
    // to retry a renewal whose reply was lost (fast timing: renewal timeout 300 ms).
    EXPECT_EQ(invalid([&] { client_->acquire("t", AcquireOptions{.timing = timing(1000, 900, 500)}); }),
              "invalid lease timing: renew_deadline (900ms) leaves no time to retry a renewal whose "
              "reply is lost: heartbeat_interval (500ms) + renewal statement timeout (300ms) + its "
              "grace (75ms) + retry pause (125ms) = 1000ms; raise renew_deadline, or lower "
              "heartbeat_interval");
    // The boundaries themselves are fine: heartbeat exactly half the lease, or 0 (off).
    auto o = options_for(table_);
    o.renewal_timeout = 100ms;
    LockClient short_renewals(dsn(), o);
    short_renewals.try_acquire("edge", AcquireOptions{.timing = timing(1000, 900, 500)}).release();
    client_->try_acquire("edge", AcquireOptions{.timing = timing(1000, 900, 0)}).release();
    expect_table_empty();
}

TEST_F(BadInput, ClientOptionRules) {
    auto with = [&](auto mutate) {
        auto o = options_for(table_);
        mutate(o);
        return o;
    };
    EXPECT_EQ(invalid([&] { LockClient(dsn(), with([](auto& o) { o.pool_size = 0; })); }),
              "invalid options: pool_size must be at least 1");
    EXPECT_EQ(invalid([&] { LockClient(dsn(), with([](auto& o) { o.statement_timeout = 0ms; })); }),
              "invalid options: statement_timeout must be positive (got 0ms)");
    EXPECT_EQ(invalid([&] { LockClient(dsn(), with([](auto& o) { o.statement_timeout = -1s; })); }),
              "invalid options: statement_timeout must be positive (got -1000ms)");
    EXPECT_EQ(
        invalid([&] { LockClient(dsn(), with([](auto& o) { o.connect_timeout = 1500ms; })); }),
        "invalid options: connect_timeout must be at least 2s (got 1500ms); libpq counts it "
        "in whole seconds");
    EXPECT_EQ(invalid([&] { LockClient(dsn(), with([](auto& o) { o.connect_timeout = 0ms; })); }),
              "invalid options: connect_timeout must be at least 2s (got 0ms); libpq counts it in "
              "whole seconds");
    EXPECT_EQ(
        invalid([&] { LockClient(dsn(), with([](auto& o) { o.serialization_retries = -1; })); }),
        "invalid options: serialization_retries must not be negative");
    EXPECT_EQ(invalid([&] { Elector(*client_, ElectorOptions{.group = "g", .max_backoff = 0ms}); }),
              "invalid elector options: max_backoff must be positive");
    EXPECT_EQ(invalid([&] { Elector(*client_, ElectorOptions{.group = "g", .max_backoff = -1s}); }),
              "invalid elector options: max_backoff must be positive");
}

// ---- configurations ---------------------------------------------------------

Config config_for(const std::string& table) {
    Config c;
    c.database.dsn = dsn();
    c.database.table = table;
    c.defaults = fast_timing();
    c.groups = {GroupConfig{"alpha", "", fast_timing(), true}};
    c.metrics.listen = "";
    return c;
}

// A Config built in code skips the YAML checks; the service still refuses it.
TEST_F(BadInput, ServiceConfigBuiltInCode) {
    auto c = config_for(table_);
    c.groups.clear();
    EXPECT_EQ(invalid([&] { ElectionService{c}; }), "election service: no groups configured");
    c = config_for(table_);
    c.groups.push_back(c.groups[0]);
    EXPECT_EQ(invalid([&] { ElectionService{c}; }), "election service: duplicate group \"alpha\"");
    c = config_for(table_);
    c.groups[0].name = "";
    EXPECT_EQ(invalid([&] { ElectionService{c}; }), "invalid lock name: it is empty");
    c = config_for(table_);
    c.database.pool_size = 0;
    EXPECT_EQ(invalid([&] { ElectionService{c}; }),
              "invalid options: pool_size must be at least 1");
    c = config_for(table_);
    c.database.statement_timeout = 0ms;
    EXPECT_EQ(invalid([&] { ElectionService{c}; }),
              "invalid options: statement_timeout must be positive (got 0ms)");
    c = config_for(table_);
    c.groups[0].timing.heartbeat_interval = 600ms;
    EXPECT_EQ(invalid([&] { ElectionService{c}; }),
              "invalid lease timing: heartbeat_interval (600ms) must be at most half of "
              "lease_duration (1000ms)");
    c = config_for(table_);
    c.metrics.listen = "localhost";
    EXPECT_EQ(invalid([&] { ElectionService{c}; }),
              "metrics: listen address \"localhost\" is not host:port");
    c = config_for(table_);
    c.metrics.listen = "127.0.0.1:0";
    c.metrics.path = "metrics";
    EXPECT_EQ(invalid([&] { ElectionService{c}; }),
              "metrics: path \"metrics\" does not start with '/'");
    c = config_for(table_);
    ElectionService service(c);
    EXPECT_EQ(invalid([&] { service.on_become_leader("gamma", [](const Leadership&) {}); }),
              "election service: no group \"gamma\" is configured (groups: alpha)");
    EXPECT_EQ(invalid([&] { service.elector("gamma"); }),
              "election service: no group \"gamma\" is configured (groups: alpha)");
}

TEST(BadInputConfig, MetricsPortInUse) {
    Config c = config_for("locks");
    c.metrics.listen = "127.0.0.1:" + std::to_string(server_port());  // PostgreSQL listens there
    EXPECT_EQ(
        error_of<UnavailableError>([&] { ElectionService{c}; }, ErrorKind::unavailable),
        "metrics: cannot listen on 127.0.0.1:" + std::to_string(server_port()) +
            ": null context when constructing CivetServer. Possible problem binding to port.");
}

// The YAML checks are unit-tested one by one (tests/unit/config_test.cpp); here
// one of each kind goes the whole way through ElectionService::from_yaml.
TEST(BadInputConfig, YamlFiles) {
    const std::string groups = "groups:\n  - name: jobs\n";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"groups: [a, b\n", "2:1: invalid YAML: end of sequence flow not found"},
        {"groups:\n  - name: jobs\n    lease_duration: [15s]\n",
         "3:21: lease_duration in group \"jobs\": expected a duration such as 250ms, 15s or 2m, "
         "got a list"},
        {"database:\n  pool_size: four\n" + groups,
         "2:14: pool_size in database: expected an integer from 1 to 1000, got \"four\""},
        {"database:\n  create_table: sometimes\n" + groups,
         "2:17: create_table in database: expected true or false, got \"sometimes\""},
        {"database:\n  connect_timeout: 5s\n" + groups,
         "2:3: unknown key \"connect_timeout\" in database (valid keys: dsn, table, pool_size, "
         "statement_timeout, create_table, pooling, listen_dsn)"},
        {"defaults:\n  lease: 15s\n" + groups,
         "2:3: unknown key \"lease\" in defaults (valid keys: lease_duration, renew_deadline, "
         "heartbeat_interval, retry_interval, release_on_stop)"},
        {"defaults:\n  lease_duration: -15s\n" + groups,
         "2:19: lease_duration in defaults: invalid duration \"-15s\": it is negative"},
        {"defaults:\n  lease_duration: 0s\n" + groups,
         "2:19: lease_duration in defaults: must be positive, got \"0s\""},
        {"database:\n  statement_timeout: 0ms\n" + groups,
         "2:22: statement_timeout in database: must be positive, got \"0ms\""},
        {"defaults:\n  heartbeat_interval: 8s\n" + groups,
         "2:3: defaults: invalid lease timing: heartbeat_interval (8000ms) must be at most half of "
         "lease_duration (15000ms)"},
        {"groups: []\n", "1:9: groups: at least one group is required"},
        {"groups:\n", "1:1: groups: at least one group is required"},
        {"database:\n  table: user; drop\n" + groups,
         "2:10: table in database: invalid lock table name \"user; drop\"" + kTableRule},
        {std::string(100000, '['), "1:1: the document is nested too deeply"},
        {groups + "    data: \"" + std::string(10 * 1024 * 1024, 'x') + "\"\n",
         "0:0: the configuration is larger than 1 MiB (1048576 bytes); refusing to parse it"},
    };
    for (const auto& [yaml, message] : cases) {
        SCOPED_TRACE(yaml.substr(0, 80));
        TempFile file(yaml);
        const auto start = Clock::now();
        const std::string msg = error_of<ConfigError>(
            [&] { ElectionService::from_yaml(file.path()); }, ErrorKind::invalid_argument);
        EXPECT_EQ(msg, file.path() + ":" + message);
        EXPECT_LT(Clock::now() - start, 5s);
    }
}

// ---- connection strings -----------------------------------------------------

TEST(BadInputDsn, Unparsable) {
    EXPECT_EQ(
        invalid([] { LockClient("host=127.0.0.1 password=s3cret bogus"); }),
        "invalid connection string \"host=127.0.0.1 password=*** bogus\": missing \"=\" after "
        "\"***\" in connection info string");
    EXPECT_EQ(
        invalid([] { LockClient("host=127.0.0.1 password=s3cret dbname"); }),
        "invalid connection string \"host=127.0.0.1 password=*** dbname\": missing \"=\" after "
        "\"***\" in connection info string");
    EXPECT_EQ(invalid([] { LockClient("host=127.0.0.1 password='s3cret"); }),
              "invalid connection string \"host=127.0.0.1 password=***\": unterminated quoted "
              "string in connection info string");
    EXPECT_EQ(invalid([] { LockClient("host=127.0.0.1 colour=blue"); }),
              "invalid connection string \"host=127.0.0.1 colour=blue\": invalid connection option "
              "\"colour\"");
    EXPECT_EQ(
        invalid([] { LockClient("postgresql://u:s3cret@[::1/db"); }),
        "invalid connection string \"postgresql://u:***@[::1/db\": end of string reached when "
        "looking for matching \"]\" in IPv6 host address in URI: \"***\"");
}

TEST(BadInputDsn, UnreachableServerFailsFastWithoutThePassword) {
    const std::string port = std::to_string(closed_port());
    auto o = options_for("locks");
    o.connect_timeout = 2s;
    LockClient client("host=127.0.0.1 port=" + port + " user=u password=s3cret dbname=d", o);
    const std::string where = "(dbname=d host=127.0.0.1 port=" + port +
                              " user=u): connection to server at "
                              "\"127.0.0.1\", port " +
                              port +
                              " failed: Connection refused Is the "
                              "server running on that host and accepting TCP/IP connections?";
    const auto start = Clock::now();
    EXPECT_EQ(error_of<UnavailableError>([&] { client.acquire("job"); }, ErrorKind::unavailable),
              "acquire lock \"job\" on table locks: cannot connect to PostgreSQL " + where);
    EXPECT_EQ(error_of<UnavailableError>([&] { client.get("job"); }, ErrorKind::unavailable),
              "read lock \"job\" on table locks: cannot connect to PostgreSQL " + where);
    EXPECT_EQ(
        error_of<UnavailableError>([&] { client.try_create_table(); }, ErrorKind::unavailable),
        "create lock table locks if missing: cannot connect to PostgreSQL " + where);
    EXPECT_LT(Clock::now() - start, 2s);
}

// The role must authenticate with a password: pg_hba.conf (trust for
// everyone in the throwaway cluster) gets a scram-sha-256 line for it first.
class PasswordRule {
  public:
    explicit PasswordRule(const std::string& role) {
        const char* data = std::getenv("PGELECT_PG_DATA");
        if (data == nullptr) throw std::runtime_error("PGELECT_PG_DATA is not set");
        path_ = std::string(data) + "/pg_hba.conf";
        std::ifstream in(path_);
        original_.assign(std::istreambuf_iterator<char>(in), {});
        std::ofstream(path_, std::ios::trunc)
            << "host all " << role << " 127.0.0.1/32 scram-sha-256\n"
            << original_;
        sql("SELECT pg_reload_conf()");
    }
    ~PasswordRule() {
        std::ofstream(path_, std::ios::trunc) << original_;
        sql("SELECT pg_reload_conf()");
    }

  private:
    std::string path_;
    std::string original_;
};

std::string dsn_as(const std::string& user, const std::string& password,
                   const std::string& dbname = "postgres") {
    return "host=127.0.0.1 port=" + std::to_string(server_port()) + " user=" + user +
           " password=" + password + " dbname=" + dbname;
}

TEST(BadInputDsn, WrongPasswordIsRefusedAndNotShown) {
    Role role("pw", "right-password");
    PasswordRule rule(role.name());
    // The reload is asynchronous: wait until the rule is in force.
    ASSERT_TRUE(eventually([&] {
        try {
            pqxx::connection c(dsn_as(role.name(), "wrong-password"));
            return false;
        } catch (const pqxx::broken_connection&) {
            return true;
        }
    }));
    LockClient client(dsn_as(role.name(), "wrong-password"), options_for("locks"));
    const std::string msg =
        error_of<UnavailableError>([&] { client.acquire("job"); }, ErrorKind::unavailable);
    EXPECT_EQ(
        msg,
        "acquire lock \"job\" on table locks: cannot connect to PostgreSQL (dbname=postgres "
        "host=127.0.0.1 port=" +
            std::to_string(server_port()) + " user=" + role.name() +
            "): connection to server at \"127.0.0.1\", port " + std::to_string(server_port()) +
            " failed: FATAL:  password authentication failed for user \"" + role.name() + "\"");
    EXPECT_EQ(msg.find("wrong-password"), std::string::npos);
    // The right one is accepted.
    EXPECT_NO_THROW(pqxx::connection(dsn_as(role.name(), "right-password")));
}

TEST(BadInputDsn, UnknownDatabase) {
    LockClient client(dsn_as("postgres", "x", "no_such_db"), options_for("locks"));
    EXPECT_EQ(
        error_of<UnavailableError>([&] { client.acquire("job"); }, ErrorKind::unavailable),
        "acquire lock \"job\" on table locks: cannot connect to PostgreSQL (dbname=no_such_db "
        "host=127.0.0.1 port=" +
            std::to_string(server_port()) +
            " user=postgres): connection to server at "
            "\"127.0.0.1\", port " +
            std::to_string(server_port()) +
            " failed: FATAL:  database \"no_such_db\" does not exist");
}

// ---- database state ---------------------------------------------------------

TEST(BadInputDatabase, MissingTableSaysHowToCreateIt) {
    const std::string table = unique_table("missing");
    LockClient client(dsn(), options_for(table));
    const std::string how = ": the lock table " + table +
                            " does not exist; create it with LockClient::try_create_table() or by "
                            "applying schema.sql";
    auto fp = [](auto fn) {
        return error_of<FailedPreconditionError>(fn, ErrorKind::failed_precondition);
    };
    EXPECT_EQ(fp([&] { client.acquire("job"); }), "acquire lock \"job\" on table " + table + how);
    EXPECT_EQ(fp([&] { client.try_acquire("job"); }),
              "acquire lock \"job\" on table " + table + how);
    EXPECT_EQ(fp([&] { client.get("job"); }), "read lock \"job\" on table " + table + how);
    EXPECT_EQ(fp([&] { client.get_all(); }), "list locks on table " + table + how);
    Elector elector(client, ElectorOptions{.group = "g"});
    EXPECT_EQ(fp([&] { elector.leader(); }), "read lock \"g\" on table " + table + how);
    // Once created, the same client works.
    client.try_create_table();
    client.acquire("job").release();
    client.drop_table();
}

// A role that may connect but has no privilege on the lock table.
TEST_F(BadInput, NoPrivilegeOnTheTable) {
    Role role("noprv", "pw");
    // The fixture's table is in the public schema, which PUBLIC may use.
    auto o = options_for(table_);
    o.owner = "unprivileged";
    LockClient client(dsn_as(role.name(), "pw"), o);
    auto fp = [](auto fn) {
        return error_of<FailedPreconditionError>(fn, ErrorKind::failed_precondition);
    };
    const std::string denied = ": ERROR:  permission denied for table " + table_;
    // The acquire statement reads the epoch table first.
    EXPECT_EQ(fp([&] { client.acquire("job"); }),
              "acquire lock \"job\" on table " + table_ + denied + "_epoch");
    EXPECT_EQ(fp([&] { client.try_acquire("job"); }),
              "acquire lock \"job\" on table " + table_ + denied + "_epoch");
    EXPECT_EQ(fp([&] { client.get("job"); }), "read lock \"job\" on table " + table_ + denied);
    EXPECT_EQ(fp([&] { client.get_all(); }), "list locks on table " + table_ + denied);
    expect_table_empty();

    // Granted enough to take a lock, then the right to renew it is revoked.
    sql("GRANT SELECT, INSERT, UPDATE, DELETE ON " + table_ + " TO " + role.name() +
        "; GRANT USAGE ON SEQUENCE " + table_ + "_rvn, " + table_ + "_fence TO " + role.name() +
        "; GRANT SELECT, INSERT ON " + table_ + "_epoch TO " + role.name());
    // No automatic renewals: the test renews.  The lock must still be valid
    // for the three calls below (and two statements of the administrator's
    // in between), so its renew deadline is loaded_timing()'s 4 s: a 700 ms
    // deadline lapsed through the load alone on a busy machine, and the calls
    // then failed with "already released" instead of the denial they test.
    LeaseTiming manual = loaded_timing();
    manual.heartbeat_interval = 0ms;
    auto lock = client.acquire("job", AcquireOptions{.timing = manual});
    sql("REVOKE UPDATE ON " + table_ + " FROM " + role.name());
    EXPECT_EQ(fp([&] { client.heartbeat(lock); }),
              "renew lock \"job\" on table " + table_ + denied);
    EXPECT_EQ(fp([&] { lock.set_data("x"); }),
              "set data of lock \"job\" on table " + table_ + denied);
    sql("REVOKE ALL ON " + table_ + " FROM " + role.name());
    EXPECT_EQ(fp([&] { lock.release(); }), "release lock \"job\" on table " + table_ + denied);
    EXPECT_TRUE(lock.is_released());
    // The row it could not release is free for another client after one lease
    // (the same lease: every client of a table must use one).
    const auto start = Clock::now();
    client_->acquire("job", AcquireOptions{.timing = manual}).release();
    EXPECT_LT(Clock::now() - start, manual.lease_duration + 1s);
    expect_table_empty();
}

}  // namespace
}  // namespace pgelect::test
