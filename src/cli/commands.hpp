// The subcommands of pgelect.  Each returns the process exit status; errors of
// the library propagate as pgelect::Error (main maps them to exit statuses).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli/common.hpp"

namespace pgelect::cli {

// schema print: the CREATE statements for the table, exactly schema_sql(table).
int schema_print(const ConnectionArgs& args);
// schema apply: creates whatever is missing (LockClient::try_create_table()).
int schema_apply(const ConnectionArgs& args);
// schema bump-epoch: LockClient::bump_epoch(above); prints the token the next ones exceed.
int schema_bump_epoch(const ConnectionArgs& args, std::int64_t above);

struct StatusArgs {
    ConnectionArgs connection;
    bool json = false;
    bool ha = false;
};
// status: every lock row of the table, as a table or as JSON; with `ha`, the
// server's replication too.
int status(const StatusArgs& args);

struct RunArgs {
    ConnectionArgs connection;
    std::string group;
    std::string identity;  // empty: the configuration's, else "<hostname>-<pid>-<random>"
    std::string data;
    // Timing flags; empty: the configuration's group or defaults, else the library's.
    std::string lease, renew_deadline, heartbeat, retry;
    std::string grace{"3s"};  // default: renew deadline 10s + 3s leaves 2s of the 15s lease
    std::string metrics_listen;
    bool create_table = false;
    std::vector<std::string> command;
};
// run: campaigns for the group and runs COMMAND while leading (see run.cpp).
int run(const RunArgs& args);

}  // namespace pgelect::cli
