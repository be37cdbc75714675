// A real Prometheus server scrapes this test process, which exposes the
// metrics of a real elector, and the value is read back through Prometheus'
// HTTP API.  The server also loads docs/prometheus/alerts.yml.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <fcntl.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "pgelect/metrics.hpp"
#include "scrape.hpp"
#include "test_env.hpp"

namespace pgelect::test {
namespace {

namespace fs = std::filesystem;

std::string prometheus_binary() {
    if (const char* env = std::getenv("PGELECT_PROMETHEUS"); env && *env) return env;
    return PGELECT_PROMETHEUS_BIN;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// A Prometheus server in a scratch directory, killed and deleted on destruction.
class PrometheusServer {
public:
    PrometheusServer(const std::string& binary, int target_port) {
        char dir_template[] = "/tmp/pgelect-prometheus-XXXXXX";
        dir_ = ::mkdtemp(dir_template);
        port_ = free_port();
        std::ofstream(dir_ / "prometheus.yml")
            << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            << "rule_files:\n  - " << PGELECT_SOURCE_DIR << "/docs/prometheus/alerts.yml\n"
            << "scrape_configs:\n  - job_name: pgelect\n    static_configs:\n"
            << "      - targets: ['127.0.0.1:" << target_port << "']\n";
        const std::vector<std::string> args{
            binary,
            "--config.file=" + (dir_ / "prometheus.yml").string(),
            "--storage.tsdb.path=" + (dir_ / "data").string(),
            "--web.listen-address=127.0.0.1:" + std::to_string(port_),
            "--log.level=warn",
        };
        const std::string log = (dir_ / "prometheus.log").string();
        // Only async-signal-safe calls after fork(): this process has threads.
        std::vector<char*> argv;
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
            const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
    }
    ~PrometheusServer() {
        if (running()) {
            ::kill(pid_, SIGTERM);
            if (!eventually([&] { return !running(); }, 10s, 20ms)) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, nullptr, 0);
            }
        }
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    PrometheusServer(const PrometheusServer&) = delete;
    PrometheusServer& operator=(const PrometheusServer&) = delete;

    // False once the server exited (and was reaped here).
    bool running() const {
        if (pid_ <= 0 || exited_) return false;
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) exited_ = true;
        return !exited_;
    }
    HttpResponse get(const std::string& target) const { return http_get(port_, target, 2); }
    std::string log() const { return read_file(dir_ / "prometheus.log"); }

private:
    fs::path dir_;
    int port_ = 0;
    pid_t pid_ = -1;
    mutable bool exited_ = false;
};

// The value Prometheus reports for `pgelect_is_leader{group=<group>}` ("" if none).
std::string is_leader_via_api(const PrometheusServer& server, const std::string& group) {
    const auto r = server.get("/api/v1/query?query=pgelect_is_leader%7Bgroup%3D%22" + group + "%22%7D");
    if (r.status != 200 || r.body.find(R"("status":"success")") == std::string::npos) return "";
    if (r.body.find(R"("group":")" + group + '"') == std::string::npos) return "";
    if (r.body.find(R"("job":"pgelect")") == std::string::npos) return "";
    static const std::regex value(R"re("value":\[[0-9.]+,"([^"]*)"\])re");
    std::smatch m;
    return std::regex_search(r.body, m, value) ? m[1].str() : "";
}

class PrometheusServerTest : public LockTableTest {};

TEST_F(PrometheusServerTest, ScrapesTheLeaderAndLoadsTheAlertRules) {
    const std::string binary = prometheus_binary();
    ASSERT_EQ(::access(binary.c_str(), X_OK), 0)
        << "the Prometheus server \"" << binary << "\" is missing: install the Debian package "
        << "'prometheus' (scripts/install-deps does) or set PGELECT_PROMETHEUS";

    auto registry = std::make_shared<prometheus::Registry>();
    Metrics metrics(*registry);
    MetricsServer endpoint("127.0.0.1:0", registry);
    ElectorOptions o;
    o.group = "promtest";
    o.identity = "scraped";
    Elector elector(*client_, o);
    metrics.attach(elector, *client_);
    elector.start();
    ASSERT_TRUE(elector.wait_for_leadership(5s));

    PrometheusServer server(binary, endpoint.port());
    const bool ready = eventually([&] { return !server.running() || server.get("/-/ready").status == 200; },
                                  60s, 100ms);
    ASSERT_TRUE(ready && server.running()) << "Prometheus did not become ready:\n" << server.log();

    EXPECT_TRUE(eventually([&] { return is_leader_via_api(server, "promtest") == "1"; }, 30s, 200ms))
        << "pgelect_is_leader never reached 1 in Prometheus; last answer:\n"
        << server.get("/api/v1/query?query=pgelect_is_leader").body << "\nlog:\n" << server.log();

    // The alert rules of docs/prometheus/alerts.yml load in a real server.
    const auto rules = server.get("/api/v1/rules");
    EXPECT_EQ(rules.status, 200);
    for (auto alert : {"PgelectNoLeader", "PgelectMultipleLeaders", "PgelectLeadershipFlapping",
                       "PgelectRenewalsFailing"})
        EXPECT_NE(rules.body.find(alert), std::string::npos) << alert << " not loaded:\n" << rules.body;

    // Prometheus follows the elector down.
    elector.stop();
    EXPECT_TRUE(eventually([&] { return is_leader_via_api(server, "promtest") == "0"; }, 30s, 200ms))
        << "pgelect_is_leader never went back to 0 in Prometheus\nlog:\n" << server.log();
}

}  // namespace
}  // namespace pgelect::test
