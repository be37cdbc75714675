// pgelect's own SQL, taken from the library's statement builder (an internal header, as
// the unit tests use it), for the diagnostics that replay it outside the library.  The
// replay prepares the statements on its connection under the library's names, as every
// pooled connection of a LockClient does (Statements::prepare_on), so it issues exactly
// what the library issues.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "common.hpp"
#include "lock/statements.hpp"

namespace bench {

using Statements = pgelect::detail::Statements;

Statements library_sql(const std::string& table);
// The NOTIFY channel the library passes to its acquire and release statements.
std::string library_channel(const std::string& table);
// A new connection with the library's statements of `table` prepared on it.
std::unique_ptr<pqxx::connection> connect_prepared(const Config& cfg, const std::string& table);

// pg_stat_statements text of the library's renewal starts with this (the nextval
// literal is normalised).
std::string pgelect_renew_like(const std::string& table);

// Array literals as src/lock/client_core.cpp builds them for the renewal statement.
std::string text_array(const std::vector<std::string>& items);
std::string bigint_array(const std::vector<std::int64_t>& items);

}  // namespace bench
