// pgelect status: every row of the lock table.
//
// Ages ("acquired 3.2s ago") compare the row's server timestamps with this
// machine's clock: they are for people, and show clock skew as such.  Nothing
// in pgelect's protocol compares clocks.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <optional>
#include <sstream>
#include <vector>

#include "cli/commands.hpp"
#include "pgelect/lock_client.hpp"

namespace pgelect::cli {
namespace {

using SysClock = std::chrono::system_clock;

// Printable ASCII as is, backslash as "\\", every other byte as "\xNN".
std::string escape_data(const std::string& bytes) {
    std::string out;
    for (unsigned char c : bytes) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            char buf[5];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    return out;
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\r':
                out += "\\r";
                break;
            default:
                if (c < 0x20) {
                    char buf[7];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out + "\"";
}

// 2024-05-01T12:34:56.789Z
std::string iso8601(SysClock::time_point t) {
    const auto ms = std::chrono::floor<std::chrono::milliseconds>(t).time_since_epoch().count();
    const std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms - static_cast<long long>(secs) * 1000));
    return buf;
}

std::optional<double> age_seconds(const std::optional<SysClock::time_point>& t,
                                  SysClock::time_point now) {
    if (!t) return std::nullopt;
    return std::chrono::duration<double>(now - *t).count();
}

std::string fixed(double v, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

std::string json_opt(const std::optional<std::string>& s) {
    return s ? json_string(*s) : "null";
}
std::string json_opt(const std::optional<std::int64_t>& v) {
    return v ? std::to_string(*v) : "null";
}
std::string json_opt(const std::optional<double>& v) {
    return v ? fixed(*v, 3) : "null";
}
std::string json_time(const std::optional<SysClock::time_point>& t) {
    return t ? json_string(iso8601(*t)) : "null";
}

std::string json_replication(const ReplicationInfo& r) {
    std::ostringstream out;
    out << "{\"server\": " << json_string(r.server) << ", \"standby\": " << (r.standby ? "true" : "false")
        << ", \"timeline\": " << json_opt(r.timeline)
        << ", \"synchronous_commit\": " << json_string(r.synchronous_commit)
        << ", \"synchronous_standby_names\": " << json_string(r.synchronous_standby_names)
        << ", \"standbys\": [";
    for (std::size_t i = 0; i < r.standbys.size(); ++i) {
        const auto& s = r.standbys[i];
        out << (i ? ", " : "") << "{\"name\": " << json_string(s.name)
            << ", \"state\": " << json_string(s.state) << ", \"sync_state\": " << json_string(s.sync_state)
            << "}";
    }
    const std::string risk = r.risk();
    out << "], \"warning\": " << (risk.empty() ? "null" : json_string(risk)) << "}";
    return out.str();
}

void print_json(const std::string& table, const std::vector<LockInfo>& rows,
                SysClock::time_point now, const std::optional<ReplicationInfo>& replication) {
    std::ostringstream out;
    out << "{\n  \"table\": " << json_string(table) << ",\n  \"now\": " << json_string(iso8601(now));
    if (replication) out << ",\n  \"replication\": " << json_replication(*replication);
    out << ",\n  \"locks\": [";
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const LockInfo& r = rows[i];
        const std::optional<std::string> data =
            r.data ? std::optional<std::string>(escape_data(*r.data)) : std::nullopt;
        out << (i ? ",\n" : "\n") << "    {\"name\": " << json_string(r.name)
            << ", \"state\": " << (r.held() ? "\"held\"" : "\"free\"")
            << ", \"held\": " << (r.held() ? "true" : "false")
            << ", \"owner\": " << json_opt(r.owner) << ", \"data\": " << json_opt(data)
            << ", \"fencing_token\": " << json_opt(r.fencing_token)
            << ", \"record_version_number\": " << json_opt(r.record_version_number)
            << ", \"acquired_at\": " << json_time(r.acquired_at)
            << ", \"renewed_at\": " << json_time(r.renewed_at)
            << ", \"acquired_age_seconds\": " << json_opt(age_seconds(r.acquired_at, now))
            << ", \"renewed_age_seconds\": " << json_opt(age_seconds(r.renewed_at, now)) << "}";
    }
    out << (rows.empty() ? "]\n}\n" : "\n  ]\n}\n");
    std::cout << out.str() << std::flush;
}

void print_table(const std::string& table, const std::vector<LockInfo>& rows,
                 SysClock::time_point now) {
    if (rows.empty()) {
        std::cout << "no locks in table " << table << "\n" << std::flush;
        return;
    }
    constexpr std::size_t kMaxData = 40;
    auto ago = [&](const std::optional<SysClock::time_point>& t) {
        const auto age = age_seconds(t, now);
        return age ? fixed(*age, 1) + "s ago" : std::string("-");
    };
    std::vector<std::vector<std::string>> cells;
    cells.push_back({"NAME", "STATE", "OWNER", "TOKEN", "ACQUIRED", "RENEWED", "DATA"});
    for (const LockInfo& r : rows) {
        std::string data = r.data ? escape_data(*r.data) : "-";
        if (data.size() > kMaxData) data = data.substr(0, kMaxData - 3) + "...";
        cells.push_back({escape_data(r.name), r.held() ? "held" : "free",
                         r.owner ? escape_data(*r.owner) : "-",
                         r.fencing_token ? std::to_string(*r.fencing_token) : "-",
                         ago(r.acquired_at), ago(r.renewed_at), data});
    }
    std::vector<std::size_t> width(cells[0].size(), 0);
    for (const auto& row : cells) {
        for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    std::ostringstream out;
    for (const auto& row : cells) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
        }
        out << line << "\n";
    }
    std::cout << out.str() << std::flush;
}

void print_replication(const ReplicationInfo& r) {
    std::ostringstream out;
    out << "server: " << r.server << " ("
        << (r.standby ? std::string("a standby, read-only")
                      : "primary, timeline " + (r.timeline ? std::to_string(*r.timeline) : "?"))
        << ")\n";
    out << "synchronous_commit: " << r.synchronous_commit << "\n";
    out << "synchronous_standby_names: "
        << (r.synchronous_standby_names.empty() ? "(none)" : r.synchronous_standby_names) << "\n";
    if (r.standbys.empty()) {
        out << "standbys: none streaming from this server\n";
    } else {
        out << "standbys:\n";
        for (const auto& s : r.standbys) {
            out << "  " << (s.name.empty() ? "?" : escape_data(s.name)) << "  "
                << (s.state.empty() ? "?" : s.state) << "  "
                << (s.sync_state.empty() ? "? (needs pg_read_all_stats)" : s.sync_state) << "\n";
        }
    }
    if (const std::string risk = r.risk(); !risk.empty()) out << "warning: " << risk << "\n";
    out << "\n";
    std::cout << out.str() << std::flush;
}

}  // namespace

int status(const StatusArgs& args) {
    const Connection c = resolve_connection(args.connection);
    LockClient client(c.dsn, c.options);
    std::optional<ReplicationInfo> replication;
    if (args.ha) replication = client.replication_info();
    const std::vector<LockInfo> rows = client.get_all();
    const auto now = SysClock::now();
    if (args.json) {
        print_json(c.options.table, rows, now, replication);
    } else {
        if (replication) print_replication(*replication);
        print_table(c.options.table, rows, now);
    }
    return exit_ok;
}

}  // namespace pgelect::cli
