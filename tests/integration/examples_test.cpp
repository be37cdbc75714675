// Every example builds and runs against the throwaway server.
#include <cstdio>

#include "test_env.hpp"

namespace pgelect::test {
namespace {

std::string run(const std::string& cmd, int& status) {
    std::string out;
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    char buf[512];
    while (p && fgets(buf, sizeof buf, p)) out += buf;
    status = p ? pclose(p) : -1;
    return out;
}

TEST(Examples, BasicLockRuns) {
    int status = 0;
    const std::string out = run(std::string(PGELECT_EXAMPLES_DIR) + "/basic_lock '" + dsn() + "'", status);
    EXPECT_EQ(status, 0) << out;
    EXPECT_NE(out.find("acquired \"nightly-report\""), std::string::npos) << out;
    EXPECT_NE(out.find("observer cannot take it"), std::string::npos) << out;
    EXPECT_NE(out.find("released; the observer can take it now: fencing token"), std::string::npos) << out;
}

TEST(Examples, LeaderCallbacksRunsAndWritesFenced) {
    int status = 0;
    const std::string out = run(std::string(PGELECT_EXAMPLES_DIR) + "/leader_callbacks 2", status);
    EXPECT_EQ(status, 0) << out;
    EXPECT_NE(out.find("became leader of report-generator"), std::string::npos) << out;
    EXPECT_NE(out.find("lost leadership (stopped)"), std::string::npos) << out;
    EXPECT_EQ(out.find("fenced writes done: 0"), std::string::npos) << out;
    EXPECT_GT(sql("SELECT count(*) FROM example_jobs")[0][0].as<int>(), 0);
}

}  // namespace
}  // namespace pgelect::test
