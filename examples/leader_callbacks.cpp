// leader_callbacks: a service that does its job only while it leads.
//
// It registers the three signals of an Elector, starts a worker thread on
// become_leader that runs until the term's stop token fires, and makes every
// write of that worker a fenced write: inside its own transaction it first
// checks that the lease row still carries this term's fencing token, so a
// deposed leader can never write over its successor.
//
//   leader_callbacks [SECONDS]    (connection from libpq's PG* environment)
#include <pgelect/fencing.hpp>
#include <pgelect/pgelect.hpp>

#include <pqxx/pqxx>

#include <atomic>
#include <iostream>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
    const int seconds = argc > 1 ? std::atoi(argv[1]) : 5;
    try {
        pgelect::LockClientOptions options;
        options.table = "example_elections";
        pgelect::LockClient client("", options);
        client.try_create_table();
        {
            pqxx::connection c("");
            pqxx::work tx(c);
            tx.exec("CREATE TABLE IF NOT EXISTS example_jobs (term bigint, done_at timestamptz)");
            tx.commit();
        }

        pgelect::ElectorOptions eo;
        eo.group = "report-generator";
        eo.data = "worker listening on :8080";
        pgelect::Elector elector(client, eo);

        std::mutex mu;
        std::thread worker;
        std::atomic<int> writes{0};
        elector.leader_changed.connect([](const std::optional<pgelect::LeaderInfo>& leader) {
            if (leader) {
                std::cout << "leader is now " << leader->identity << " (term " << leader->fencing_token
                          << ", \"" << leader->data << "\")" << std::endl;
            } else {
                std::cout << "no leader right now" << std::endl;
            }
        });
        elector.become_leader.connect([&](const pgelect::Leadership& term) {
            std::cout << "became leader of " << term.group << ", term " << term.fencing_token << std::endl;
            std::lock_guard lk(mu);
            if (worker.joinable()) worker.join();
            worker = std::thread([&, term] {
                pqxx::connection c("");
                while (!term.stop_token.stop_requested()) {
                    try {
                        pqxx::work tx(c);
                        pgelect::check_fencing(tx, term);  // throws once the lease changed hands
                        tx.exec_params("INSERT INTO example_jobs VALUES ($1, now())", term.fencing_token);
                        tx.commit();
                        ++writes;
                    } catch (const pgelect::LeadershipLostError& e) {
                        std::cout << "fenced write refused: " << e.what() << std::endl;
                        return;
                    }
                    std::this_thread::sleep_for(200ms);
                }
            });
        });
        elector.lost_leadership.connect([&](const pgelect::LossInfo& loss) {
            std::cout << "lost leadership (" << pgelect::to_string(loss.reason) << "): " << loss.message
                      << std::endl;
        });

        elector.start();
        if (!elector.wait_for_leadership(std::chrono::seconds(seconds))) {
            std::cout << "another instance leads; following" << std::endl;
        }
        std::this_thread::sleep_for(std::chrono::seconds(seconds));
        elector.stop();  // resigns: a follower takes over at once
        std::lock_guard lk(mu);
        if (worker.joinable()) worker.join();
        std::cout << "fenced writes done: " << writes.load() << std::endl;
        return 0;
    } catch (const pgelect::Error& e) {
        std::cerr << "error (" << pgelect::to_string(e.kind()) << "): " << e.what() << "\n";
        return 1;
    }
}
