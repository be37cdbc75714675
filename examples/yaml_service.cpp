// yaml_service: election groups from a YAML file, callbacks attached by group
// name, metrics served by the service.
//
//   yaml_service CONFIG.yaml [SECONDS]
// Runs until SIGINT/SIGTERM, or for SECONDS when given.
#include <pgelect/service.hpp>

#include <iostream>
#include <thread>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: yaml_service CONFIG.yaml [SECONDS]\n";
        return 2;
    }
    try {
        auto service = pgelect::ElectionService::from_yaml(argv[1]);
        for (const auto& group : service->config().groups) {
            const std::string name = group.name;
            service->on_become_leader(name, [name](const pgelect::Leadership& term) {
                std::cout << "[" << name << "] leading, term " << term.fencing_token << std::endl;
            });
            service->on_lost_leadership(name, [name](const pgelect::LossInfo& loss) {
                std::cout << "[" << name << "] no longer leading (" << pgelect::to_string(loss.reason)
                          << ")" << std::endl;
            });
            service->on_leader_changed(name, [name](const std::optional<pgelect::LeaderInfo>& leader) {
                std::cout << "[" << name << "] leader: " << (leader ? leader->identity : "none")
                          << std::endl;
            });
        }
        if (!service->metrics_url().empty()) {
            std::cout << "metrics at " << service->metrics_url() << std::endl;
        }
        if (argc > 2) {
            service->start();
            std::this_thread::sleep_for(std::chrono::seconds(std::atoi(argv[2])));
            service->stop();
            return 0;
        }
        return service->run();
    } catch (const pgelect::Error& e) {
        std::cerr << "error (" << pgelect::to_string(e.kind()) << "): " << e.what() << "\n";
        return 1;
    }
}
