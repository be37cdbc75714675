// pgelect: the command line of the pgelect library (docs/cli.md).
//
//   pgelect [--dsn D] [--config F] [--table T] schema print|apply|bump-epoch [--above N]
//   pgelect [connection] status [--json]
//   pgelect [connection] run --group NAME [timing] -- COMMAND [ARGS...]
// The connection options may also follow the subcommand.
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.hpp"

namespace {

using namespace pgelect::cli;

constexpr const char* kExitCodes =
    "Connection: --dsn, else the database section of --config, else libpq's PG* environment.\n"
    "Exit status: 0 success; 1 other error; 2 bad arguments or configuration; 3 database\n"
    "unreachable; 4 lock table missing; run: the command's status once it ran (128+N if killed\n"
    "by signal N), 127 if COMMAND is not found.  See docs/cli.md.";

void add_timing_options(CLI::App& run, RunArgs& a) {
    const auto duration = duration_check();
    run.add_option("--lease", a.lease,
                   "lease duration, e.g. 15s (default: configuration, else 15s); the same for "
                   "every instance of the table")
        ->check(duration);
    run.add_option(
           "--renew-deadline", a.renew_deadline,
           "stop trusting the lease this long after the last successful renewal (default 10s)")
        ->check(duration);
    run.add_option("--heartbeat", a.heartbeat, "renewal interval (default 2s)")->check(duration);
    run.add_option("--retry", a.retry, "how often a follower re-reads the lease (default 500ms)")
        ->check(duration);
    run.add_option("--grace", a.grace,
                   "after SIGTERM, how long the command may take to exit before SIGKILL")
        ->check(duration)
        ->capture_default_str();
}

int report(const pgelect::Error& e) {
    say(e.what());
    if (e.kind() == pgelect::ErrorKind::failed_precondition &&
        std::string(e.what()).find("does not exist") != std::string::npos) {
        say("hint: `pgelect schema apply` creates it (with the same --table), or pass "
            "--create-table to run");
    }
    return exit_code_for(e);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"pgelect: leader election and lease locks on PostgreSQL", "pgelect"};
    app.footer(kExitCodes);
    app.require_subcommand(1);
    ConnectionArgs top_args;  // `pgelect --dsn X status` as well as `pgelect status --dsn X`
    add_connection_options(app, top_args);

    ConnectionArgs schema_print_args, schema_apply_args;
    CLI::App* schema = app.add_subcommand("schema", "print or apply the lock table's schema");
    schema->require_subcommand(1);
    CLI::App* print = schema->add_subcommand(
        "print", "print the CREATE statements for the table (no database needed)");
    add_connection_options(*print, schema_print_args);
    CLI::App* apply = schema->add_subcommand(
        "apply",
        "create the table and its sequences if missing (adds pgelect's columns to a pglock table)");
    add_connection_options(*apply, schema_apply_args);
    ConnectionArgs schema_bump_args;
    std::int64_t bump_above = 0;
    CLI::App* bump = schema->add_subcommand(
        "bump-epoch",
        "after pg_upgrade, dump and restore or a logical migration: move the fencing tokens "
        "above every token the table holds or handed out (docs/ha.md)");
    add_connection_options(*bump, schema_bump_args);
    bump->add_option("--above", bump_above,
                     "also exceed this token (e.g. the highest one your resources have seen)")
        ->check(CLI::NonNegativeNumber);

    StatusArgs status_args;
    CLI::App* status =
        app.add_subcommand("status", "show every lock and election group of the table");
    add_connection_options(*status, status_args.connection);
    status->add_flag("--json", status_args.json, "one JSON object with a \"locks\" array");
    status->add_flag("--ha", status_args.ha,
                     "also the server's replication: timeline, synchronous_commit, standbys, and "
                     "a warning when a promotion may lose acknowledged writes");

    RunArgs run_args;
    CLI::App* run = app.add_subcommand(
        "run", "campaign for a group; run COMMAND while leading, stop it when leadership ends");
    run->footer(
        "COMMAND runs in its own process group with PGELECT_GROUP, PGELECT_IDENTITY,\n"
        "PGELECT_FENCING_TOKEN and PGELECT_TABLE set.  On leadership loss the group gets SIGTERM,\n"
        "then SIGKILL after --grace; its guard process does so on its own when no renewal\n"
        "reaches it in time (pgelect stopped or starved).  SIGINT/SIGTERM/SIGHUP are forwarded\n"
        "to it; once it is gone pgelect resigns.  When COMMAND exits on its own, pgelect\n"
        "resigns and exits with its status.  If pgelect dies, even by SIGKILL, the whole process group is killed.");
    add_connection_options(*run, run_args.connection);
    run->add_option("--group", run_args.group, "election group (the lease row's name)")->required();
    run->add_option(
        "--identity", run_args.identity,
        "this candidate's identity (default: configuration, else <hostname>-<pid>-<random>)");
    run->add_option("--data", run_args.data,
                    "advertised to followers while leading (e.g. an address)");
    add_timing_options(*run, run_args);
    run->add_option("--metrics-listen", run_args.metrics_listen,
                    "serve Prometheus metrics of this elector on HOST:PORT (path /metrics)");
    run->add_flag("--create-table", run_args.create_table,
                  "create the lock table if missing (also when the configuration's "
                  "database.create_table is true)");
    run->add_option("command", run_args.command, "the command and its arguments, after --")
        ->required();

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);  // prints help, or the error
        return rc == 0 ? exit_ok : exit_usage;
    }
    for (ConnectionArgs* sub :
         {&schema_print_args, &schema_apply_args, &schema_bump_args, &status_args.connection,
          &run_args.connection}) {
        inherit_connection(*sub, top_args);
    }

    const auto dispatch = [&]() -> int {
        try {
            if (*print) return schema_print(schema_print_args);
            if (*apply) return schema_apply(schema_apply_args);
            if (*bump) return schema_bump_epoch(schema_bump_args, bump_above);
            if (*status) return pgelect::cli::status(status_args);
            if (*run) return pgelect::cli::run(run_args);
            return exit_usage;
        } catch (const pgelect::Error& e) {
            return report(e);
        } catch (const std::exception& e) {
            say(e.what());
            return exit_failure;
        }
    };
    const int rc = dispatch();
    flush_messages();
    return rc;
}
