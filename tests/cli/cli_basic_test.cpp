// The pgelect command: help, argument errors, schema, status, connection
// failures and the configuration file.
#include "cli_process.hpp"

namespace pgelect::test {
namespace {

class CliTest : public ::testing::Test {
  protected:
    void TearDown() override {
        try {
            LockClient(dsn(), options_for(table_)).drop_table();
        } catch (...) {
        }
    }
    std::vector<std::string> with_table(std::vector<std::string> args) const {
        args.insert(args.end(), {"--dsn", dsn(), "--table", table_});
        return args;
    }
    std::string table_ = unique_table("cli");
};

TEST(CliHelp, EverySubcommandHasHelpAndExitsZero) {
    for (const auto& args : std::vector<std::vector<std::string>>{{"--help"},
                                                                  {"schema", "--help"},
                                                                  {"schema", "print", "--help"},
                                                                  {"schema", "apply", "--help"},
                                                                  {"schema", "bump-epoch", "--help"},
                                                                  {"status", "--help"},
                                                                  {"run", "--help"}}) {
        const Finished r = pgelect_cli(args);
        EXPECT_EQ(r.code, 0) << args.front() << " " << args.back() << "\n" << r.err;
        EXPECT_NE(r.out.find("Usage: pgelect"), std::string::npos) << r.out;
    }
    const Finished run = pgelect_cli({"run", "--help"});
    for (const char* flag :
         {"--group", "--identity", "--lease", "--renew-deadline", "--heartbeat", "--retry",
          "--grace", "--metrics-listen", "--dsn", "--config", "--table"}) {
        EXPECT_NE(run.out.find(flag), std::string::npos) << flag;
    }
}

TEST(CliArguments, BadArgumentsExitTwo) {
    for (const auto& args : std::vector<std::vector<std::string>>{
             {},
             {"frobnicate"},
             {"schema"},
             {"status", "--no-such-flag"},
             {"run", "--", "true"},                                     // no --group
             {"run", "--group", "g"},                                   // no command
             {"run", "--group", "g", "--lease", "soon", "--", "true"},  // bad duration
             {"run", "--group", "g", "--lease", "1s", "--", "true"},    // renew deadline >= lease
             {"schema", "print", "--table", "no-dashes"},               // invalid table name
             {"schema", "bump-epoch", "--above", "-5"},                 // negative token
             {"status", "--config", "/nonexistent/pgelect.yaml"}}) {
        const Finished r = pgelect_cli(args);
        std::string joined;
        for (const auto& a : args) joined += a + " ";
        EXPECT_EQ(r.code, 2) << joined << "\n" << r.out << r.err;
        EXPECT_FALSE(r.err.empty()) << joined;
    }
}

TEST_F(CliTest, SchemaPrintIsSchemaSql) {
    const Finished r = pgelect_cli({"schema", "print", "--table", table_});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, schema_sql(table_));
    EXPECT_EQ(pgelect_cli({"schema", "print"}).out, schema_sql("locks"));
}

TEST_F(CliTest, SchemaApplyCreatesTheTableIdempotently) {
    const std::string exists = "SELECT to_regclass('" + table_ + "') IS NOT NULL";
    EXPECT_FALSE(sql(exists)[0][0].as<bool>());
    for (int i = 0; i < 2; ++i) {
        const Finished r = pgelect_cli(with_table({"schema", "apply"}));
        EXPECT_EQ(r.code, 0) << r.err;
    }
    EXPECT_TRUE(sql(exists)[0][0].as<bool>());
    LockClient client(dsn(), options_for(table_));
    Lock lock = client.acquire("works");
    EXPECT_GT(lock.fencing_token(), 0);
}

TEST_F(CliTest, SchemaBumpEpochMovesTokensAboveEveryEarlierOne) {
    LockClient client(dsn(), options_for(table_));
    client.create_table();
    std::int64_t before = 0;
    {
        Lock lock = client.acquire("b");
        before = lock.fencing_token();
    }
    const std::int64_t above = before + 1000000;
    const Finished r =
        pgelect_cli(with_table({"schema", "bump-epoch", "--above", std::to_string(above)}));
    EXPECT_EQ(r.code, 0) << r.err;
    const std::string said = "the next fencing tokens exceed ";
    const auto at = r.err.find(said);
    ASSERT_NE(at, std::string::npos) << r.err;
    const std::int64_t floor = std::stoll(r.err.substr(at + said.size()));
    EXPECT_GE(floor, above);
    Lock lock = client.acquire("b");
    EXPECT_GT(lock.fencing_token(), floor);
}

TEST_F(CliTest, StatusShowsHeldAndFreeLocks) {
    LockClient client(dsn(), options_for(table_));
    client.create_table();
    AcquireOptions ao;
    ao.data = std::string("10.0.0.7:8080\n\"x\"\\", 18);
    Lock held = client.acquire("scheduler", ao);
    AcquireOptions keep;
    keep.keep_on_release = true;
    client.acquire("compactor", keep).release();

    const Finished text = pgelect_cli(with_table({"status"}));
    ASSERT_EQ(text.code, 0) << text.err;
    std::istringstream lines(text.out);
    std::string header, first, second;
    std::getline(lines, header);
    std::getline(lines, first);
    std::getline(lines, second);
    EXPECT_EQ(header.rfind("NAME", 0), 0u) << text.out;
    EXPECT_EQ(first.rfind("compactor", 0), 0u) << text.out;  // ordered by name
    EXPECT_NE(first.find("free"), std::string::npos) << text.out;
    EXPECT_EQ(second.rfind("scheduler", 0), 0u) << text.out;
    EXPECT_NE(second.find(" held "), std::string::npos) << text.out;
    EXPECT_NE(second.find(client.owner()), std::string::npos) << text.out;
    EXPECT_NE(second.find(" " + std::to_string(held.fencing_token()) + " "), std::string::npos)
        << text.out;
    EXPECT_NE(second.find("s ago"), std::string::npos) << text.out;
    EXPECT_NE(second.find(R"(10.0.0.7:8080\x0a"x"\\)"), std::string::npos) << text.out;

    const Finished json = pgelect_cli(with_table({"status", "--json"}));
    ASSERT_EQ(json.code, 0) << json.err;
    EXPECT_NE(json.out.find("\"table\": \"" + table_ + "\""), std::string::npos) << json.out;
    const auto at = json.out.find("{\"name\": \"scheduler\"");
    ASSERT_NE(at, std::string::npos) << json.out;
    const std::string row = json.out.substr(at, json.out.find('}', at) - at);
    EXPECT_NE(row.find("\"state\": \"held\", \"held\": true"), std::string::npos) << row;
    EXPECT_NE(row.find("\"owner\": \"" + client.owner() + "\""), std::string::npos) << row;
    EXPECT_NE(row.find("\"fencing_token\": " + std::to_string(held.fencing_token()) + ","),
              std::string::npos)
        << row;
    EXPECT_NE(row.find(R"("data": "10.0.0.7:8080\\x0a\"x\"\\\\")"), std::string::npos) << row;
    EXPECT_NE(row.find("\"renewed_age_seconds\": "), std::string::npos) << row;
    EXPECT_NE(json.out.find("{\"name\": \"compactor\", \"state\": \"free\", \"held\": false"),
              std::string::npos)
        << json.out;
}

TEST_F(CliTest, StatusOfAnEmptyTable) {
    LockClient(dsn(), options_for(table_)).create_table();
    const Finished json = pgelect_cli(with_table({"status", "--json"}));
    EXPECT_EQ(json.code, 0) << json.err;
    EXPECT_NE(json.out.find("\"locks\": []"), std::string::npos) << json.out;
}

// A server without standbys: the replication section says so, without a warning.
TEST_F(CliTest, StatusHaShowsTheServersReplication) {
    LockClient(dsn(), options_for(table_)).create_table();
    const Finished text = pgelect_cli(with_table({"status", "--ha"}));
    EXPECT_EQ(text.code, 0) << text.err;
    EXPECT_NE(text.out.find("(primary, timeline "), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("synchronous_commit: on\n"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("synchronous_standby_names: (none)\n"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("standbys: none streaming from this server\n"), std::string::npos) << text.out;
    EXPECT_EQ(text.out.find("warning:"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("no locks in table"), std::string::npos) << text.out;
    const Finished json = pgelect_cli(with_table({"status", "--ha", "--json"}));
    EXPECT_EQ(json.code, 0) << json.err;
    EXPECT_NE(json.out.find("\"standby\": false, \"timeline\": "), std::string::npos) << json.out;
    EXPECT_NE(json.out.find("\"standbys\": [], \"warning\": null}"), std::string::npos) << json.out;
    const Finished plain = pgelect_cli(with_table({"status", "--json"}));
    EXPECT_EQ(plain.out.find("replication"), std::string::npos) << plain.out;
}

TEST_F(CliTest, ConnectionOptionsMayPrecedeTheSubcommand) {
    // pgelect --dsn X --table T schema apply / status (docs/getting-started.md)
    const Finished apply = pgelect_cli({"--dsn", dsn(), "--table", table_, "schema", "apply"});
    ASSERT_EQ(apply.code, 0) << apply.err;
    const Finished status = pgelect_cli({"--dsn", dsn(), "--table", table_, "status", "--json"});
    EXPECT_EQ(status.code, 0) << status.err;
    EXPECT_NE(status.out.find("\"table\": \"" + table_ + "\""), std::string::npos) << status.out;
    // After the subcommand wins.
    const Finished other =
        pgelect_cli({"--table", table_, "status", "--dsn", dsn(), "--table", table_ + "_none"});
    EXPECT_EQ(other.code, 4) << other.err;
}

TEST_F(CliTest, MissingTableExitsFour) {
    const Finished status = pgelect_cli(with_table({"status"}));
    EXPECT_EQ(status.code, 4) << status.err;
    EXPECT_NE(status.err.find("does not exist"), std::string::npos) << status.err;
    EXPECT_NE(status.err.find("schema apply"), std::string::npos) << status.err;
    const Finished run = pgelect_cli(with_table({"run", "--group", "g", "--", "true"}));
    EXPECT_EQ(run.code, 4) << run.err;
}

TEST(CliConnection, UnreachableDatabaseExitsThreeWithoutThePassword) {
    const std::string secret = "s3cret-Pa55";
    for (const std::string& bad :
         {"postgresql://alice:" + secret + "@127.0.0.1:1/app?connect_timeout=2",
          "host=127.0.0.1 port=1 user=alice password=" + secret + " connect_timeout=2"}) {
        for (const auto& args : std::vector<std::vector<std::string>>{
                 {"status", "--dsn", bad},
                 {"schema", "apply", "--dsn", bad},
                 {"run", "--dsn", bad, "--group", "g", "--", "true"}}) {
            const Finished r = pgelect_cli(args);
            EXPECT_EQ(r.code, 3) << args.front() << ": " << r.err;
            EXPECT_NE(r.err.find("127.0.0.1"), std::string::npos) << r.err;
            EXPECT_EQ(r.err.find(secret), std::string::npos) << r.err;
            EXPECT_EQ(r.out.find(secret), std::string::npos) << r.out;
        }
    }
}

TEST_F(CliTest, ConfigurationFileGivesDatabaseAndTable) {
    TempDir dir;
    const std::string path = dir / "pgelect.yaml";
    std::ofstream(path) << "database:\n"
                           "  dsn: ${PGELECT_TEST_DSN}\n"
                           "  table: "
                        << table_
                        << "\n"
                           "identity: cfg-node\n"
                           "groups:\n"
                           "  - name: cfg-group\n";
    const Finished apply = pgelect_cli({"schema", "apply", "--config", path});
    ASSERT_EQ(apply.code, 0) << apply.err;
    LockClient client(dsn(), options_for(table_));
    Lock lock = client.acquire("from-config");
    const Finished status = pgelect_cli({"status", "--config", path});
    EXPECT_EQ(status.code, 0) << status.err;
    EXPECT_NE(status.out.find("from-config"), std::string::npos) << status.out;
    // Flags win over the file.
    const Finished other = pgelect_cli({"status", "--config", path, "--table", table_ + "_none"});
    EXPECT_EQ(other.code, 4) << other.err;

    std::ofstream(dir / "bad.yaml") << "database:\n  tabel: x\ngroups:\n  - name: g\n";
    const Finished bad = pgelect_cli({"status", "--config", dir / "bad.yaml"});
    EXPECT_EQ(bad.code, 2) << bad.err;
    EXPECT_NE(bad.err.find("bad.yaml:"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace pgelect::test
