// pgelect_scale: one process leads many groups, one Elector per group on one
// shared LockClient, for a fixed time.  It checks that every group stays led,
// that the client's server connections stay at pool_size + 1 (the pool and the
// renewal connection) however many groups it leads, and reports CPU, memory,
// threads and the renewal rate.
//
//   pgelect_scale [--groups N] [--duration S] [--sample S] [--pool N]
//                 [--startup-limit S] [--dsn DSN]
//
// The connection check expects every pool connection open, which the start-up of
// many more groups than pool_size (thousands of concurrent acquisitions) ensures;
// with a handful of groups the pool may never fill and the check fails.
//
// bench/scale builds it and runs it on a throwaway server; see docs/performance.md
// ("Scale").  The DSN (key=value form) defaults to $PGELECT_TEST_DSN.  Progress goes
// to stderr; stdout gets one JSON line.  Exit status: 0 when every check held,
// 1 when one failed (the JSON says which), 2 for bad arguments, 3 when the watchdog
// fired.
#include <pgelect/pgelect.hpp>

#include <pqxx/pqxx>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "lock/names.hpp"
#include "lock/statements.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Args {
    int groups = 10000;
    double duration_s = 120;
    double sample_s = 5;
    std::size_t pool = 4;
    double startup_limit_s = -1;  // default: see startup_limit()
    std::string dsn;
};

// Start-up bound: all groups must lead within 10 s plus 3 ms per group (40 s for
// 10,000).  A run here needs about a tenth of that; the bound only catches a start-up
// that serialises on something it should not.
double startup_limit(const Args& a) {
    return a.startup_limit_s > 0 ? a.startup_limit_s : 10.0 + 0.003 * a.groups;
}

double secs(Clock::duration d) {
    return std::chrono::duration<double>(d).count();
}

void progress(const std::string& msg) {
    static const auto t0 = Clock::now();
    char head[32];
    std::snprintf(head, sizeof head, "[scale %7.1fs] ", secs(Clock::now() - t0));
    std::cerr << head << msg << std::endl;
}

std::optional<Args> parse(int argc, char** argv) {
    Args a;
    if (const char* d = std::getenv("PGELECT_TEST_DSN")) a.dsn = d;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        if (i + 1 >= argc) return std::nullopt;
        const std::string v = argv[++i];
        try {
            if (k == "--groups")
                a.groups = std::stoi(v);
            else if (k == "--duration")
                a.duration_s = std::stod(v);
            else if (k == "--sample")
                a.sample_s = std::stod(v);
            else if (k == "--pool")
                a.pool = static_cast<std::size_t>(std::stoul(v));
            else if (k == "--startup-limit")
                a.startup_limit_s = std::stod(v);
            else if (k == "--dsn")
                a.dsn = v;
            else
                return std::nullopt;
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }
    if (a.groups < 1 || a.duration_s <= 0 || a.sample_s <= 0 || a.pool < 1) return std::nullopt;
    return a;
}

// Process-wide figures from the kernel.
struct ProcStatus {
    long rss_kb = 0;
    long hwm_kb = 0;
    long threads = 0;
};

ProcStatus proc_status() {
    ProcStatus s;
    std::ifstream in("/proc/self/status");
    std::string key;
    while (in >> key) {
        if (key == "VmRSS:")
            in >> s.rss_kb;
        else if (key == "VmHWM:")
            in >> s.hwm_kb;
        else if (key == "Threads:")
            in >> s.threads;
        in.ignore(1 << 20, '\n');
    }
    return s;
}

// CPU seconds (user + system) of another local process, e.g. a server backend; -1 if
// it cannot be read (the server runs elsewhere).
double process_cpu_seconds(long pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(in, text)) return -1;
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::string f;
    double ticks = 0;
    for (int i = 3; i <= 15 && fields >> f; ++i) {
        if (i >= 14) ticks += std::stod(f);  // utime, stime
    }
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// One look at the process and the server.
struct Sample {
    Clock::time_point at;
    double cpu_s = 0;
    ProcStatus proc;
    long connections = 0;  // backends with the client's application_name
    long renew_connections = 0;
    long listen_connections = 0;
    std::vector<long> backend_pids;  // sorted
    double backend_cpu_s = -1;       // of those backends, -1 if unreadable
    long long renew_calls = 0;       // pg_stat_statements, cumulative
    double renew_total_ms = 0;
    long leaders = 0;    // electors whose is_leader() is true
    long held_rows = 0;  // rows held by one of ours and renewed within the lease
};

// The bench's own connection: excluded from the client's count by its application_name.
class Admin {
public:
    Admin(const std::string& dsn, std::string app, std::string table, std::string renew_prefix)
        : conn_(dsn + " application_name=pgelect_scale_admin"),
          app_(std::move(app)),
          table_(std::move(table)),
          renew_prefix_(std::move(renew_prefix)) {}

    void sample(Sample& s, std::chrono::milliseconds lease) {
        pqxx::nontransaction tx(conn_);
        auto a = tx.exec_params(
            "SELECT count(*), count(*) FILTER (WHERE query LIKE 'LISTEN%'), "
            "count(*) FILTER (WHERE left(query, length($2)) = $2) "
            "FROM pg_stat_activity WHERE application_name = $1",
            app_, renew_prefix_);
        s.connections = a[0][0].as<long>();
        s.listen_connections = a[0][1].as<long>();
        s.renew_connections = a[0][2].as<long>();
        s.backend_cpu_s = 0;
        for (const auto& row :
             tx.exec_params("SELECT pid FROM pg_stat_activity WHERE application_name = $1"
                            " ORDER BY pid",
                            app_)) {
            s.backend_pids.push_back(row[0].as<long>());
            const double cpu = process_cpu_seconds(s.backend_pids.back());
            s.backend_cpu_s = (cpu < 0 || s.backend_cpu_s < 0) ? -1 : s.backend_cpu_s + cpu;
        }
        auto p = tx.exec_params(
            "SELECT coalesce(sum(calls), 0)::bigint, coalesce(sum(total_exec_time), 0)::float8 "
            "FROM pg_stat_statements WHERE left(query, length($1)) = $1",
            renew_prefix_);
        s.renew_calls = p[0][0].as<long long>();
        s.renew_total_ms = p[0][1].as<double>();
        auto h =
            tx.exec_params("SELECT count(*) FROM " + table_ +
                               " WHERE record_version_number IS NOT NULL AND owner LIKE 'scale-%'"
                               " AND renewed_at > now() - make_interval(secs => $1)",
                           static_cast<double>(lease.count()) / 1000.0);
        s.held_rows = h[0][0].as<long>();
    }

    long held_rows() {
        pqxx::nontransaction tx(conn_);
        return tx
            .exec("SELECT count(*) FROM " + table_ +
                  " WHERE record_version_number IS NOT NULL")[0][0]
            .as<long>();
    }

    bool pss_available() {
        try {
            pqxx::nontransaction tx(conn_);
            tx.exec("SELECT 1 FROM pg_stat_statements LIMIT 1");
            return true;
        } catch (const std::exception&) {
            return false;
        }
    }

private:
    pqxx::connection conn_;
    const std::string app_;
    const std::string table_;
    const std::string renew_prefix_;
};

std::string json_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += (c == '\n') ? ' ' : c;
    }
    return out;
}

// A flat JSON object, keys in insertion order.
class Json {
public:
    void num(const std::string& k, double v) {
        std::ostringstream o;
        o.precision(6);
        o << v;
        add(k, o.str());
    }
    void str(const std::string& k, const std::string& v) { add(k, "\"" + json_escape(v) + "\""); }
    void raw(const std::string& k, const std::string& v) { add(k, v); }
    std::string text() const { return "{" + body_ + "}"; }

private:
    void add(const std::string& k, const std::string& v) {
        if (!body_.empty()) body_ += ',';
        body_ += "\"" + k + "\":" + v;
    }
    std::string body_;
};

// The measured window: extremes over the samples after the first, rates and
// averages between the first and the last.
struct Window {
    double seconds = 0;
    double cpu_avg_pct = 0, cpu_max_pct = 0;
    double server_cpu_pct = -1;  // -1: backends unreadable or replaced meanwhile
    double renew_calls = 0, renew_ms = 0;
    long rss_max_kb = 0, hwm_kb = 0, threads_min = 0, threads_max = 0;
    long connections_min = 0, connections_max = 0, renew_connections_max = 0,
         listen_connections_max = 0;
    long leaders_min = 0, held_rows_min = 0;
};

Window summarise(const std::vector<Sample>& samples, long groups) {
    Window w;
    w.leaders_min = w.held_rows_min = groups;
    if (samples.size() < 2) return w;
    for (std::size_t i = 1; i < samples.size(); ++i) {
        const auto& s = samples[i];
        const auto& p = samples[i - 1];
        const bool first = i == 1;
        w.cpu_max_pct = std::max(w.cpu_max_pct, 100.0 * (s.cpu_s - p.cpu_s) / secs(s.at - p.at));
        w.rss_max_kb = std::max(w.rss_max_kb, s.proc.rss_kb);
        w.hwm_kb = std::max(w.hwm_kb, s.proc.hwm_kb);
        w.threads_min = first ? s.proc.threads : std::min(w.threads_min, s.proc.threads);
        w.threads_max = std::max(w.threads_max, s.proc.threads);
        w.connections_min = first ? s.connections : std::min(w.connections_min, s.connections);
        w.connections_max = std::max(w.connections_max, s.connections);
        w.renew_connections_max = std::max(w.renew_connections_max, s.renew_connections);
        w.listen_connections_max = std::max(w.listen_connections_max, s.listen_connections);
        w.leaders_min = std::min(w.leaders_min, s.leaders);
        w.held_rows_min = std::min(w.held_rows_min, s.held_rows);
    }
    const auto& a = samples.front();
    const auto& b = samples.back();
    w.seconds = secs(b.at - a.at);
    w.cpu_avg_pct = 100.0 * (b.cpu_s - a.cpu_s) / w.seconds;
    w.renew_calls = static_cast<double>(b.renew_calls - a.renew_calls);
    w.renew_ms = b.renew_total_ms - a.renew_total_ms;
    if (a.backend_pids == b.backend_pids && a.backend_cpu_s >= 0 && b.backend_cpu_s >= 0) {
        w.server_cpu_pct = 100.0 * (b.backend_cpu_s - a.backend_cpu_s) / w.seconds;
    }
    return w;
}

int run(const Args& args) {
    const auto started = Clock::now();
    const std::string table = "scale_" + std::to_string(::getpid());
    const std::string app = "pgelect_scale_" + std::to_string(::getpid());
    const pgelect::detail::Statements sql(pgelect::detail::parse_table_name(table));
    // pg_stat_statements normalises the nextval literal: match the text before it.
    const std::string renew_prefix = sql.renew.substr(0, sql.renew.find("nextval("));
    std::vector<std::string> errors;

    pgelect::LockClientOptions o;
    o.table = table;
    o.pool_size = args.pool;
    const auto lease = o.timing.lease_duration;
    pgelect::LockClient client(args.dsn + " application_name=" + app, o);
    client.create_table();
    Admin admin(args.dsn, app, "\"" + table + "\"", renew_prefix);
    if (!admin.pss_available()) errors.push_back("pg_stat_statements is not available");

    std::atomic<bool> stopping{false};
    // Client-side view of the renewal engine (the server's view is pg_stat_statements).
    // A tick that overlaps stop() renews fewer rows than it was given: not counted.
    std::atomic<long long> client_ticks{0}, client_tick_us{0}, client_tick_max_us{0},
        client_short{0};
    client.renewal_finished.connect([&](const pgelect::RenewalReport& r) {
        const long long us =
            std::chrono::duration_cast<std::chrono::microseconds>(r.elapsed).count();
        ++client_ticks;
        client_tick_us += us;
        long long prev = client_tick_max_us.load();
        while (us > prev && !client_tick_max_us.compare_exchange_weak(prev, us)) {
        }
        if (!stopping && (!r.ok || r.still_held.size() != r.names.size())) ++client_short;
    });

    std::atomic<int> leading{0};
    std::atomic<long> losses{0};
    std::mutex loss_mu;
    std::string first_loss;
    std::vector<std::unique_ptr<pgelect::Elector>> electors;
    electors.reserve(static_cast<std::size_t>(args.groups));
    for (int i = 0; i < args.groups; ++i) {
        char group[16];
        std::snprintf(group, sizeof group, "g%05d", i);
        pgelect::ElectorOptions eo;
        eo.group = group;
        eo.identity = std::string("scale-") + group;
        auto e = std::make_unique<pgelect::Elector>(client, eo);
        e->become_leader.connect([&](const pgelect::Leadership&) { ++leading; });
        e->lost_leadership.connect([&](const pgelect::LossInfo& l) {
            --leading;
            if (stopping) return;
            ++losses;
            std::lock_guard lk(loss_mu);
            if (first_loss.empty()) {
                first_loss = l.group + ": " + std::string(pgelect::to_string(l.reason)) + " (" +
                             l.message + ")";
            }
        });
        electors.push_back(std::move(e));
    }

    // Start-up: every campaign thread acquires its group's lease.
    progress("starting " + std::to_string(args.groups) + " electors (pool " +
             std::to_string(args.pool) + ")");
    const auto t_start = Clock::now();
    for (auto& e : electors) e->start();
    const double spawn_s = secs(Clock::now() - t_start);
    const auto limit = std::chrono::duration<double>(startup_limit(args));
    while (leading.load() < args.groups && Clock::now() - t_start < limit)
        std::this_thread::sleep_for(5ms);
    const double startup_s = secs(Clock::now() - t_start);
    const bool started_ok = leading.load() >= args.groups;
    if (!started_ok) {
        errors.push_back("only " + std::to_string(leading.load()) + " of " +
                         std::to_string(args.groups) + " groups led after the start-up limit of " +
                         std::to_string(startup_limit(args)) + " s");
    }
    progress("all leading: " + std::to_string(leading.load()) + " groups in " +
             std::to_string(startup_s) + " s (threads started in " + std::to_string(spawn_s) +
             " s)");

    // The measured window: a sample every args.sample_s.
    const long expected_connections = static_cast<long>(args.pool) + 1;
    std::vector<Sample> samples;
    auto take = [&] {
        Sample s;
        s.at = Clock::now();
        s.cpu_s = cpu_seconds();
        s.proc = proc_status();
        for (const auto& e : electors) s.leaders += e->is_leader() ? 1 : 0;
        try {
            admin.sample(s, lease);
        } catch (const std::exception& ex) {
            errors.push_back(std::string("sample failed: ") + ex.what());
        }
        samples.push_back(s);
        return s;
    };
    if (started_ok) {
        // The window opens once the renewal connection exists (after the first tick).
        while (client_ticks.load() == 0 && Clock::now() - t_start < limit)
            std::this_thread::sleep_for(5ms);
        take();
        const auto window_start = samples.front().at;
        const auto window_end = window_start + std::chrono::duration<double>(args.duration_s);
        for (int k = 1;; ++k) {
            auto next = window_start + std::chrono::duration<double>(args.sample_s * k);
            if (next > window_end) next = window_end;
            std::this_thread::sleep_until(next);
            const Sample prev = samples.back();  // take() may reallocate
            const Sample s = take();
            const double dt = secs(s.at - prev.at);
            std::ostringstream line;
            line.precision(3);
            line << "cpu " << 100.0 * (s.cpu_s - prev.cpu_s) / dt << "% rss "
                 << s.proc.rss_kb / 1024 << " MiB threads " << s.proc.threads << " connections "
                 << s.connections << " (renewal " << s.renew_connections << ", listen "
                 << s.listen_connections << ") renewals/s "
                 << static_cast<double>(s.renew_calls - prev.renew_calls) / dt << " leaders "
                 << s.leaders << " held rows " << s.held_rows;
            progress(line.str());
            if (s.connections != expected_connections) {
                errors.push_back("connections " + std::to_string(s.connections) +
                                 " != pool_size + 1 = " + std::to_string(expected_connections));
            }
            if (s.leaders != args.groups) {
                errors.push_back("only " + std::to_string(s.leaders) + " electors lead");
            }
            if (s.held_rows != args.groups) {
                errors.push_back("only " + std::to_string(s.held_rows) +
                                 " rows held and unexpired");
            }
            if (s.at >= window_end) break;
        }
    }
    if (losses > 0)
        errors.push_back(std::to_string(losses.load()) + " terms lost, first " + first_loss);
    if (client_short > 0) {
        errors.push_back(std::to_string(client_short.load()) +
                         " renewal ticks failed or renewed fewer locks than held");
    }

    // Stop every elector (each resigns: one release statement), one after another.
    stopping = true;
    progress("stopping");
    const auto t_stop = Clock::now();
    for (auto& e : electors) e->stop();
    const double stop_s = secs(Clock::now() - t_stop);
    long held_after = -1;
    try {
        held_after = admin.held_rows();
    } catch (const std::exception& ex) {
        errors.push_back(std::string("final read failed: ") + ex.what());
    }
    if (held_after != 0)
        errors.push_back(std::to_string(held_after) + " rows still held after stop");
    progress("stopped in " + std::to_string(stop_s) +
             " s; rows still held: " + std::to_string(held_after));
    electors.clear();
    try {
        client.drop_table();
    } catch (const std::exception& ex) {
        errors.push_back(std::string("drop table failed: ") + ex.what());
    }

    const Window w = summarise(samples, args.groups);
    if (w.seconds <= 0) errors.push_back("no measured window");
    const long long ticks = client_ticks.load();

    Json j;
    j.num("groups", args.groups);
    j.num("pool_size", static_cast<double>(args.pool));
    j.num("cpus", static_cast<double>(std::thread::hardware_concurrency()));
    j.num("heartbeat_ms", static_cast<double>(o.timing.heartbeat_interval.count()));
    j.num("lease_ms", static_cast<double>(lease.count()));
    j.num("startup_s", startup_s);
    j.num("startup_limit_s", startup_limit(args));
    j.num("thread_start_s", spawn_s);
    j.num("window_s", w.seconds);
    j.num("samples", samples.empty() ? 0.0 : static_cast<double>(samples.size() - 1));
    j.num("cpu_avg_pct", w.cpu_avg_pct);
    j.num("cpu_max_pct", w.cpu_max_pct);
    j.num("rss_max_mib", static_cast<double>(w.rss_max_kb) / 1024.0);
    j.num("rss_hwm_mib", static_cast<double>(w.hwm_kb) / 1024.0);
    j.num("threads_min", static_cast<double>(w.threads_min));
    j.num("threads_max", static_cast<double>(w.threads_max));
    j.num("connections_expected", static_cast<double>(expected_connections));
    j.num("connections_min", static_cast<double>(w.connections_min));
    j.num("connections_max", static_cast<double>(w.connections_max));
    j.num("renewal_connections_max", static_cast<double>(w.renew_connections_max));
    j.num("listen_connections_max", static_cast<double>(w.listen_connections_max));
    j.num("server_backends_cpu_avg_pct", w.server_cpu_pct);
    j.num("renewals_per_s", w.seconds > 0 ? w.renew_calls / w.seconds : 0.0);
    j.num("renew_server_mean_ms", w.renew_calls > 0 ? w.renew_ms / w.renew_calls : 0.0);
    j.num("renew_client_ticks", static_cast<double>(ticks));
    j.num("renew_client_mean_ms",
          ticks ? static_cast<double>(client_tick_us.load()) / 1000.0 / ticks : 0.0);
    j.num("renew_client_max_ms", static_cast<double>(client_tick_max_us.load()) / 1000.0);
    j.num("renew_ticks_incomplete", static_cast<double>(client_short.load()));
    j.num("leaders_min", static_cast<double>(w.leaders_min));
    j.num("held_rows_min", static_cast<double>(w.held_rows_min));
    j.num("terms_lost", static_cast<double>(losses.load()));
    j.num("stop_s", stop_s);
    j.num("elapsed_s", secs(Clock::now() - started));
    std::string errs = "[";
    for (std::size_t i = 0; i < errors.size() && i < 20; ++i) {
        errs += (i ? ",\"" : "\"") + json_escape(errors[i]) + "\"";
    }
    errs += "]";
    j.raw("ok", errors.empty() ? "true" : "false");
    j.raw("errors", errs);
    std::cout << j.text() << std::endl;
    return errors.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    const auto args = parse(argc, argv);
    if (!args) {
        std::cerr << "usage: pgelect_scale [--groups N] [--duration S] [--sample S] [--pool N]\n"
                     "                     [--startup-limit S] [--dsn DSN]\n";
        return 2;
    }
    // Watchdog: start-up, the window, stopping and a margin.
    const double limit_s = startup_limit(*args) + args->duration_s + 120;
    std::thread([limit_s] {
        std::this_thread::sleep_for(std::chrono::duration<double>(limit_s));
        std::cerr << "pgelect_scale: watchdog: still running after " << limit_s << " s\n";
        std::cout << "{\"ok\":false,\"errors\":[\"watchdog fired\"]}" << std::endl;
        std::_Exit(3);
    }).detach();
    try {
        return run(*args);
    } catch (const std::exception& e) {
        std::cerr << "pgelect_scale: " << e.what() << "\n";
        std::cout << "{\"ok\":false,\"errors\":[\"" << json_escape(e.what()) << "\"]}" << std::endl;
        return 1;
    }
}
