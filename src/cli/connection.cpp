#include <unistd.h>

#include "cli/common.hpp"

namespace pgelect::cli {

int exit_code_for(const Error& error) {
    switch (error.kind()) {
        case ErrorKind::invalid_argument:
            return exit_usage;
        case ErrorKind::unavailable:
            return exit_unavailable;
        case ErrorKind::failed_precondition:
            return exit_no_table;
        default:
            return exit_failure;
    }
}

void add_connection_options(CLI::App& app, ConnectionArgs& args) {
    args.dsn_option =
        app.add_option("--dsn", args.dsn,
                       "libpq connection string or URI (default: the database section "
                       "of --config, else libpq's PG* environment)");
    args.config_option =
        app.add_option("--config", args.config_path,
                       "YAML configuration file (database, identity, defaults, groups)")
            ->check(CLI::ExistingFile);
    args.table_option =
        app.add_option("--table", args.table, "lock table, optionally schema-qualified")
            ->default_str("locks");
}

void inherit_connection(ConnectionArgs& sub, const ConnectionArgs& top) {
    if (sub.dsn_option->count() == 0 && top.dsn_option->count() > 0) {
        sub.dsn = top.dsn;
        sub.dsn_option = top.dsn_option;
    }
    if (sub.config_option->count() == 0 && top.config_option->count() > 0) {
        sub.config_path = top.config_path;
    }
    if (sub.table_option->count() == 0 && top.table_option->count() > 0) {
        sub.table = top.table;
        sub.table_option = top.table_option;
    }
}

Connection resolve_connection(const ConnectionArgs& args) {
    Connection c;
    if (!args.config_path.empty()) {
        c.config = load_config(args.config_path);
        c.dsn = c.config->database.dsn;
        c.options = c.config->lock_client_options();
    } else {
        c.options.table = args.table;
    }
    if (args.dsn_option != nullptr && args.dsn_option->count() > 0) c.dsn = args.dsn;
    if (args.table_option != nullptr && args.table_option->count() > 0)
        c.options.table = args.table;
    return c;
}

CLI::Validator duration_check() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            try {
                (void)parse_duration(text);
                return {};
            } catch (const Error& e) {
                return e.what();
            }
        },
        "DURATION");
}

Duration to_duration(const std::string& text) {
    return parse_duration(text);
}

}  // namespace pgelect::cli
