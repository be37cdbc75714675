// basic_lock: acquire a lock, do some work while holding it, and let a second
// client read who holds it.  The connection comes from the DSN argument or
// libpq's PG* environment (scripts/with-postgres sets both).
//
//   basic_lock [DSN]
#include <pgelect/pgelect.hpp>

#include <iostream>

int main(int argc, char** argv) {
    const std::string dsn = argc > 1 ? argv[1] : "";
    try {
        pgelect::LockClientOptions options;
        options.table = "example_locks";
        pgelect::LockClient worker(dsn, options);
        worker.try_create_table();

        pgelect::AcquireOptions acquire;
        acquire.data = "worker at 10.0.0.7:8080";
        pgelect::Lock lock = worker.acquire("nightly-report", acquire);
        std::cout << "acquired \"" << lock.name() << "\" as " << lock.owner() << " with fencing token "
                  << lock.fencing_token() << "\n";

        // Another client (another process, usually) sees the holder without acquiring.
        pgelect::LockClient observer(dsn, options);
        pgelect::LockInfo info = observer.get("nightly-report");
        std::cout << "observer sees holder " << info.owner.value_or("?") << " advertising \""
                  << info.data.value_or("") << "\"\n";
        try {
            observer.try_acquire("nightly-report");
            std::cerr << "error: the observer took a held lock\n";
            return 1;
        } catch (const pgelect::NotAcquiredError& e) {
            std::cout << "observer cannot take it: " << e.what() << "\n";
        }

        std::cout << "working";
        for (int i = 0; i < 3 && !lock.lost_token().stop_requested(); ++i) std::cout << "." << std::flush;
        std::cout << " done\n";

        lock.release();
        std::cout << "released; the observer can take it now: ";
        pgelect::Lock next = observer.try_acquire("nightly-report");
        std::cout << "fencing token " << next.fencing_token() << " > " << lock.fencing_token() << "\n";
        next.release();
        return 0;
    } catch (const pgelect::Error& e) {
        std::cerr << "error (" << pgelect::to_string(e.kind()) << "): " << e.what() << "\n";
        return 1;
    }
}
