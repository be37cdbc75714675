// schema_sql(): the DDL create_table() runs, and schema.sql at the repository root.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "lock/names.hpp"
#include "lock/statements.hpp"
#include "pgelect/pgelect.hpp"
#include "test_util.hpp"

namespace {

using pgelect::InvalidArgumentError;
using pgelect::schema_sql;
using pgelect_test::contains;
using pgelect_test::lacks;

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        ADD_FAILURE() << "cannot read " << path;
        return {};
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Drops a leading block of "--" comment lines and blank lines.
std::string strip_leading_comments(const std::string& text) {
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto eol = text.find('\n', pos);
        const std::string line = text.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos);
        const bool blank = line.find_first_not_of(" \t\r") == std::string::npos;
        if (!blank && line.rfind("--", 0) != 0) break;
        if (eol == std::string::npos) return {};
        pos = eol + 1;
    }
    return text.substr(pos);
}

TEST(Schema, SchemaFileMatchesSchemaSql) {
    const std::string file = read_file(std::string(PGELECT_SOURCE_DIR) + "/schema.sql");
    ASSERT_FALSE(file.empty()) << "schema.sql is empty";
    EXPECT_EQ(strip_leading_comments(file), schema_sql("locks"));
}

TEST(Schema, DefaultTableIsLocks) { EXPECT_EQ(schema_sql(), schema_sql("locks")); }

TEST(Schema, CreatesTableAndBothSequences) {
    const auto sql = schema_sql("locks");
    EXPECT_TRUE(contains(sql, "CREATE TABLE \"locks\""));
    EXPECT_TRUE(contains(sql, "CREATE SEQUENCE \"locks_rvn\""));
    EXPECT_TRUE(contains(sql, "CREATE SEQUENCE \"locks_fence\""));
    EXPECT_TRUE(contains(sql, "CREATE TABLE \"locks_epoch\""));
    // pglock's columns first, then pgelect's.
    for (const char* column : {"name CHARACTER VARYING(255) PRIMARY KEY", "record_version_number BIGINT",
                               "data BYTEA", "owner CHARACTER VARYING(255)", "fencing_token BIGINT",
                               "acquired_at TIMESTAMPTZ", "renewed_at TIMESTAMPTZ"}) {
        EXPECT_TRUE(contains(sql, column));
    }
    EXPECT_LT(sql.find("record_version_number BIGINT"), sql.find("fencing_token BIGINT"));
    // create_table() must fail if the table exists: no IF NOT EXISTS here.
    EXPECT_TRUE(lacks(sql, "IF NOT EXISTS"));
}

TEST(Schema, QualifiedNameQuotesBothParts) {
    const auto sql = schema_sql("ops.locks");
    EXPECT_TRUE(contains(sql, "CREATE TABLE \"ops\".\"locks\""));
    EXPECT_TRUE(contains(sql, "\"ops\".\"locks_rvn\""));
    EXPECT_TRUE(contains(sql, "\"ops\".\"locks_fence\""));
    EXPECT_TRUE(lacks(sql, " ops.locks"));
    EXPECT_TRUE(lacks(sql, "\"ops.locks\""));
    // Same DDL as for the unqualified name, only the names differ.
    std::string unq = schema_sql("locks");
    std::string q = sql;
    for (std::string* s : {&unq, &q}) {
        for (std::size_t p; (p = s->find("\"ops\".")) != std::string::npos;) s->erase(p, 6);
    }
    EXPECT_EQ(q, unq);
}

TEST(Schema, BadTableNameThrows) {
    EXPECT_THROW(schema_sql("locks; DROP TABLE x"), InvalidArgumentError);
    EXPECT_THROW(schema_sql(""), InvalidArgumentError);
    EXPECT_THROW(schema_sql("a.b.c"), InvalidArgumentError);
    EXPECT_THROW(schema_sql("a\"b"), InvalidArgumentError);
    EXPECT_THROW(schema_sql(std::string(58, 't')), InvalidArgumentError);
}

TEST(Schema, SchemaSqlIsWhatCreateRuns) {
    const auto t = pgelect::detail::parse_table_name("ops.leases");
    EXPECT_EQ(schema_sql("ops.leases"), pgelect::detail::Statements(t).create);
}

// The statements only splice in the quoted table and sequence names.
TEST(Statements, UseOnlyQuotedIdentifiers) {
    const auto t = pgelect::detail::parse_table_name("ops.leases");
    const pgelect::detail::Statements s(t);
    for (const std::string* sql : {&s.acquire, &s.fence_check, &s.poll, &s.release_delete,
                                   &s.release_keep, &s.renew, &s.set_data, &s.get_one, &s.get_all,
                                   &s.create, &s.try_create, &s.drop}) {
        SCOPED_TRACE(*sql);
        EXPECT_FALSE(sql->empty());
        EXPECT_TRUE(lacks(*sql, "ops.leases"));
        EXPECT_TRUE(contains(*sql, "\"ops\".\"leases"));
    }
    EXPECT_TRUE(contains(s.acquire, "nextval('\"ops\".\"leases_fence\"')"));
    EXPECT_TRUE(contains(s.renew, "nextval('\"ops\".\"leases_rvn\"')"));
    EXPECT_TRUE(contains(s.try_create, "IF NOT EXISTS"));
    EXPECT_TRUE(contains(s.drop, "DROP TABLE IF EXISTS \"ops\".\"leases\""));
}

}  // namespace
