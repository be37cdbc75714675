// YAML configuration: parse_duration, ${VAR} expansion, load_config / parse_config
// (values, inheritance, every error with its exact position and text), guards
// against pathological input, and the mapping onto the client and elector options.
#include "pgelect/config.hpp"

#include <gtest/gtest.h>

#include <ctime>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "config/env.hpp"
#include "config/suggest.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using pgelect::Config;
using pgelect::ConfigError;
using pgelect::Duration;
using pgelect::InvalidArgumentError;
using pgelect::parse_config;
using pgelect::parse_duration;
using pgelect_test::message_of;

// Sets (or unsets) an environment variable for the lifetime of the object.
class ScopedEnv {
public:
    ScopedEnv(std::string name, std::optional<std::string> value) : name_(std::move(name)) {
        if (const char* old = std::getenv(name_.c_str())) old_ = old;
        if (value) {
            ::setenv(name_.c_str(), value->c_str(), 1);
        } else {
            ::unsetenv(name_.c_str());
        }
    }
    ~ScopedEnv() {
        if (old_) {
            ::setenv(name_.c_str(), old_->c_str(), 1);
        } else {
            ::unsetenv(name_.c_str());
        }
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    std::string name_;
    std::optional<std::string> old_;
};

// A file in the temporary directory, removed at the end of the test.
class TempFile {
public:
    explicit TempFile(const std::string& content) {
        char tmpl[] = "/tmp/pgelect_config_test_XXXXXX";
        const int fd = ::mkstemp(tmpl);
        EXPECT_GE(fd, 0);
        ::close(fd);
        path_ = tmpl;
        std::ofstream(path_, std::ios::binary) << content;
    }
    ~TempFile() { std::remove(path_.c_str()); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

const std::string kGroups = "groups:\n  - name: jobs\n";

// The message of the ConfigError parse_config throws for `yaml` (source "test.yaml").
std::string error_of(const std::string& yaml) {
    return message_of<ConfigError>([&] { parse_config(yaml, "test.yaml"); });
}

std::string duration_error(const std::string& text) {
    return message_of<InvalidArgumentError>([&] { parse_duration(text); });
}

// ---------------------------------------------------------------- durations

TEST(ConfigDuration, EachUnit) {
    EXPECT_EQ(parse_duration("250ms"), 250ms);
    EXPECT_EQ(parse_duration("15s"), 15s);
    EXPECT_EQ(parse_duration("2m"), 2min);
    EXPECT_EQ(parse_duration("1h"), 1h);
    EXPECT_EQ(parse_duration("0s"), 0ms);
    EXPECT_EQ(parse_duration("0"), 0ms);
    EXPECT_EQ(parse_duration("007s"), 7s);
}

TEST(ConfigDuration, FractionalAndCompound) {
    EXPECT_EQ(parse_duration("1.5s"), 1500ms);
    EXPECT_EQ(parse_duration(".5s"), 500ms);
    EXPECT_EQ(parse_duration("0.25m"), 15s);
    EXPECT_EQ(parse_duration("1.5h"), 90min);
    EXPECT_EQ(parse_duration("2.000s"), 2s);
    EXPECT_EQ(parse_duration("0.001s"), 1ms);
    EXPECT_EQ(parse_duration("1m30s"), 90s);
    EXPECT_EQ(parse_duration("1h1m1s1ms"), 3661001ms);
    EXPECT_EQ(parse_duration("8760h"), 8760h);  // the largest accepted
}

TEST(ConfigDuration, ErrorsNameTheProblem) {
    EXPECT_EQ(duration_error(""), "invalid duration \"\": it is empty");
    EXPECT_EQ(duration_error("-5s"), "invalid duration \"-5s\": it is negative");
    EXPECT_EQ(duration_error("15"), "invalid duration \"15\": missing unit (ms, s, m or h)");
    EXPECT_EQ(duration_error("1m30"), "invalid duration \"1m30\": missing unit (ms, s, m or h)");
    EXPECT_EQ(duration_error("15x"),
              "invalid duration \"15x\": unknown unit \"x\" (use ms, s, m or h)");
    EXPECT_EQ(duration_error("15sec"),
              "invalid duration \"15sec\": unknown unit \"sec\" (use ms, s, m or h)");
    EXPECT_EQ(duration_error("15S"),
              "invalid duration \"15S\": unknown unit \"S\" (use ms, s, m or h)");
    const std::string syntax =
        ": expected a number followed by a unit (ms, s, m or h), e.g. 250ms, 15s, 1.5m, 2h";
    EXPECT_EQ(duration_error("abc"), "invalid duration \"abc\"" + syntax);
    EXPECT_EQ(duration_error("s"), "invalid duration \"s\"" + syntax);
    EXPECT_EQ(duration_error("15 s"), "invalid duration \"15 s\"" + syntax);
    EXPECT_EQ(duration_error(" 15s"), "invalid duration \" 15s\"" + syntax);
    EXPECT_EQ(duration_error("1.s"), "invalid duration \"1.s\"" + syntax);
    EXPECT_EQ(duration_error("+5s"), "invalid duration \"+5s\"" + syntax);
    EXPECT_EQ(duration_error("1.5ms"),
              "invalid duration \"1.5ms\": not a whole number of milliseconds");
    EXPECT_EQ(duration_error("0.0001s"),
              "invalid duration \"0.0001s\": not a whole number of milliseconds");
    EXPECT_EQ(duration_error("8761h"), "invalid duration \"8761h\": too large (at most 8760h)");
    EXPECT_EQ(duration_error("8760h1ms"),
              "invalid duration \"8760h1ms\": too large (at most 8760h)");
    EXPECT_EQ(duration_error("99999999999999999999999s"),
              "invalid duration \"99999999999999999999999s\": too large (at most 8760h)");
}

// ---------------------------------------------------------------- environment

TEST(ConfigEnv, ExpandsSetVariablesAndDefaults) {
    using pgelect::config_detail::expand_env;
    ScopedEnv set("PGELECT_CFGTEST_SET", "value");
    ScopedEnv empty("PGELECT_CFGTEST_EMPTY", "");
    ScopedEnv unset("PGELECT_CFGTEST_UNSET", std::nullopt);
    EXPECT_EQ(expand_env("a ${PGELECT_CFGTEST_SET} b"), "a value b");
    EXPECT_EQ(expand_env("${PGELECT_CFGTEST_SET}${PGELECT_CFGTEST_SET}"), "valuevalue");
    EXPECT_EQ(expand_env("${PGELECT_CFGTEST_SET:-other}"), "value");
    EXPECT_EQ(expand_env("${PGELECT_CFGTEST_UNSET:-other}"), "other");
    EXPECT_EQ(expand_env("${PGELECT_CFGTEST_UNSET:-}"), "");
    EXPECT_EQ(expand_env("${PGELECT_CFGTEST_UNSET:-a:b-c$d}"), "a:b-c$d");
    EXPECT_EQ(expand_env("${PGELECT_CFGTEST_EMPTY}"), "");
    EXPECT_EQ(expand_env("${PGELECT_CFGTEST_EMPTY:-fallback}"), "fallback");
}

TEST(ConfigEnv, DollarEscapesAndLoneDollars) {
    using pgelect::config_detail::expand_env;
    ScopedEnv set("PGELECT_CFGTEST_SET", "${PGELECT_CFGTEST_SET}");
    EXPECT_EQ(expand_env("pa$$word"), "pa$word");
    EXPECT_EQ(expand_env("$${PGELECT_CFGTEST_SET}"), "${PGELECT_CFGTEST_SET}");
    EXPECT_EQ(expand_env("cost: 5$ or $x"), "cost: 5$ or $x");
    EXPECT_EQ(expand_env("$"), "$");
    // A substituted value is not expanded again.
    EXPECT_EQ(expand_env("${PGELECT_CFGTEST_SET}"), "${PGELECT_CFGTEST_SET}");
}

TEST(ConfigEnv, ErrorsNameTheVariable) {
    using pgelect::config_detail::expand_env;
    ScopedEnv unset("PGELECT_CFGTEST_UNSET", std::nullopt);
    EXPECT_EQ(message_of<InvalidArgumentError>([] { expand_env("x ${PGELECT_CFGTEST_UNSET} y"); }),
              "environment variable PGELECT_CFGTEST_UNSET is not set (write "
              "${PGELECT_CFGTEST_UNSET:-default} to give a default)");
    EXPECT_EQ(message_of<InvalidArgumentError>([] { expand_env("${PGELECT_CFGTEST_UNSET"); }),
              "unterminated \"${\" (write \"$$\" for a literal \"$\")");
    const std::string rule =
        "\": expected ${NAME} or ${NAME:-default} with NAME made of letters, digits and _, not "
        "starting with a digit";
    EXPECT_EQ(message_of<InvalidArgumentError>([] { expand_env("${1A}"); }),
              "invalid reference \"${1A}" + rule);
    EXPECT_EQ(message_of<InvalidArgumentError>([] { expand_env("${}"); }),
              "invalid reference \"${}" + rule);
    EXPECT_EQ(message_of<InvalidArgumentError>([] { expand_env("${A-b}"); }),
              "invalid reference \"${A-b}" + rule);
}

TEST(ConfigEnv, ValuesAreExpandedBeforeTheyAreParsed) {
    ScopedEnv pool("PGELECT_CFGTEST_POOL", "8");
    ScopedEnv lease("PGELECT_CFGTEST_LEASE", "30s");
    ScopedEnv name("PGELECT_CFGTEST_NAME", "reports");
    ScopedEnv unset("PGELECT_CFGTEST_UNSET", std::nullopt);
    const Config c = parse_config(
        "database:\n"
        "  dsn: host=${PGELECT_CFGTEST_UNSET:-db} password=pa$$word\n"
        "  pool_size: ${PGELECT_CFGTEST_POOL}\n"
        "  create_table: ${PGELECT_CFGTEST_UNSET:-false}\n"
        "defaults:\n"
        "  lease_duration: ${PGELECT_CFGTEST_LEASE}\n"
        "groups:\n"
        "  - name: ${PGELECT_CFGTEST_NAME}\n"
        "    data: '${PGELECT_CFGTEST_NAME}:80'\n",
        "test.yaml");
    EXPECT_EQ(c.database.dsn, "host=db password=pa$word");
    EXPECT_EQ(c.database.pool_size, 8u);
    EXPECT_FALSE(c.database.create_table);
    EXPECT_EQ(c.defaults.lease_duration, 30s);
    ASSERT_EQ(c.groups.size(), 1u);
    EXPECT_EQ(c.groups[0].name, "reports");
    EXPECT_EQ(c.groups[0].data, "reports:80");
}

TEST(ConfigEnv, UnsetVariableIsAnErrorAtTheValue) {
    ScopedEnv unset("PGELECT_CFGTEST_UNSET", std::nullopt);
    EXPECT_EQ(error_of("database:\n  dsn: ${PGELECT_CFGTEST_UNSET}\n" + kGroups),
              "test.yaml:2:8: dsn in database: environment variable PGELECT_CFGTEST_UNSET is not "
              "set (write ${PGELECT_CFGTEST_UNSET:-default} to give a default)");
    EXPECT_EQ(error_of("groups:\n  - name: jobs\n    lease_duration: ${PGELECT_CFGTEST_UNSET\n"),
              "test.yaml:3:21: lease_duration in group \"jobs\": unterminated \"${\" (write \"$$\" "
              "for a literal \"$\")");
}

TEST(ConfigEnv, ExpandedValueIsValidatedLikeAWrittenOne) {
    ScopedEnv pool("PGELECT_CFGTEST_POOL", "many");
    EXPECT_EQ(error_of("database:\n  pool_size: ${PGELECT_CFGTEST_POOL}\n" + kGroups),
              "test.yaml:2:14: pool_size in database: expected an integer from 1 to 1000, got "
              "\"many\"");
}

// ---------------------------------------------------------------- suggestions

TEST(ConfigSuggest, EditDistance) {
    using pgelect::config_detail::edit_distance;
    EXPECT_EQ(edit_distance("", ""), 0u);
    EXPECT_EQ(edit_distance("abc", ""), 3u);
    EXPECT_EQ(edit_distance("lease_duration", "lease_duration"), 0u);
    EXPECT_EQ(edit_distance("leese_duration", "lease_duration"), 1u);  // substitution
    EXPECT_EQ(edit_distance("group", "groups"), 1u);                   // insertion
    EXPECT_EQ(edit_distance("tabel", "table"), 1u);                    // transposition
    EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

TEST(ConfigSuggest, NearestKeyOrNothing) {
    using pgelect::config_detail::nearest;
    const std::vector<std::string_view> keys{"lease_duration", "renew_deadline", "retry_interval"};
    EXPECT_EQ(nearest("leese_duration", keys), "lease_duration");
    EXPECT_EQ(nearest("Lease_Duration", keys), "lease_duration");
    EXPECT_EQ(nearest("retry_intervall", keys), "retry_interval");
    EXPECT_EQ(nearest("colour", keys), "");
    EXPECT_EQ(nearest(std::string(10000, 'x'), keys), "");
}

// ---------------------------------------------------------------- values

TEST(ConfigLoad, ExampleFileLoadsWithTheDocumentedValues) {
    ScopedEnv dsn("PGELECT_DSN", std::nullopt);
    ScopedEnv identity("PGELECT_IDENTITY", std::nullopt);
    ScopedEnv pod_ip("POD_IP", std::nullopt);
    const Config c = pgelect::load_config(PGELECT_SOURCE_DIR "/config/pgelect.example.yaml");
    EXPECT_EQ(c.database.dsn, "postgresql://pgelect@localhost:5432/pgelect");
    EXPECT_EQ(c.database.table, "locks");
    EXPECT_EQ(c.database.pool_size, 4u);
    EXPECT_EQ(c.database.statement_timeout, 5s);
    EXPECT_TRUE(c.database.create_table);
    EXPECT_EQ(c.identity, "");
    EXPECT_EQ(c.defaults.lease_duration, 15s);
    EXPECT_EQ(c.defaults.renew_deadline, 10s);
    EXPECT_EQ(c.defaults.heartbeat_interval, 2s);
    EXPECT_EQ(c.defaults.retry_interval, 500ms);
    EXPECT_TRUE(c.release_on_stop);
    ASSERT_EQ(c.groups.size(), 2u);
    EXPECT_EQ(c.groups[0].name, "scheduler");
    EXPECT_EQ(c.groups[0].data, "127.0.0.1:8080");
    EXPECT_EQ(c.groups[0].timing.lease_duration, 15s);
    EXPECT_TRUE(c.groups[0].release_on_stop);
    EXPECT_EQ(c.groups[1].name, "compactor");
    EXPECT_EQ(c.groups[1].data, "10.0.0.7:9000");
    EXPECT_EQ(c.groups[1].timing.lease_duration, 30s);
    EXPECT_EQ(c.groups[1].timing.renew_deadline, 20s);
    EXPECT_EQ(c.groups[1].timing.heartbeat_interval, 2s);
    EXPECT_EQ(c.groups[1].timing.retry_interval, 500ms);
    EXPECT_FALSE(c.groups[1].release_on_stop);
    EXPECT_EQ(c.metrics.listen, "127.0.0.1:9464");
    EXPECT_EQ(c.metrics.path, "/metrics");
}

TEST(ConfigLoad, ExampleFileTakesItsVariablesFromTheEnvironment) {
    ScopedEnv dsn("PGELECT_DSN", "host=db.internal dbname=app");
    ScopedEnv identity("PGELECT_IDENTITY", "node-1");
    ScopedEnv pod_ip("POD_IP", "10.1.2.3");
    const Config c = pgelect::load_config(PGELECT_SOURCE_DIR "/config/pgelect.example.yaml");
    EXPECT_EQ(c.database.dsn, "host=db.internal dbname=app");
    EXPECT_EQ(c.identity, "node-1");
    EXPECT_EQ(c.groups.at(0).data, "10.1.2.3:8080");
}

TEST(ConfigLoad, MinimalFileGetsTheBuiltInDefaults) {
    const Config c = parse_config(kGroups);
    const Config defaults;
    EXPECT_EQ(c.database.dsn, "");
    EXPECT_EQ(c.database.table, "locks");
    EXPECT_EQ(c.database.pool_size, 4u);
    EXPECT_EQ(c.database.statement_timeout, 5s);
    EXPECT_TRUE(c.database.create_table);
    EXPECT_EQ(c.identity, "");
    EXPECT_EQ(c.defaults.lease_duration, 15s);
    EXPECT_EQ(c.defaults.renew_deadline, 10s);
    EXPECT_EQ(c.defaults.heartbeat_interval, 2s);
    EXPECT_EQ(c.defaults.retry_interval, 500ms);
    EXPECT_TRUE(c.release_on_stop);
    ASSERT_EQ(c.groups.size(), 1u);
    EXPECT_EQ(c.groups[0].name, "jobs");
    EXPECT_EQ(c.groups[0].data, "");
    EXPECT_EQ(c.groups[0].timing.lease_duration, 15s);
    EXPECT_TRUE(c.groups[0].release_on_stop);
    EXPECT_EQ(c.metrics.listen, "127.0.0.1:9464");
    EXPECT_EQ(c.metrics.path, "/metrics");
}

TEST(ConfigLoad, EmptySectionsAndValuesMeanDefaultsOrEmpty) {
    const Config c = parse_config(
        "database:\n"
        "defaults: {}\n"
        "identity:\n"
        "metrics:\n"
        "  listen: ''\n" +
        kGroups);
    EXPECT_EQ(c.database.table, "locks");
    EXPECT_EQ(c.defaults.lease_duration, 15s);
    EXPECT_EQ(c.identity, "");
    EXPECT_EQ(c.metrics.listen, "");  // metrics disabled
    EXPECT_EQ(parse_config("metrics:\n  listen:\n" + kGroups).metrics.listen, "");
}

TEST(ConfigLoad, EveryKeyIsRead) {
    const Config c = parse_config(
        "database:\n"
        "  dsn: postgresql://u@h/db?sslmode=require\n"
        "  table: ops.leases\n"
        "  pool_size: 16\n"
        "  statement_timeout: 1.5s\n"
        "  create_table: no\n"
        "identity: node-7\n"
        "defaults:\n"
        "  lease_duration: 6s\n"
        "  renew_deadline: 4s\n"
        "  heartbeat_interval: 1s\n"
        "  retry_interval: 250ms\n"
        "  release_on_stop: false\n"
        "groups:\n"
        "  - {name: a, data: x}\n"
        "  - name: b\n"
        "    lease_duration: 1m\n"
        "    renew_deadline: 40s\n"
        "    heartbeat_interval: 0\n"
        "    retry_interval: 2s\n"
        "    release_on_stop: TRUE\n"
        "metrics:\n"
        "  listen: '[::1]:0'\n"
        "  path: /internal/metrics\n");
    EXPECT_EQ(c.database.dsn, "postgresql://u@h/db?sslmode=require");
    EXPECT_EQ(c.database.table, "ops.leases");
    EXPECT_EQ(c.database.pool_size, 16u);
    EXPECT_EQ(c.database.statement_timeout, 1500ms);
    EXPECT_FALSE(c.database.create_table);
    EXPECT_EQ(c.identity, "node-7");
    EXPECT_EQ(c.defaults.lease_duration, 6s);
    EXPECT_EQ(c.defaults.renew_deadline, 4s);
    EXPECT_EQ(c.defaults.heartbeat_interval, 1s);
    EXPECT_EQ(c.defaults.retry_interval, 250ms);
    EXPECT_FALSE(c.release_on_stop);
    ASSERT_EQ(c.groups.size(), 2u);
    EXPECT_EQ(c.groups[0].name, "a");
    EXPECT_EQ(c.groups[0].data, "x");
    EXPECT_FALSE(c.groups[0].release_on_stop);
    EXPECT_EQ(c.groups[1].timing.lease_duration, 1min);
    EXPECT_EQ(c.groups[1].timing.renew_deadline, 40s);
    EXPECT_EQ(c.groups[1].timing.heartbeat_interval, 0ms);
    EXPECT_EQ(c.groups[1].timing.retry_interval, 2s);
    EXPECT_TRUE(c.groups[1].release_on_stop);
    EXPECT_EQ(c.metrics.listen, "[::1]:0");
    EXPECT_EQ(c.metrics.path, "/internal/metrics");
}

TEST(ConfigLoad, GroupOverridesInheritTheOtherDefaults) {
    const Config c = parse_config(
        "defaults:\n"
        "  lease_duration: 20s\n"
        "  renew_deadline: 12s\n"
        "  heartbeat_interval: 3s\n"
        "  retry_interval: 1s\n"
        "  release_on_stop: false\n"
        "groups:\n"
        "  - name: plain\n"
        "  - name: quick\n"
        "    heartbeat_interval: 1s\n"
        "  - name: kept\n"
        "    release_on_stop: true\n");
    ASSERT_EQ(c.groups.size(), 3u);
    const auto& plain = c.groups[0].timing;
    EXPECT_EQ(plain.lease_duration, 20s);
    EXPECT_EQ(plain.renew_deadline, 12s);
    EXPECT_EQ(plain.heartbeat_interval, 3s);
    EXPECT_EQ(plain.retry_interval, 1s);
    EXPECT_FALSE(c.groups[0].release_on_stop);
    const auto& quick = c.groups[1].timing;
    EXPECT_EQ(quick.lease_duration, 20s);
    EXPECT_EQ(quick.renew_deadline, 12s);
    EXPECT_EQ(quick.heartbeat_interval, 1s);
    EXPECT_EQ(quick.retry_interval, 1s);
    EXPECT_FALSE(c.groups[1].release_on_stop);
    EXPECT_EQ(c.groups[2].timing.heartbeat_interval, 3s);
    EXPECT_TRUE(c.groups[2].release_on_stop);
}

TEST(ConfigLoad, AnchorsAndAliasesWork) {
    const Config c = parse_config(
        "groups:\n"
        "  - {name: a, lease_duration: &lease 30s, renew_deadline: 20s, data: &addr h:1}\n"
        "  - name: b\n"
        "    lease_duration: *lease\n"
        "    renew_deadline: 20s\n"
        "    data: *addr\n");
    ASSERT_EQ(c.groups.size(), 2u);
    EXPECT_EQ(c.groups[1].timing.lease_duration, 30s);
    EXPECT_EQ(c.groups[1].data, "h:1");
}

// ---------------------------------------------------------------- options mapping

TEST(ConfigOptions, LockClientOptionsMapping) {
    const Config c = parse_config(
        "database:\n  table: ops.leases\n  pool_size: 7\n  statement_timeout: 3s\n"
        "identity: node-2\n"
        "defaults:\n  lease_duration: 9s\n  renew_deadline: 6s\n  heartbeat_interval: 1s\n"
        "  retry_interval: 100ms\n" +
        kGroups);
    const pgelect::LockClientOptions o = c.lock_client_options();
    EXPECT_EQ(o.table, "ops.leases");
    EXPECT_EQ(o.owner, "node-2");
    EXPECT_EQ(o.pool_size, 7u);
    EXPECT_EQ(o.statement_timeout, 3s);
    EXPECT_EQ(o.timing.lease_duration, 9s);
    EXPECT_EQ(o.timing.renew_deadline, 6s);
    EXPECT_EQ(o.timing.heartbeat_interval, 1s);
    EXPECT_EQ(o.timing.retry_interval, 100ms);
    const pgelect::LockClientOptions untouched;
    EXPECT_EQ(o.connect_timeout, untouched.connect_timeout);
    EXPECT_EQ(o.serialization_retries, untouched.serialization_retries);
    EXPECT_NO_THROW(pgelect::validate_options(o));
}

TEST(ConfigOptions, PoolingAndListenDsn) {
    const pgelect::LockClientOptions session = parse_config(kGroups).lock_client_options();
    EXPECT_EQ(session.pooling, pgelect::Pooling::session);
    EXPECT_EQ(session.listen_dsn, "");
    const pgelect::LockClientOptions txn =
        parse_config("database:\n  pooling: transaction\n  listen_dsn: host=db port=5432\n" + kGroups)
            .lock_client_options();
    EXPECT_EQ(txn.pooling, pgelect::Pooling::transaction);
    EXPECT_EQ(txn.listen_dsn, "host=db port=5432");
    EXPECT_EQ(error_of("database:\n  pooling: statement\n" + kGroups),
              "test.yaml:2:12: pooling in database: database.pooling must be \"session\" or "
              "\"transaction\" (got \"statement\")");
}

TEST(ConfigOptions, ElectorOptionsMapping) {
    const Config c = parse_config(
        "identity: node-3\n"
        "groups:\n"
        "  - name: a\n    data: 10.0.0.1:80\n"
        "  - name: b\n    lease_duration: 30s\n    renew_deadline: 20s\n"
        "    release_on_stop: false\n");
    const pgelect::ElectorOptions a = c.elector_options(c.groups.at(0));
    EXPECT_EQ(a.group, "a");
    EXPECT_EQ(a.identity, "node-3");
    EXPECT_EQ(a.data, "10.0.0.1:80");
    ASSERT_TRUE(a.timing.has_value());
    EXPECT_EQ(a.timing->lease_duration, 15s);
    EXPECT_TRUE(a.release_on_stop);
    const pgelect::ElectorOptions b = c.elector_options(c.groups.at(1));
    EXPECT_EQ(b.group, "b");
    EXPECT_EQ(b.data, "");
    ASSERT_TRUE(b.timing.has_value());
    EXPECT_EQ(b.timing->lease_duration, 30s);
    EXPECT_EQ(b.timing->renew_deadline, 20s);
    EXPECT_EQ(b.timing->heartbeat_interval, 2s);
    EXPECT_FALSE(b.release_on_stop);
    EXPECT_EQ(b.max_backoff, pgelect::ElectorOptions{}.max_backoff);
}

// ---------------------------------------------------------------- errors

TEST(ConfigErrorType, CarriesFileLineColumnAndKind) {
    const ConfigError e("app.yaml", 3, 7, "something is wrong");
    EXPECT_STREQ(e.what(), "app.yaml:3:7: something is wrong");
    EXPECT_EQ(e.file(), "app.yaml");
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(e.column(), 7);
    EXPECT_EQ(e.kind(), pgelect::ErrorKind::invalid_argument);
    try {
        parse_config("groups: 1\n", "x.yaml");
        FAIL() << "did not throw";
    } catch (const ConfigError& err) {
        EXPECT_EQ(err.file(), "x.yaml");
        EXPECT_EQ(err.line(), 1);
        EXPECT_EQ(err.column(), 9);
    }
}

TEST(ConfigErrors, YamlSyntaxErrorsHaveThePosition) {
    EXPECT_EQ(error_of("groups: [a, b\n"),
              "test.yaml:2:1: invalid YAML: end of sequence flow not found");
    EXPECT_EQ(error_of("groups:\n  - name: a: b\n"),
              "test.yaml:2:12: invalid YAML: illegal map value");
    EXPECT_EQ(error_of("groups:\n  - name: a\n\tdata: x\n"),
              "test.yaml:3:1: invalid YAML: illegal tab when looking for indentation");
    EXPECT_EQ(error_of("groups:\n  - name: *nowhere\n"),
              "test.yaml:2:11: invalid YAML: the referenced anchor is not defined");
}

TEST(ConfigErrors, UnknownKeySuggestsTheNearest) {
    EXPECT_EQ(error_of("defaults:\n  leese_duration: 15s\n" + kGroups),
              "test.yaml:2:3: unknown key \"leese_duration\" in defaults; did you mean "
              "\"lease_duration\"?");
    EXPECT_EQ(error_of("group:\n  - name: jobs\n"),
              "test.yaml:1:1: unknown key \"group\" at the top level; did you mean \"groups\"?");
    EXPECT_EQ(error_of("database:\n  tabel: locks\n" + kGroups),
              "test.yaml:2:3: unknown key \"tabel\" in database; did you mean \"table\"?");
    EXPECT_EQ(error_of("groups:\n  - name: jobs\n    dta: x\n"),
              "test.yaml:3:5: unknown key \"dta\" in group \"jobs\"; did you mean \"data\"?");
    EXPECT_EQ(error_of("metrics:\n  listn: ':1'\n" + kGroups),
              "test.yaml:2:3: unknown key \"listn\" in metrics; did you mean \"listen\"?");
}

TEST(ConfigErrors, UnknownKeyWithoutNearMatchListsTheValidKeys) {
    EXPECT_EQ(error_of(kGroups + "colour: blue\n"),
              "test.yaml:3:1: unknown key \"colour\" at the top level (valid keys: database, "
              "identity, defaults, groups, metrics)");
    EXPECT_EQ(error_of("metrics:\n  port: 9464\n" + kGroups),
              "test.yaml:2:3: unknown key \"port\" in metrics (valid keys: listen, path)");
}

TEST(ConfigErrors, DuplicateKeys) {
    EXPECT_EQ(error_of("database:\n  table: a\n  table: b\n" + kGroups),
              "test.yaml:3:3: duplicate key \"table\" in database (first at line 2)");
    EXPECT_EQ(error_of(kGroups + "groups: []\n"),
              "test.yaml:3:1: duplicate key \"groups\" at the top level (first at line 1)");
}

TEST(ConfigErrors, NonScalarKey) {
    EXPECT_EQ(error_of("? [a]\n: 1\n" + kGroups),
              "test.yaml:1:3: keys must be plain names, got a list at the top level");
}

TEST(ConfigErrors, WrongTypes) {
    EXPECT_EQ(error_of("database:\n  - dsn: x\n" + kGroups),
              "test.yaml:2:3: database: expected a map, got a list");
    EXPECT_EQ(error_of("defaults: 15s\n" + kGroups),
              "test.yaml:1:11: defaults: expected a map, got \"15s\"");
    EXPECT_EQ(error_of("- groups\n"), "test.yaml:1:1: expected a map at the top level, got a list");
    EXPECT_EQ(error_of("database:\n  dsn: [a, b]\n" + kGroups),
              "test.yaml:2:8: dsn in database: expected a string, got a list");
    EXPECT_EQ(error_of("identity: {a: b}\n" + kGroups),
              "test.yaml:1:11: identity: expected a string, got a map");
    EXPECT_EQ(error_of("database:\n  create_table: maybe\n" + kGroups),
              "test.yaml:2:17: create_table in database: expected true or false, got \"maybe\"");
    EXPECT_EQ(error_of("database:\n  create_table:\n" + kGroups),
              "test.yaml:2:3: create_table in database: expected true or false, got nothing");
}

TEST(ConfigErrors, PoolSize) {
    const std::string prefix =
        "test.yaml:2:14: pool_size in database: expected an integer from 1 to 1000, got ";
    EXPECT_EQ(error_of("database:\n  pool_size: abc\n" + kGroups), prefix + "\"abc\"");
    EXPECT_EQ(error_of("database:\n  pool_size: -3\n" + kGroups), prefix + "\"-3\"");
    EXPECT_EQ(error_of("database:\n  pool_size: 0\n" + kGroups), prefix + "\"0\"");
    EXPECT_EQ(error_of("database:\n  pool_size: 2.5\n" + kGroups), prefix + "\"2.5\"");
    EXPECT_EQ(error_of("database:\n  pool_size: 1001\n" + kGroups), prefix + "\"1001\"");
    EXPECT_EQ(error_of("database:\n  pool_size: 99999999999999999999999\n" + kGroups),
              prefix + "\"99999999999999999999999\"");
    EXPECT_EQ(error_of("database:\n  pool_size: [1]\n" + kGroups),
              prefix.substr(0, prefix.size() - 4) + "got a list");
    EXPECT_EQ(parse_config("database:\n  pool_size: 1000\n" + kGroups).database.pool_size, 1000u);
}

TEST(ConfigErrors, BadDurations) {
    EXPECT_EQ(error_of("defaults:\n  lease_duration: 15x\n" + kGroups),
              "test.yaml:2:19: lease_duration in defaults: invalid duration \"15x\": unknown unit "
              "\"x\" (use ms, s, m or h)");
    EXPECT_EQ(error_of("database:\n  statement_timeout: 5\n" + kGroups),
              "test.yaml:2:22: statement_timeout in database: invalid duration \"5\": missing unit "
              "(ms, s, m or h)");
    EXPECT_EQ(error_of("groups:\n  - name: jobs\n    retry_interval: -1s\n"),
              "test.yaml:3:21: retry_interval in group \"jobs\": invalid duration \"-1s\": it is "
              "negative");
    EXPECT_EQ(
        error_of("defaults:\n  renew_deadline:\n" + kGroups),
        "test.yaml:2:3: renew_deadline in defaults: expected a duration such as 250ms, 15s or "
        "2m, got nothing");
    EXPECT_EQ(
        error_of("defaults:\n  renew_deadline: [1s]\n" + kGroups),
        "test.yaml:2:19: renew_deadline in defaults: expected a duration such as 250ms, 15s or "
        "2m, got a list");
}

TEST(ConfigErrors, ZeroWherePositiveIsNeeded) {
    EXPECT_EQ(error_of("defaults:\n  lease_duration: 0s\n" + kGroups),
              "test.yaml:2:19: lease_duration in defaults: must be positive, got \"0s\"");
    EXPECT_EQ(error_of("database:\n  statement_timeout: 0\n" + kGroups),
              "test.yaml:2:22: statement_timeout in database: must be positive, got \"0\"");
    EXPECT_EQ(error_of("groups:\n  - name: jobs\n    retry_interval: 0ms\n"),
              "test.yaml:3:21: retry_interval in group \"jobs\": must be positive, got \"0ms\"");
    // heartbeat_interval 0 turns automatic renewals off: allowed.
    EXPECT_EQ(
        parse_config("defaults:\n  heartbeat_interval: 0s\n" + kGroups).defaults.heartbeat_interval,
        0ms);
}

TEST(ConfigErrors, BrokenTimingRulesNameTheGroup) {
    EXPECT_EQ(
        error_of("groups:\n  - name: jobs\n    lease_duration: 5s\n"),
        "test.yaml:2:5: group \"jobs\": invalid lease timing: renew_deadline (10000ms) must be "
        "less than lease_duration (5000ms); keys the group does not set come from defaults");
    EXPECT_EQ(
        error_of("groups:\n"
                 "  - name: ok\n"
                 "  - name: fast\n"
                 "    lease_duration: 3s\n"
                 "    renew_deadline: 2s\n"
                 "    heartbeat_interval: 2s\n"
                 "    retry_interval: 1s\n"),
        "test.yaml:3:5: group \"fast\": invalid lease timing: heartbeat_interval (2000ms) must "
        "be at most half of lease_duration (3000ms)");
    EXPECT_EQ(
        error_of("defaults:\n  renew_deadline: 20s\n" + kGroups),
        "test.yaml:2:3: defaults: invalid lease timing: renew_deadline (20000ms) must be less "
        "than lease_duration (15000ms)");
}

TEST(ConfigErrors, Groups) {
    EXPECT_EQ(error_of("database: {}\n"),
              "test.yaml:1:1: missing required key \"groups\" (at least one group is required)");
    EXPECT_EQ(error_of(""),
              "test.yaml:1:1: missing required key \"groups\" (at least one group is required)");
    EXPECT_EQ(error_of("# nothing but a comment\n"),
              "test.yaml:1:1: missing required key \"groups\" (at least one group is required)");
    EXPECT_EQ(error_of("groups: []\n"), "test.yaml:1:9: groups: at least one group is required");
    EXPECT_EQ(error_of("identity: a\ngroups:\n"),
              "test.yaml:2:1: groups: at least one group is required");
    EXPECT_EQ(error_of("groups:\n  name: jobs\n"),
              "test.yaml:2:3: groups: expected a list of groups, got a map");
    EXPECT_EQ(error_of("groups:\n  - data: x\n"),
              "test.yaml:2:5: groups[0]: missing required key \"name\"");
    EXPECT_EQ(error_of("groups:\n  - nmae: jobs\n"),
              "test.yaml:2:5: unknown key \"nmae\" in groups[0]; did you mean \"name\"?");
    EXPECT_EQ(error_of("groups:\n  - name: a\n  - jobs\n"),
              "test.yaml:3:5: groups[1]: expected a map, got \"jobs\"");
}

TEST(ConfigErrors, DuplicateGroupNames) {
    EXPECT_EQ(error_of("groups:\n  - name: jobs\n  - name: other\n  - name: jobs\n"),
              "test.yaml:4:11: duplicate group name \"jobs\" (first defined at line 2)");
}

TEST(ConfigErrors, InvalidGroupNames) {
    EXPECT_EQ(error_of("groups:\n  - name: ''\n"),
              "test.yaml:2:11: name in groups[0]: invalid lock name: it is empty");
    EXPECT_EQ(error_of("groups:\n  - name:\n"),
              "test.yaml:2:5: name in groups[0]: invalid lock name: it is empty");
    const std::string long_name(256, 'g');
    EXPECT_EQ(error_of("groups:\n  - name: ok\n  - name: " + long_name + "\n"),
              "test.yaml:3:11: name in groups[1]: invalid lock name \"" + std::string(80, 'g') +
                  "...\": it has 256 characters, at most 255 are allowed");
    EXPECT_EQ(error_of("groups:\n  - name: \"a\\0b\"\n"),
              "test.yaml:2:11: name in groups[0]: invalid lock name \"a\\x00b\": it contains a NUL "
              "byte");
    EXPECT_EQ(
        error_of("groups:\n  - name: \"\xff\"\n"),
        "test.yaml:2:11: name in groups[0]: invalid lock name \"\\xff\": it is not valid UTF-8");
    // 255 characters of UTF-8 (more bytes) are fine.
    std::string utf8;
    for (int i = 0; i < 255; ++i) utf8 += "\xc3\xa9";
    EXPECT_EQ(parse_config("groups:\n  - name: " + utf8 + "\n").groups.at(0).name, utf8);
}

TEST(ConfigErrors, InvalidTableName) {
    EXPECT_EQ(
        error_of("database:\n  table: 1locks\n" + kGroups),
        "test.yaml:2:10: table in database: invalid lock table name \"1locks\" (expected "
        "[schema.]table, each part [A-Za-z_][A-Za-z0-9_]*, schema at most 63 and table at most "
        "57 characters)");
    EXPECT_EQ(
        error_of("database:\n  table:\n" + kGroups),
        "test.yaml:2:3: table in database: invalid lock table name \"\" (expected "
        "[schema.]table, each part [A-Za-z_][A-Za-z0-9_]*, schema at most 63 and table at most "
        "57 characters)");
}

TEST(ConfigErrors, InvalidIdentity) {
    EXPECT_EQ(error_of("identity: " + std::string(256, 'n') + "\n" + kGroups),
              "test.yaml:1:11: identity: invalid owner \"" + std::string(80, 'n') +
                  "...\": it has 256 characters, at most 255 are allowed");
}

TEST(ConfigErrors, Metrics) {
    const std::string listen =
        ": listen in metrics: expected host:port (e.g. 127.0.0.1:9464, 0.0.0.0:9464, [::1]:9464), "
        "or nothing to disable metrics, got ";
    EXPECT_EQ(error_of("metrics:\n  listen: localhost\n" + kGroups),
              "test.yaml:2:11" + listen + "\"localhost\"");
    EXPECT_EQ(error_of("metrics:\n  listen: ':9464'\n" + kGroups),
              "test.yaml:2:11" + listen + "\":9464\"");
    EXPECT_EQ(error_of("metrics:\n  listen: h:65536\n" + kGroups),
              "test.yaml:2:11" + listen + "\"h:65536\"");
    EXPECT_EQ(error_of("metrics:\n  listen: ::1:80\n" + kGroups),
              "test.yaml:2:11" + listen + "\"::1:80\"");
    EXPECT_EQ(error_of("metrics:\n  path: metrics\n" + kGroups),
              "test.yaml:2:9: path in metrics: expected a URL path starting with \"/\" (e.g. "
              "/metrics), got \"metrics\"");
    EXPECT_EQ(parse_config("metrics:\n  listen: 0.0.0.0:9000\n" + kGroups).metrics.listen,
              "0.0.0.0:9000");
}

TEST(ConfigErrors, OnlyOneDocument) {
    // A line indented less than the first key also starts a new document.
    EXPECT_EQ(error_of("  groups:\n    - name: jobs\n identity: x\n"),
              "test.yaml:3:2: a second YAML document starts here; only one is allowed (check the "
              "indentation, or remove the \"---\")");
    EXPECT_EQ(error_of(kGroups + "---\n" + kGroups),
              "test.yaml:3:1: a second YAML document starts here; only one is allowed (check the "
              "indentation, or remove the \"---\")");
}

TEST(ConfigErrors, UnreadableFiles) {
    const std::string missing = "/nonexistent/pgelect/config.yaml";
    EXPECT_EQ(message_of<ConfigError>([&] { pgelect::load_config(missing); }),
              missing + ":0:0: cannot read file: No such file or directory");
    EXPECT_EQ(message_of<ConfigError>([] { pgelect::load_config("/tmp"); }),
              "/tmp:0:0: cannot read file: Is a directory");
}

TEST(ConfigErrors, LoadConfigNamesThePath) {
    TempFile file("groups:\n  - name: jobs\n    lease_duration: soon\n");
    EXPECT_EQ(message_of<ConfigError>([&] { pgelect::load_config(file.path()); }),
              file.path() +
                  ":3:21: lease_duration in group \"jobs\": invalid duration \"soon\": expected a "
                  "number followed by a unit (ms, s, m or h), e.g. 250ms, 15s, 1.5m, 2h");
}

// ---------------------------------------------------------------- pathological input

// CPU time of this thread: the guards must not be quadratic or loop, which CPU
// time shows whatever else the machine is doing (wall time does not).
std::chrono::nanoseconds thread_cpu_now() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}
long cpu_ms_since(std::chrono::nanoseconds start) {
    return static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(thread_cpu_now() - start).count());
}

TEST(ConfigGuard, TenMegabyteFileIsRefusedQuickly) {
    std::string big = kGroups + "    data: \"";
    big += std::string(10 * 1024 * 1024, 'x');
    big += "\"\n";
    TempFile file(big);
    const auto start = thread_cpu_now();
    EXPECT_EQ(
        message_of<ConfigError>([&] { pgelect::load_config(file.path()); }),
        file.path() +
            ":0:0: the configuration is larger than 1 MiB (1048576 bytes); refusing to parse it");
    EXPECT_EQ(error_of(big),
              "test.yaml:0:0: the configuration is larger than 1 MiB (1048576 bytes); refusing to "
              "parse it");
    EXPECT_LT(cpu_ms_since(start), 2000);
}

TEST(ConfigGuard, DeeplyNestedDocumentsGiveConfigErrorQuickly) {
    const auto start = thread_cpu_now();
    EXPECT_EQ(error_of(std::string(100000, '[')),
              "test.yaml:1:1: the document is nested too deeply");
    EXPECT_EQ(error_of(std::string(100000, '{')),
              "test.yaml:1:1: the document is nested too deeply");
    std::string dashes;
    for (int i = 0; i < 100000; ++i) dashes += "- ";
    EXPECT_EQ(error_of(dashes + "x\n").substr(0, 10), "test.yaml:");
    EXPECT_TRUE(pgelect_test::contains(error_of(dashes + "x\n"), "nested too deeply"));
    std::string maps;
    for (int i = 0; i < 1000; ++i) maps += std::string(i, ' ') + "a:\n";
    EXPECT_TRUE(pgelect_test::contains(error_of(maps), "nested too deeply"));
    // Just under 1 MiB of brackets, through load_config.
    TempFile file(std::string(1024 * 1024 - 1, '['));
    EXPECT_EQ(message_of<ConfigError>([&] { pgelect::load_config(file.path()); }),
              file.path() + ":1:1: the document is nested too deeply");
    EXPECT_LT(cpu_ms_since(start), 5000);
}

TEST(ConfigGuard, ModeratelyNestedValueIsATypeError) {
    const std::string nested = std::string(100, '[') + std::string(100, ']');
    EXPECT_EQ(error_of("groups:\n  - name: jobs\n    data: " + nested + "\n"),
              "test.yaml:3:11: data in group \"jobs\": expected a string, got a list");
}

TEST(ConfigGuard, SelfReferencingAliasIsHarmless) {
    EXPECT_EQ(error_of("groups:\n  - name: jobs\n    data: &a [*a]\n"),
              "test.yaml:3:11: data in group \"jobs\": expected a string, got a list");
}

// yaml-cpp 0.7's LoadAll loops forever, allocating, on a stray leading ","
// (jbeder/yaml-cpp#1040): the loader must stop at the second document.
TEST(ConfigGuard, StrayLeadingCommaIsAnErrorNotAnEndlessLoop) {
    EXPECT_EQ(error_of(","), "test.yaml:1:1: invalid YAML: unexpected \",\"");
    EXPECT_EQ(error_of(", s\ngroups:\n  - name: jobs\n"),
              "test.yaml:1:1: invalid YAML: unexpected \",\"");
    EXPECT_EQ(error_of(kGroups + "---\n,\n"),
              "test.yaml:3:1: a second YAML document starts here; only one is allowed (check the "
              "indentation, or remove the \"---\")");
}

// Bounds a child process: a regression into an endless (allocating) loop then
// fails the test instead of exhausting the machine's memory.
void limit_child() {
    ::alarm(120);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    const rlimit limit{4UL << 30, 4UL << 30};  // sanitizers reserve far more address space
    ::setrlimit(RLIMIT_AS, &limit);
#endif
}

// Parses the example cut at every length and with bytes replaced by
// YAML-significant characters; returns how many attempts threw anything but a
// ConfigError naming the source (printing them).
int mangled_example_failures() {
    std::ifstream in(PGELECT_SOURCE_DIR "/config/pgelect.example.yaml", std::ios::binary);
    const std::string example((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
    if (example.size() < 500) return 1;
    int failures = 0;
    auto attempt = [&](const std::string& yaml, const std::string& what) {
        try {
            parse_config(yaml, "mangled.yaml");
            return;
        } catch (const ConfigError& e) {
            if (std::string(e.what()).rfind("mangled.yaml:", 0) == 0) return;
            std::fprintf(stderr, "%s: %s\n", what.c_str(), e.what());
        } catch (const std::exception& e) {
            std::fprintf(stderr, "%s: other exception: %s\n", what.c_str(), e.what());
        } catch (...) {
            std::fprintf(stderr, "%s: unknown exception\n", what.c_str());
        }
        ++failures;
    };
    for (std::size_t n = 0; n <= example.size(); ++n) {
        attempt(example.substr(0, n), "prefix of " + std::to_string(n) + " bytes");
    }
    const std::string specials = std::string("[]{}:,-\"'\t\n&*!%|>#?@`") + '\0';
    for (std::size_t i = 0; i < example.size(); i += 2) {
        for (char c : specials) {
            std::string mangled = example;
            mangled[i] = c;
            attempt(mangled, "byte " + std::to_string(i) + " set to " + std::to_string(c));
        }
    }
    return failures;
}

TEST(ConfigGuard, MangledExampleOnlyEverThrowsConfigError) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(
        {
            limit_child();
            std::_Exit(mangled_example_failures() == 0 ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "");
}

}  // namespace
