// make_conninfo / redact_dsn: connection strings, hardened and without secrets in messages.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pg/conninfo.hpp"
#include "pgelect/errors.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using pgelect::InvalidArgumentError;
using pgelect::detail::ConnDefaults;
using pgelect::detail::ConnInfo;
using pgelect::detail::make_conninfo;
using pgelect::detail::redact_dsn;
using pgelect_test::contains;
using pgelect_test::lacks;
using pgelect_test::message_of;

// Parses the key='value' string make_conninfo produces (every value quoted,
// \' and \\ escaped, as libpq reads it).
std::map<std::string, std::string> parse_kv(const std::string& s) {
    std::map<std::string, std::string> out;
    std::size_t i = 0;
    auto fail = [&](const char* why) {
        ADD_FAILURE() << "cannot parse conninfo (" << why << ") at " << i << ": " << s;
        return out;
    };
    while (i < s.size()) {
        while (i < s.size() && s[i] == ' ') ++i;
        if (i >= s.size()) break;
        auto eq = s.find('=', i);
        if (eq == std::string::npos) return fail("no =");
        std::string key = s.substr(i, eq - i);
        i = eq + 1;
        if (i >= s.size() || s[i] != '\'') return fail("unquoted value");
        ++i;
        std::string value;
        for (;;) {
            if (i >= s.size()) return fail("unterminated quote");
            char c = s[i++];
            if (c == '\\') {
                if (i >= s.size()) return fail("dangling backslash");
                value += s[i++];
            } else if (c == '\'') {
                break;
            } else {
                value += c;
            }
        }
        if (out.count(key)) return fail("duplicate key");
        out[key] = value;
    }
    return out;
}

ConnDefaults defaults(std::chrono::milliseconds statement_timeout = 1234ms) {
    ConnDefaults d;
    d.connect_timeout = 5000ms;
    d.statement_timeout = statement_timeout;
    d.tcp_user_timeout = 10000ms;
    d.application_name = "pgelect";
    return d;
}

// Clears the libpq environment variables make_conninfo looks at, and restores them.
class ConnInfoTest : public ::testing::Test {
protected:
    void SetUp() override {
        for (const char* v : kVars) {
            const char* cur = std::getenv(v);
            saved_.emplace_back(v, cur ? std::optional<std::string>(cur) : std::nullopt);
            unsetenv(v);
        }
    }
    void TearDown() override {
        for (const auto& [name, value] : saved_) {
            if (value) {
                setenv(name.c_str(), value->c_str(), 1);
            } else {
                unsetenv(name.c_str());
            }
        }
    }
    static constexpr const char* kVars[] = {"PGCONNECT_TIMEOUT", "PGAPPNAME", "PGOPTIONS"};
    std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST_F(ConnInfoTest, KeyValueDsnKeepsSettingsAndAddsDefaults) {
    const auto info =
        make_conninfo("host=db.example port=5433 dbname=app user=alice password=secret", defaults());
    const auto kv = parse_kv(info.conninfo);
    EXPECT_EQ(kv.at("host"), "db.example");
    EXPECT_EQ(kv.at("port"), "5433");
    EXPECT_EQ(kv.at("dbname"), "app");
    EXPECT_EQ(kv.at("user"), "alice");
    EXPECT_EQ(kv.at("password"), "secret");  // libpq needs it
    EXPECT_EQ(kv.at("connect_timeout"), "5");
    EXPECT_EQ(kv.at("keepalives"), "1");
    EXPECT_TRUE(kv.count("keepalives_idle"));
    EXPECT_TRUE(kv.count("keepalives_interval"));
    EXPECT_TRUE(kv.count("keepalives_count"));
    EXPECT_EQ(kv.at("tcp_user_timeout"), "10000");
    EXPECT_EQ(kv.at("application_name"), "pgelect");
    // Set by a statement on each new connection: poolers refuse startup options.
    EXPECT_FALSE(kv.count("options"));
    EXPECT_EQ(info.statement_timeout, 1234ms);

    EXPECT_TRUE(contains(info.description, "host=db.example"));
    EXPECT_TRUE(contains(info.description, "port=5433"));
    EXPECT_TRUE(contains(info.description, "dbname=app"));
    EXPECT_TRUE(contains(info.description, "user=alice"));
    EXPECT_TRUE(lacks(info.description, "secret"));
    EXPECT_TRUE(lacks(info.description, "password"));
}

TEST_F(ConnInfoTest, UriDsnIsParsed) {
    const auto info =
        make_conninfo("postgresql://alice:secret@db.example:5433/app?sslmode=require", defaults());
    const auto kv = parse_kv(info.conninfo);
    EXPECT_EQ(kv.at("host"), "db.example");
    EXPECT_EQ(kv.at("port"), "5433");
    EXPECT_EQ(kv.at("dbname"), "app");
    EXPECT_EQ(kv.at("user"), "alice");
    EXPECT_EQ(kv.at("password"), "secret");
    EXPECT_EQ(kv.at("sslmode"), "require");
    EXPECT_FALSE(kv.count("options"));
    EXPECT_TRUE(contains(info.description, "host=db.example"));
    EXPECT_TRUE(contains(info.description, "user=alice"));
    EXPECT_TRUE(lacks(info.description, "secret"));
}

TEST_F(ConnInfoTest, PasswordInUriQueryStaysOutOfTheDescription) {
    const auto info = make_conninfo("postgresql://alice@h/db?password=secret", defaults());
    EXPECT_EQ(parse_kv(info.conninfo).at("password"), "secret");
    EXPECT_TRUE(lacks(info.description, "secret"));
}

TEST_F(ConnInfoTest, QuotedPasswordSurvivesRequoting) {
    const auto info = make_conninfo("host=h password='se cret' user=u", defaults());
    EXPECT_EQ(parse_kv(info.conninfo).at("password"), "se cret");
    EXPECT_TRUE(lacks(info.description, "se cret"));
    EXPECT_TRUE(lacks(info.description, "cret"));

    // Quotes and backslashes are escaped so that libpq reads the same value back.
    const auto tricky = make_conninfo(R"(host=h password='it\'s a \\ secret')", defaults());
    EXPECT_EQ(parse_kv(tricky.conninfo).at("password"), R"(it's a \ secret)");
    const auto again = make_conninfo(tricky.conninfo, defaults());
    EXPECT_EQ(parse_kv(again.conninfo).at("password"), R"(it's a \ secret)");
}

TEST_F(ConnInfoTest, UserSettingsWin) {
    const auto info = make_conninfo(
        "host=h connect_timeout=7 application_name=myapp keepalives=0 tcp_user_timeout=777", defaults());
    const auto kv = parse_kv(info.conninfo);
    EXPECT_EQ(kv.at("connect_timeout"), "7");
    EXPECT_EQ(kv.at("application_name"), "myapp");
    EXPECT_EQ(kv.at("keepalives"), "0");
    EXPECT_EQ(kv.at("tcp_user_timeout"), "777");
}

TEST_F(ConnInfoTest, UserOptionsArePassedOnAndTheStatementTimeoutKeptApart) {
    const auto info = make_conninfo("host=h options='-c search_path=ops'", defaults(2500ms));
    EXPECT_EQ(parse_kv(info.conninfo).at("options"), "-c search_path=ops");
    EXPECT_EQ(info.statement_timeout, 2500ms);
}

TEST_F(ConnInfoTest, SeveralHostsOnlyTakeTheWritableOne) {
    EXPECT_EQ(parse_kv(make_conninfo("host=db1,db2 port=5432,5433", defaults()).conninfo)
                  .at("target_session_attrs"),
              "read-write");
    EXPECT_EQ(parse_kv(make_conninfo("postgresql://db1:5432,db2:5433/app", defaults()).conninfo)
                  .at("target_session_attrs"),
              "read-write");
    EXPECT_FALSE(parse_kv(make_conninfo("host=db1", defaults()).conninfo).count("target_session_attrs"));
    EXPECT_EQ(parse_kv(make_conninfo("host=db1,db2 target_session_attrs=any", defaults()).conninfo)
                  .at("target_session_attrs"),
              "any");
}

TEST_F(ConnInfoTest, ConnectTimeoutIsRoundedUpToWholeSeconds) {
    ConnDefaults d = defaults();
    d.connect_timeout = 2500ms;
    EXPECT_EQ(parse_kv(make_conninfo("host=h", d).conninfo).at("connect_timeout"), "3");
    d.connect_timeout = 2000ms;
    EXPECT_EQ(parse_kv(make_conninfo("host=h", d).conninfo).at("connect_timeout"), "2");
}

TEST_F(ConnInfoTest, CustomApplicationNameDefault) {
    ConnDefaults d = defaults();
    d.application_name = "svc";
    EXPECT_EQ(parse_kv(make_conninfo("host=h", d).conninfo).at("application_name"), "svc");
}

TEST_F(ConnInfoTest, EmptyDsnUsesEnvironment) {
    const auto info = make_conninfo("", defaults());
    const auto kv = parse_kv(info.conninfo);
    EXPECT_FALSE(kv.count("host"));
    EXPECT_FALSE(kv.count("options"));
    EXPECT_EQ(info.description, "libpq defaults (PG* environment)");
}

TEST_F(ConnInfoTest, EnvironmentSettingsAreNotOverridden) {
    setenv("PGAPPNAME", "from-env", 1);
    setenv("PGCONNECT_TIMEOUT", "9", 1);
    setenv("PGOPTIONS", "-c work_mem=64kB", 1);
    const auto kv = parse_kv(make_conninfo("host=h", defaults()).conninfo);
    EXPECT_FALSE(kv.count("application_name"));  // libpq takes PGAPPNAME
    EXPECT_FALSE(kv.count("connect_timeout"));   // libpq takes PGCONNECT_TIMEOUT
    EXPECT_FALSE(kv.count("options"));           // libpq takes PGOPTIONS
}

TEST_F(ConnInfoTest, UnparsableDsnThrowsWithoutThePassword) {
    auto msg = message_of<InvalidArgumentError>(
        [] { make_conninfo("host=x password=secret bogus", defaults()); });
    EXPECT_TRUE(lacks(msg, "secret"));
    EXPECT_TRUE(contains(msg, "bogus"));
    EXPECT_TRUE(contains(msg, "host=x"));

    msg = message_of<InvalidArgumentError>(
        [] { make_conninfo("host=x password='secret", defaults()); });  // unterminated quote
    EXPECT_TRUE(lacks(msg, "secret"));

    msg = message_of<InvalidArgumentError>(
        [] { make_conninfo("host=x nosuchoption=1 password=secret", defaults()); });
    EXPECT_TRUE(lacks(msg, "secret"));
    EXPECT_TRUE(contains(msg, "nosuchoption"));
}

TEST_F(ConnInfoTest, UnparsableUriThrowsWithoutThePassword) {
    for (const char* dsn : {
             "postgresql://u:secret@[::1/db",             // unterminated IPv6 address
             "postgresql://u:secret@h/db?bogus=1",        // unknown parameter
             "postgresql://u@h/db?password=secret&bogus=1",
             "postgresql://u:secret@h:5432/db?sslmode",   // parameter without value
         }) {
        SCOPED_TRACE(dsn);
        auto msg = message_of<InvalidArgumentError>([&] { make_conninfo(dsn, defaults()); });
        EXPECT_TRUE(lacks(msg, "secret"));
        EXPECT_TRUE(contains(msg, "invalid connection string"));
    }
}

TEST_F(ConnInfoTest, ErrorKindIsInvalidArgument) {
    try {
        make_conninfo("bogus", defaults());
        FAIL() << "did not throw";
    } catch (const pgelect::Error& e) {
        EXPECT_EQ(e.kind(), pgelect::ErrorKind::invalid_argument);
    }
}

// ---- redact_dsn --------------------------------------------------------------

TEST(RedactDsn, KeyValuePassword) {
    EXPECT_EQ(redact_dsn("host=h password=secret user=u"), "host=h password=*** user=u");
    EXPECT_EQ(redact_dsn("password=secret"), "password=***");
    EXPECT_EQ(redact_dsn("host=h password='se cret' user=u"), "host=h password=*** user=u");
    EXPECT_TRUE(lacks(redact_dsn(R"(password='it\'s secret' user=u)"), "secret"));
    EXPECT_TRUE(contains(redact_dsn(R"(password='it\'s secret' user=u)"), "user=u"));
    EXPECT_TRUE(lacks(redact_dsn("host=h password = secret"), "secret"));
    EXPECT_TRUE(lacks(redact_dsn("host=h PASSWORD=secret"), "secret"));
}

TEST(RedactDsn, UriPassword) {
    EXPECT_EQ(redact_dsn("postgresql://u:secret@h/db"), "postgresql://u:***@h/db");
    EXPECT_EQ(redact_dsn("postgres://u:secret@h:5432/db?sslmode=require"),
              "postgres://u:***@h:5432/db?sslmode=require");
    EXPECT_EQ(redact_dsn("postgresql://u@h/db?password=secret"), "postgresql://u@h/db?password=***");
    const auto multi = redact_dsn("postgresql://u@h/db?sslmode=require&password=secret&application_name=x");
    EXPECT_TRUE(lacks(multi, "secret"));
    EXPECT_TRUE(contains(multi, "?sslmode=require&password=***"));
    EXPECT_TRUE(lacks(redact_dsn("postgresql://:secret@h/db"), "secret"));
}

TEST(RedactDsn, NothingToRedact) {
    EXPECT_EQ(redact_dsn("host=h user=u dbname=d"), "host=h user=u dbname=d");
    EXPECT_EQ(redact_dsn("postgresql://u@h:5432/db"), "postgresql://u@h:5432/db");
    EXPECT_EQ(redact_dsn("postgresql://[::1]:5432/db"), "postgresql://[::1]:5432/db");
    EXPECT_EQ(redact_dsn(""), "");
}

}  // namespace

// ---- known defects (disabled; see the report) --------------------------------
// Enable with --gtest_also_run_disabled_tests once redact_dsn/make_conninfo are fixed.

namespace {

// libpq accepts a backslash-escaped space in an unquoted value
// ("password=se\ cret" is the password "se cret"); \S+ stops at the space.
TEST(RedactDsn, BackslashEscapedSpaceInUnquotedPassword) {
    EXPECT_TRUE(lacks(redact_dsn(R"(host=h password=se\ cret user=u)"), "cret"));
}

// An unterminated quoted password: the rest of it after the first space survives.
TEST(RedactDsn, UnterminatedQuotedPassword) {
    EXPECT_TRUE(lacks(redact_dsn("host=h password='sec ret"), "ret"));
}

// The key=value pattern also matches "password=" inside a URI query and eats
// every parameter after it.
TEST(RedactDsn, UriQueryKeepsParametersAfterThePassword) {
    EXPECT_EQ(redact_dsn("postgresql://u@h/db?sslmode=require&password=secret&application_name=x"),
              "postgresql://u@h/db?sslmode=require&password=***&application_name=x");
}

// libpq's own message quotes a malformed percent-encoded token verbatim; when
// that token is the password, the InvalidArgumentError repeats it.
TEST_F(ConnInfoTest, MalformedPercentEncodedPasswordIsNotRepeated) {
    for (const char* dsn : {"postgresql://u:sec%zzret@h/db", "postgresql://h/db?password=sec%zzret"}) {
        SCOPED_TRACE(dsn);
        auto msg = message_of<InvalidArgumentError>([&] { make_conninfo(dsn, defaults()); });
        EXPECT_TRUE(lacks(msg, "zzret"));
    }
}

}  // namespace
