// Table name and lock name validation (src/lock/names.*).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "lock/names.hpp"
#include "pgelect/errors.hpp"
#include "test_util.hpp"

namespace {

using pgelect::InvalidArgumentError;
using pgelect::detail::parse_table_name;
using pgelect::detail::utf8_length;
using pgelect::detail::validate_lock_name;
using pgelect::detail::validate_owner;
using pgelect_test::contains;
using pgelect_test::message_of;

std::string repeat(const std::string& s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
}

// ---- table names -----------------------------------------------------------

TEST(TableName, AcceptsPlainName) {
    auto t = parse_table_name("locks");
    EXPECT_EQ(t.schema, "");
    EXPECT_EQ(t.table, "locks");
    EXPECT_EQ(t.display(), "locks");
    EXPECT_EQ(t.quoted(), "\"locks\"");
    EXPECT_EQ(t.quoted_sequence("_rvn"), "\"locks_rvn\"");
    EXPECT_EQ(t.quoted_sequence("_fence"), "\"locks_fence\"");
    EXPECT_EQ(t.sequence_literal("_rvn"), "'\"locks_rvn\"'");
}

TEST(TableName, AcceptsSchemaQualifiedName) {
    auto t = parse_table_name("ops.locks");
    EXPECT_EQ(t.schema, "ops");
    EXPECT_EQ(t.table, "locks");
    EXPECT_EQ(t.display(), "ops.locks");
    EXPECT_EQ(t.quoted(), "\"ops\".\"locks\"");
    EXPECT_EQ(t.quoted_sequence("_rvn"), "\"ops\".\"locks_rvn\"");
    EXPECT_EQ(t.quoted_sequence("_fence"), "\"ops\".\"locks_fence\"");
    EXPECT_EQ(t.sequence_literal("_fence"), "'\"ops\".\"locks_fence\"'");
}

TEST(TableName, AcceptsUnderscoresDigitsAndMixedCase) {
    EXPECT_EQ(parse_table_name("_x1").table, "_x1");
    EXPECT_EQ(parse_table_name("_").table, "_");
    auto t = parse_table_name("My_Schema2.Leases_9");
    EXPECT_EQ(t.schema, "My_Schema2");
    EXPECT_EQ(t.table, "Leases_9");
    // Quoting keeps the case exactly as given.
    EXPECT_EQ(t.quoted(), "\"My_Schema2\".\"Leases_9\"");
}

TEST(TableName, LengthLimits) {
    const std::string t57(57, 't');
    const std::string t58(58, 't');
    const std::string s63(63, 's');
    const std::string s64(64, 's');
    EXPECT_EQ(parse_table_name(t57).table, t57);
    EXPECT_EQ(parse_table_name(s63 + "." + t57).schema, s63);
    // The longest derived identifier must fit PostgreSQL's 63-byte limit.
    EXPECT_EQ(parse_table_name(t57).quoted_sequence("_fence").size(), 63u + 2u);

    auto msg = message_of<InvalidArgumentError>([&] { parse_table_name(t58); });
    EXPECT_TRUE(contains(msg, t58));
    EXPECT_TRUE(contains(msg, "58"));
    EXPECT_TRUE(contains(msg, "57"));

    msg = message_of<InvalidArgumentError>([&] { parse_table_name("ops." + t58); });
    EXPECT_TRUE(contains(msg, "57"));

    msg = message_of<InvalidArgumentError>([&] { parse_table_name(s64 + ".locks"); });
    EXPECT_TRUE(contains(msg, "schema"));
    EXPECT_TRUE(contains(msg, s64));
}

TEST(TableName, RefusesInvalidNames) {
    const std::vector<std::string> bad = {
        "",
        "locks; DROP TABLE x",
        "a\"b",
        "1abc",
        "a.b.c",
        "sch.",
        ".locks",
        ".",
        "my locks",
        " locks",
        "locks ",
        "'locks'",
        "\"locks\"",
        "\"ops\".\"locks\"",
        "lo-cks",
        "l\xc3\xa4" "cks",  // non-ASCII letter
        "ops.1locks",
        "1ops.locks",
        "ops..locks",
        "locks\n",
        std::string("lo\0cks", 6),
        "locks--",
        "locks/*x*/",
    };
    for (const auto& name : bad) {
        SCOPED_TRACE("name: " + name);
        EXPECT_THROW(parse_table_name(name), InvalidArgumentError);
    }
}

TEST(TableName, ErrorMessagesNameTheTableAndTheRule) {
    auto msg = message_of<InvalidArgumentError>([] { parse_table_name("locks; DROP TABLE x"); });
    EXPECT_TRUE(contains(msg, "locks; DROP TABLE x"));
    EXPECT_TRUE(contains(msg, "[A-Za-z_][A-Za-z0-9_]*"));

    msg = message_of<InvalidArgumentError>([] { parse_table_name("a\"b"); });
    EXPECT_TRUE(contains(msg, "a\"b"));

    msg = message_of<InvalidArgumentError>([] { parse_table_name("sch."); });
    EXPECT_TRUE(contains(msg, "sch."));

    msg = message_of<InvalidArgumentError>([] { parse_table_name("1abc.locks"); });
    EXPECT_TRUE(contains(msg, "1abc.locks"));
    EXPECT_TRUE(contains(msg, "schema"));

    // Control characters are shown escaped, not raw.
    msg = message_of<InvalidArgumentError>([] { parse_table_name("a\nb"); });
    EXPECT_TRUE(contains(msg, "a\\x0ab"));
    EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(TableName, ErrorKindIsInvalidArgument) {
    try {
        parse_table_name("a.b.c");
        FAIL() << "did not throw";
    } catch (const pgelect::Error& e) {
        EXPECT_EQ(e.kind(), pgelect::ErrorKind::invalid_argument);
    }
}

TEST(TableName, ChannelIsStableAndDistinct) {
    const auto a = parse_table_name("locks").channel();
    EXPECT_EQ(a, parse_table_name("locks").channel());
    // FNV-1a of the display name: fixed across processes and library versions,
    // so that every client of a table listens on the same channel.
    EXPECT_EQ(a, "pgelect_f7826076d9d4e60d");
    EXPECT_EQ(parse_table_name("ops.locks").channel(), "pgelect_b2b18e05ab11d30f");

    std::set<std::string> channels;
    for (const char* n : {"locks", "ops.locks", "locks2", "Locks", "other.locks", "ops.leases", "_x1"}) {
        const auto c = parse_table_name(n).channel();
        SCOPED_TRACE(std::string(n) + " -> " + c);
        EXPECT_EQ(c.rfind("pgelect_", 0), 0u);
        EXPECT_LE(c.size(), 63u);
        EXPECT_EQ(c.size(), 8u + 16u);
        for (char ch : c.substr(8)) EXPECT_TRUE((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'));
        channels.insert(c);
    }
    EXPECT_EQ(channels.size(), 7u);

    // The longest legal name still yields a short channel.
    const auto longest = parse_table_name(std::string(63, 's') + "." + std::string(57, 't')).channel();
    EXPECT_LE(longest.size(), 63u);
}

// ---- lock names ------------------------------------------------------------

TEST(LockName, AcceptsOneTo255Characters) {
    EXPECT_NO_THROW(validate_lock_name("a"));
    EXPECT_NO_THROW(validate_lock_name(std::string(255, 'x')));
    EXPECT_NO_THROW(validate_lock_name("job:nightly report / eu-west-1"));
    // Characters, not bytes: 255 two-byte, three-byte and four-byte characters are fine.
    EXPECT_NO_THROW(validate_lock_name(repeat("\xc3\xa9", 255)));          // é
    EXPECT_NO_THROW(validate_lock_name(repeat("\xe2\x82\xac", 255)));      // €
    EXPECT_NO_THROW(validate_lock_name(repeat("\xf0\x9f\x98\x80", 255)));  // 😀
    // SQL-looking names are just data: they travel as bound parameters.
    EXPECT_NO_THROW(validate_lock_name("x'; DROP TABLE locks; --"));
}

TEST(LockName, RefusesEmpty) {
    auto msg = message_of<InvalidArgumentError>([] { validate_lock_name(""); });
    EXPECT_TRUE(contains(msg, "lock name"));
    EXPECT_TRUE(contains(msg, "empty"));
}

TEST(LockName, RefusesMoreThan255Characters) {
    auto msg = message_of<InvalidArgumentError>([] { validate_lock_name(std::string(256, 'x')); });
    EXPECT_TRUE(contains(msg, "256"));
    EXPECT_TRUE(contains(msg, "255"));
    EXPECT_THROW(validate_lock_name(repeat("\xc3\xa9", 256)), InvalidArgumentError);
    EXPECT_THROW(validate_lock_name(std::string(10000, 'x')), InvalidArgumentError);
}

TEST(LockName, RefusesInvalidUtf8) {
    const std::vector<std::string> bad = {
        "\xff",               // never valid
        "ab\xff" "cd",
        "\x80",               // lone continuation byte
        "\xc3",               // truncated 2-byte sequence
        "a\xc3",              // truncated at the end
        "\xe2\x82",           // truncated 3-byte sequence
        "\xf0\x9f\x98",       // truncated 4-byte sequence
        "\xc3(",              // bad continuation byte
        "\xc0\x80",           // overlong NUL
        "\xc1\xbf",           // overlong
        "\xe0\x80\xaf",       // overlong '/'
        "\xf0\x80\x80\xaf",   // overlong '/'
        "\xed\xa0\x80",       // UTF-16 surrogate U+D800
        "\xed\xbf\xbf",       // UTF-16 surrogate U+DFFF
        "\xf4\x90\x80\x80",   // U+110000, past Unicode
        "\xf8\x88\x80\x80\x80",  // 5-byte form
    };
    for (const auto& name : bad) {
        SCOPED_TRACE(::testing::PrintToString(name));
        auto msg = message_of<InvalidArgumentError>([&] { validate_lock_name(name); });
        EXPECT_TRUE(contains(msg, "UTF-8"));
        // The offending bytes are shown escaped, never raw.
        EXPECT_TRUE(contains(msg, "\\x"));
    }
}

TEST(LockName, RefusesEmbeddedNul) {
    const std::string name("ab\0cd", 5);
    auto msg = message_of<InvalidArgumentError>([&] { validate_lock_name(name); });
    EXPECT_TRUE(contains(msg, "NUL"));
    EXPECT_TRUE(contains(msg, "ab\\x00cd"));
    EXPECT_THROW(validate_lock_name(std::string(1, '\0')), InvalidArgumentError);
}

TEST(LockName, ErrorMessageIsBoundedForHugeNames) {
    auto msg = message_of<InvalidArgumentError>([] { validate_lock_name(std::string(100000, 'x')); });
    EXPECT_LT(msg.size(), 1000u);
    EXPECT_TRUE(contains(msg, "100000"));
}

TEST(Owner, SameRulesAsLockNames) {
    EXPECT_NO_THROW(validate_owner("host-1234-deadbeef"));
    EXPECT_NO_THROW(validate_owner(std::string(255, 'o')));
    EXPECT_THROW(validate_owner(""), InvalidArgumentError);
    EXPECT_THROW(validate_owner(std::string(256, 'o')), InvalidArgumentError);
    EXPECT_THROW(validate_owner("\xff"), InvalidArgumentError);
    auto msg = message_of<InvalidArgumentError>([] { validate_owner(std::string("a\0b", 3)); });
    EXPECT_TRUE(contains(msg, "owner"));
}

TEST(Utf8Length, CountsCodePoints) {
    EXPECT_EQ(utf8_length(""), 0);
    EXPECT_EQ(utf8_length("a"), 1);
    EXPECT_EQ(utf8_length("abc"), 3);
    EXPECT_EQ(utf8_length("\xc3\xa9"), 1);                  // é
    EXPECT_EQ(utf8_length("caf\xc3\xa9"), 4);               // café
    EXPECT_EQ(utf8_length("\xe2\x82\xac"), 1);              // €
    EXPECT_EQ(utf8_length("\xf0\x9f\x98\x80"), 1);          // 😀
    EXPECT_EQ(utf8_length("\x7f"), 1);                      // DEL is ASCII
    EXPECT_EQ(utf8_length("\xc2\x80"), 1);                  // U+0080, smallest 2-byte
    EXPECT_EQ(utf8_length("\xe0\xa0\x80"), 1);              // U+0800, smallest 3-byte
    EXPECT_EQ(utf8_length("\xef\xbf\xbf"), 1);              // U+FFFF
    EXPECT_EQ(utf8_length("\xed\x9f\xbf"), 1);              // U+D7FF, just below surrogates
    EXPECT_EQ(utf8_length("\xee\x80\x80"), 1);              // U+E000, just above surrogates
    EXPECT_EQ(utf8_length("\xf0\x90\x80\x80"), 1);          // U+10000, smallest 4-byte
    EXPECT_EQ(utf8_length("\xf4\x8f\xbf\xbf"), 1);          // U+10FFFF, largest
    EXPECT_EQ(utf8_length(repeat("\xc3\xa9", 255)), 255);
    EXPECT_EQ(utf8_length("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"), 5);
}

TEST(Utf8Length, InvalidIsMinusOne) {
    EXPECT_EQ(utf8_length("\xff"), -1);
    EXPECT_EQ(utf8_length("\x80"), -1);
    EXPECT_EQ(utf8_length("\xc3"), -1);
    EXPECT_EQ(utf8_length("\xe2\x82"), -1);
    EXPECT_EQ(utf8_length("\xc0\x80"), -1);
    EXPECT_EQ(utf8_length("\xe0\x9f\xbf"), -1);        // overlong U+07FF
    EXPECT_EQ(utf8_length("\xf0\x8f\xbf\xbf"), -1);    // overlong U+FFFF
    EXPECT_EQ(utf8_length("\xed\xa0\x80"), -1);
    EXPECT_EQ(utf8_length("\xf4\x90\x80\x80"), -1);
    EXPECT_EQ(utf8_length(std::string("a\0", 2)), -1);
    EXPECT_EQ(utf8_length(std::string(1, '\0')), -1);
}

}  // namespace
