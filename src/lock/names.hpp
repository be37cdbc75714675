// Validation of table and lock names.  Nothing that fails these checks ever
// reaches SQL text; lock names travel only as bound parameters.
#pragma once

#include <string>

namespace pgelect::detail {

// A validated, possibly schema-qualified table name and the identifiers derived from it.
struct TableName {
    std::string schema;  // empty when unqualified
    std::string table;

    std::string display() const;                      // ops.locks
    std::string quoted() const;                       // "ops"."locks"
    std::string quoted_sequence(const char* suffix) const;  // "ops"."locks_rvn"
    std::string sequence_literal(const char* suffix) const; // '"ops"."locks_rvn"' (for nextval)
    std::string regclass_literal() const;                   // '"ops"."locks"' (for ::regclass)
    // NOTIFY channel shared by every client of this table ("pgelect_" + 16 hex digits).
    std::string channel() const;
};

// Throws InvalidArgumentError explaining the rule broken.
TableName parse_table_name(const std::string& name);

// 1..255 characters of valid UTF-8 without NUL; throws InvalidArgumentError.
void validate_lock_name(const std::string& name);

// Throws InvalidArgumentError if `owner` is not 1..255 characters of UTF-8 without NUL.
void validate_owner(const std::string& owner);

// "<hostname>-<pid>-<8 random hex digits>": unique per client or elector.
std::string default_identity();

// Number of UTF-8 code points, or -1 if `s` is not valid UTF-8 or holds a NUL.
long utf8_length(const std::string& s);

}  // namespace pgelect::detail
