// ElectionService: YAML groups, callbacks by group name, metrics endpoint,
// the yaml_service example.
#include <cstdio>
#include <future>
#include <fstream>

#include "pgelect/service.hpp"
#include "test_env.hpp"

namespace pgelect::test {
namespace {

Config two_groups(const std::string& table, const std::string& identity) {
    Config c;
    c.database.dsn = dsn();
    c.database.table = table;
    c.identity = identity;
    c.defaults = fast_timing();
    c.groups = {GroupConfig{"alpha", "a-data", fast_timing(), true},
                GroupConfig{"beta", "b-data", fast_timing(), true}};
    c.metrics.listen = "";
    return c;
}

TEST(ElectionServiceTest, RunsEveryGroupAndCallsBackByName) {
    const std::string table = unique_table("svc");
    ElectionService service(two_groups(table, "svc-1"));
    std::atomic<int> alpha{0}, beta{0};
    service.on_become_leader("alpha", [&](const Leadership& l) {
        EXPECT_EQ(l.group, "alpha");
        ++alpha;
    });
    service.on_become_leader("beta", [&](const Leadership&) { ++beta; });
    EXPECT_THROW(service.on_become_leader("gamma", [](const Leadership&) {}), InvalidArgumentError);
    service.start();  // creates the table
    ASSERT_TRUE(eventually([&] { return alpha == 1 && beta == 1; }, 5s));
    EXPECT_TRUE(service.elector("alpha").is_leader());
    EXPECT_EQ(service.client().get("beta").data, std::optional<std::string>("b-data"));
    EXPECT_EQ(service.client().get("alpha").owner, std::optional<std::string>("svc-1"));

    // A second instance follows and takes over when the first stops.
    ElectionService second(two_groups(table, "svc-2"));
    second.start();
    std::this_thread::sleep_for(200ms);
    EXPECT_FALSE(second.elector("alpha").is_leader());
    service.stop();
    EXPECT_TRUE(second.elector("alpha").wait_for_leadership(3s));
    EXPECT_TRUE(second.elector("beta").wait_for_leadership(3s));
    second.stop();
    LockClient(dsn(), options_for(table)).drop_table();
}

TEST(ElectionServiceTest, RunReturnsOnRequestStop) {
    const std::string table = unique_table("svc");
    ElectionService service(two_groups(table, "svc-run"));
    auto f = std::async(std::launch::async, [&] { return service.run(false); });
    ASSERT_TRUE(eventually([&] { return service.elector("alpha").is_leader(); }, 5s));
    service.request_stop();
    ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
    EXPECT_EQ(f.get(), 0);
    EXPECT_FALSE(service.elector("alpha").is_leader());
    LockClient(dsn(), options_for(table)).drop_table();
}

TEST(ElectionServiceTest, YamlServiceExampleRuns) {
    const std::string table_note = "example_service_locks";
    std::string out;
    FILE* p = popen((std::string(PGELECT_EXAMPLES_DIR) + "/yaml_service " PGELECT_SOURCE_DIR
                     "/config/yaml_service.yaml 2 2>&1").c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[512];
    while (fgets(buf, sizeof buf, p)) out += buf;
    EXPECT_EQ(pclose(p), 0) << out;
    EXPECT_NE(out.find("[scheduler] leading, term"), std::string::npos) << out;
    EXPECT_NE(out.find("[compactor] leading, term"), std::string::npos) << out;
    EXPECT_NE(out.find("no longer leading (stopped)"), std::string::npos) << out;
    EXPECT_NE(out.find("metrics at http://127.0.0.1:"), std::string::npos) << out;
}

}  // namespace
}  // namespace pgelect::test
