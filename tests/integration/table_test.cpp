// P1, P2: lock table management and table names.
#include <fstream>
#include <sstream>

#include "test_env.hpp"

namespace pgelect::test {
namespace {

bool relation_exists(const std::string& name) {
    return sql("SELECT to_regclass('" + name + "') IS NOT NULL")[0][0].as<bool>();
}

TEST(PglockParity, P1_CreateTryCreateDropTable) {
    const std::string table = unique_table("p1");
    LockClient client(dsn(), options_for(table));
    client.create_table();
    EXPECT_TRUE(relation_exists(table));
    EXPECT_TRUE(relation_exists(table + "_rvn"));
    EXPECT_TRUE(relation_exists(table + "_fence"));
    EXPECT_TRUE(relation_exists(table + "_epoch"));
    try {
        client.create_table();
        FAIL() << "create_table on an existing table succeeded";
    } catch (const FailedPreconditionError& e) {
        EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
    }
    client.try_create_table();  // no-op
    auto lock = client.acquire("a");
    lock.release();
    client.drop_table();
    EXPECT_FALSE(relation_exists(table));
    EXPECT_FALSE(relation_exists(table + "_rvn"));
    EXPECT_FALSE(relation_exists(table + "_fence"));
    EXPECT_FALSE(relation_exists(table + "_epoch"));
    client.drop_table();  // no error when missing
}

TEST(PglockParity, P1_SchemaSqlAppliedWithPsqlIsAccepted) {
    const std::string schema = unique_table("p1s");
    sql("CREATE SCHEMA " + schema);
    const std::string cmd = "PGOPTIONS='-c search_path=" + schema +
                            "' psql -q -v ON_ERROR_STOP=1 -d '" + dsn() + "' -f '" +
                            PGELECT_SOURCE_DIR "/schema.sql' >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    LockClient client(dsn(), options_for(schema + ".locks"));
    client.try_create_table();  // nothing missing
    auto lock = client.acquire("from-schema-sql", AcquireOptions{.data = "x"});
    EXPECT_GT(lock.fencing_token(), 0);
    EXPECT_EQ(client.get("from-schema-sql").data, std::optional<std::string>("x"));
    lock.release();
    sql("DROP SCHEMA " + schema + " CASCADE");
}

TEST(PglockParity, P1_TryCreateUpgradesPglockTableInPlace) {
    const std::string table = unique_table("p1g");
    // The Go library's own schema.
    sql("CREATE TABLE " + table +
        " (name CHARACTER VARYING(255) PRIMARY KEY, record_version_number BIGINT, data BYTEA, "
        "owner CHARACTER VARYING(255)); CREATE SEQUENCE " + table + "_rvn CYCLE OWNED BY " + table +
        ".record_version_number; INSERT INTO " + table +
        " VALUES ('old', NULL, 'kept', 'go-client')");
    LockClient client(dsn(), options_for(table));
    client.try_create_table();
    auto cols = sql("SELECT count(*) FROM information_schema.columns WHERE table_name = '" + table + "'");
    EXPECT_EQ(cols[0][0].as<int>(), 7);
    EXPECT_EQ(client.get("old").data, std::optional<std::string>("kept"));
    auto lock = client.acquire("old");
    EXPECT_EQ(lock.data(), "kept");
    lock.release();
    client.drop_table();
}

TEST(PglockParity, P2_TwoTablesDoNotSeeEachOther) {
    const std::string t1 = unique_table("p2a"), t2 = unique_table("p2b");
    LockClient c1(dsn(), options_for(t1)), c2(dsn(), options_for(t2));
    c1.create_table();
    c2.create_table();
    auto l1 = c1.acquire("same-name");
    auto l2 = c2.try_acquire("same-name");  // a different table: free
    EXPECT_EQ(c1.get_all().size(), 1u);
    EXPECT_EQ(c2.get_all().size(), 1u);
    l1.release();
    EXPECT_THROW(c1.get("same-name"), NotFoundError);
    EXPECT_NO_THROW(c2.get("same-name"));
    l2.release();
    c1.drop_table();
    c2.drop_table();
}

TEST(PglockParity, P2_HostileTableNamesAreRefusedBeforeAnySql) {
    const std::string victim = unique_table("victim");
    sql("CREATE TABLE " + victim + " (x int)");
    for (const std::string bad :
         {"locks; DROP TABLE " + victim, std::string("lo\"cks"), std::string("lo'cks"),
          std::string(64, 'a'), std::string("a.b.c"), std::string(""), std::string("1locks"),
          std::string("locks--")}) {
        try {
            LockClient client(dsn(), options_for(bad));
            client.try_create_table();
            ADD_FAILURE() << "accepted table name " << bad;
        } catch (const InvalidArgumentError& e) {
            EXPECT_NE(std::string(e.what()).find("invalid lock table name"), std::string::npos)
                << e.what();
        }
    }
    EXPECT_TRUE(relation_exists(victim));
    sql("DROP TABLE " + victim);
}

}  // namespace
}  // namespace pgelect::test
