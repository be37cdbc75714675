// Shared pieces of the pgelect command: exit codes, connection settings and
// messages.  Everything here runs on the main thread.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <optional>
#include <string>

#include "pgelect/config.hpp"
#include "pgelect/errors.hpp"
#include "pgelect/options.hpp"

namespace pgelect::cli {

// pgelect's own exit statuses (docs/cli.md).  Once `run` has started its
// command, it exits with the command's status instead.
enum ExitCode : int {
    exit_ok = 0,
    exit_failure = 1,      // anything not listed below
    exit_usage = 2,        // bad arguments, bad configuration file, invalid name or timing
    exit_unavailable = 3,  // the database could not be reached
    exit_no_table = 4,     // the lock table is missing (or not usable, e.g. permission denied)
    exit_not_found = 127,  // run: COMMAND not found
};

// The exit status for an error of the library.
int exit_code_for(const Error& error);

// --dsn, --config and --table, as given on the command line.
struct ConnectionArgs {
    std::string dsn;
    std::string config_path;
    std::string table{"locks"};
    CLI::Option* dsn_option = nullptr;
    CLI::Option* config_option = nullptr;
    CLI::Option* table_option = nullptr;
};

// Adds --dsn, --config and --table to the program or a subcommand.
void add_connection_options(CLI::App& app, ConnectionArgs& args);

// For `pgelect --dsn X run ...`: what the subcommand did not set itself, it
// takes from the options given before it.
void inherit_connection(ConnectionArgs& sub, const ConnectionArgs& top);

// Flags, then the configuration file, then libpq's environment.
struct Connection {
    std::string dsn;  // empty: libpq's PG* environment
    LockClientOptions options;
    std::optional<Config> config;  // when --config was given
};

// Loads the configuration file if one was given (ConfigError) and applies the flags.
Connection resolve_connection(const ConnectionArgs& args);

// A CLI11 check that accepts what pgelect::parse_duration accepts.
CLI::Validator duration_check();

// parse_duration for a value already checked by duration_check().
Duration to_duration(const std::string& text);

// Queues "pgelect: <message>" (or "pgelect[<tag>]: <message>") and a newline
// for stderr and returns at once: a thread of its own writes each line in one
// call, so a stderr nobody reads never blocks the caller (messages.cpp).  Any thread.
void say(const std::string& message, const std::string& tag = {});

// Waits until every queued message is written, or `timeout`.  Called before exiting.
void flush_messages(std::chrono::milliseconds timeout = std::chrono::seconds(2));

}  // namespace pgelect::cli
