// contender: one process of the two-process demo.  It waits for the lock,
// holds it for a while printing its fencing token, then releases it (or, with
// --crash, exits without releasing so the other contender must wait out the lease).
//
//   contender NAME HOLD_SECONDS [--crash]
#include <pgelect/pgelect.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <thread>

using namespace std::chrono;

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: contender NAME HOLD_SECONDS [--crash]\n";
        return 2;
    }
    const std::string me = argv[1];
    const int hold = std::atoi(argv[2]);
    const bool crash = argc > 3 && std::string(argv[3]) == "--crash";
    // Wall-clock time of day, so the lines of several processes line up.
    auto stamp = [] {
        const auto now = system_clock::now();
        const std::time_t t = system_clock::to_time_t(now);
        const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
        char buf[32];
        std::strftime(buf, sizeof buf, "%H:%M:%S", std::localtime(&t));
        char out[48];
        std::snprintf(out, sizeof out, "[%s.%03d] ", buf, static_cast<int>(ms));
        return std::string(out);
    };
    try {
        pgelect::LockClientOptions options;
        options.table = "demo_locks";
        options.owner = me;
        options.timing.lease_duration = seconds(3);
        options.timing.renew_deadline = seconds(2);
        options.timing.heartbeat_interval = milliseconds(500);
        options.timing.retry_interval = milliseconds(200);
        pgelect::LockClient client("", options);
        client.try_create_table();
        std::cout << stamp() << me << ": waiting for lock \"job\"" << std::endl;
        pgelect::Lock lock = client.acquire("job");
        const auto got = steady_clock::now();
        std::cout << stamp() << me << ": LEADER, fencing token " << lock.fencing_token() << std::endl;
        while (steady_clock::now() - got < seconds(hold)) {
            if (lock.is_released()) {
                std::cout << stamp() << me << ": lost the lock!" << std::endl;
                return 1;
            }
            std::this_thread::sleep_for(milliseconds(250));
        }
        if (crash) {
            std::cout << stamp() << me << ": crashing without releasing" << std::endl;
            std::_Exit(0);
        }
        lock.release();
        std::cout << stamp() << me << ": released" << std::endl;
        return 0;
    } catch (const pgelect::Error& e) {
        std::cerr << me << ": error (" << pgelect::to_string(e.kind()) << "): " << e.what() << "\n";
        return 1;
    }
}
