// The safety round: every path by which an instance could keep believing it
// holds a lease while the world has moved on.  Each test drives the public API
// against the real server and asks every belief API, not only the Elector's
// own report.
#include <atomic>
#include <future>
#include <mutex>

#include "pgelect/fencing.hpp"
#include "ports.hpp"
#include "tcp_proxy.hpp"
#include "test_env.hpp"

namespace pgelect::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string via(const TcpProxy& proxy) {
    return "host=127.0.0.1 port=" + std::to_string(proxy.port()) +
           " user=postgres dbname=postgres gssencmode=disable sslmode=disable";
}

// Leases long enough that nothing in the test expires by time: what ends a
// belief there is the API call under test.
LeaseTiming slow_timing() {
    LeaseTiming t;
    t.lease_duration = 8000ms;
    t.renew_deadline = 6000ms;
    t.heartbeat_interval = 1000ms;
    t.retry_interval = 50ms;
    return t;
}

// A client whose every statement goes through `proxy` on one connection,
// with the release statements already prepared on it (libpqxx prepares on
// first use, which would need a reply before the release is even sent).
std::unique_ptr<LockClient> proxied_client(const TcpProxy& proxy, const std::string& table,
                                           LeaseTiming timing) {
    auto o = options_for(table, timing);
    o.pool_size = 1;
    auto c = std::make_unique<LockClient>(via(proxy), o);
    AcquireOptions keep;
    keep.keep_on_release = true;
    c->acquire("warm-up", keep).release();
    c->acquire("warm-up").release();
    return c;
}

// Everything an elector says about itself, in one sample.
struct Belief {
    bool is_leader;
    bool leadership;
    bool waited;
    bool term_running;  // the Leadership stop token has not fired
    bool any() const { return is_leader || leadership || waited || term_running; }
};

class SafetyTest : public LockTableTest {
protected:
    ElectorOptions group(const std::string& name, const std::string& identity,
                         LeaseTiming timing = fast_timing()) {
        ElectorOptions o;
        o.group = name;
        o.identity = identity;
        o.timing = timing;
        return o;
    }
    std::string row_owner(const std::string& name) {
        auto r = sql("SELECT owner FROM \"" + table_ + "\" WHERE name = '" + name +
                     "' AND record_version_number IS NOT NULL");
        return r.empty() ? "" : r[0][0].as<std::string>();
    }
    std::int64_t row_rvn(const std::string& name) {
        auto r = sql("SELECT coalesce(record_version_number, 0) FROM \"" + table_ +
                     "\" WHERE name = '" + name + "'");
        return r.empty() ? 0 : r[0][0].as<std::int64_t>();
    }
    // See ExpiredLeaseIsNeverRevived... below.
    void expired_lease_leaves_the_renewal_set(const std::function<void(std::unique_ptr<Elector>&)>& end);
    // A trigger that makes writes to the table fail while it exists.
    enum class Refuse {
        renewals,    // updates that keep the token and the holder; acquisitions and releases pass
        all_writes,  // every update: renewals, acquisitions and releases
    };
    void fail_renewals(bool on, Refuse what = Refuse::renewals) {
        const std::string fn = "\"" + table_ + "_no_renew\"";
        if (on) {
            const std::string condition =
                what == Refuse::all_writes
                    ? "TRUE"
                    : "NEW.record_version_number IS NOT NULL AND OLD.record_version_number IS NOT NULL "
                      "AND NEW.fencing_token = OLD.fencing_token";
            sql("CREATE FUNCTION " + fn + "() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF " +
                condition + " THEN RAISE EXCEPTION 'writes refused by the test'; END IF; "
                "RETURN NEW; END $$; "
                "CREATE TRIGGER no_renew BEFORE UPDATE ON \"" + table_ +
                "\" FOR EACH ROW EXECUTE FUNCTION " + fn + "()");
        } else {
            sql("DROP TRIGGER no_renew ON \"" + table_ + "\"; DROP FUNCTION " + fn + "()");
        }
    }
};

// --- Release: belief ends before the release statement is sent -------------

TEST_F(SafetyTest, ReleasedLockStopsBelievingBeforeItsSuccessorHolds) {
    TcpProxy proxy(server_port());
    auto a_client = proxied_client(proxy, table_, slow_timing());
    LockClient& a = *a_client;
    auto b = make_client(slow_timing());
    Lock held = a.acquire("job");

    auto successor = std::async(std::launch::async, [&] { return b->acquire("job"); });
    ASSERT_TRUE(eventually([&] { return row_owner("job") == a.owner(); }));
    proxy.hold_replies(true);  // A's release reaches the server; its answer does not come back
    auto releasing = std::async(std::launch::async, [&] {
        try {
            held.release();
        } catch (const Error&) {
        }
    });
    ASSERT_EQ(successor.wait_for(10s), std::future_status::ready) << "B was not woken";
    Lock b_lock = successor.get();
    // B holds; A's reply is still held back: A must not believe it holds.
    EXPECT_LT(Clock::now(), held.valid_until()) << "expired by time: the test proves nothing";
    EXPECT_TRUE(held.is_released());
    EXPECT_TRUE(held.lost_token().stop_requested());
    proxy.hold_replies(false);
    releasing.get();
    EXPECT_TRUE(held.is_released());
}

TEST_F(SafetyTest, ResigningLeaderStopsBelievingBeforeItsSuccessorLeads) {
    TcpProxy proxy(server_port());
    auto a_client = proxied_client(proxy, table_, slow_timing());
    Elector a(*a_client, group("g", "alice", slow_timing()));
    std::mutex mu;
    std::stop_token a_term;
    a.become_leader.connect([&](const Leadership& l) {
        std::lock_guard lk(mu);
        a_term = l.stop_token;
    });
    a.start();
    ASSERT_TRUE(a.wait_for_leadership(10s));
    auto b_client = make_client(slow_timing());
    Elector b(*b_client, group("g", "bob", slow_timing()));
    b.start();
    ASSERT_TRUE(eventually([&] { return b.leader() && b.leader()->identity == "alice"; }));

    auto believes = [&] {
        std::lock_guard lk(mu);
        return Belief{a.is_leader(), a.leadership().has_value(), a.wait_for_leadership(0ms),
                      !a_term.stop_requested()};
    };
    std::atomic<bool> b_leads{false}, done{false};
    std::atomic<int> violations{0};
    std::thread sampler([&] {
        while (!done) {
            const bool b_now = b_leads.load();  // read before sampling A
            if (b_now && believes().any()) ++violations;
            std::this_thread::sleep_for(1ms);
        }
    });
    proxy.hold_replies(true);
    a.resign();
    ASSERT_TRUE(b.wait_for_leadership(10s));
    b_leads = true;
    const Belief after = believes();
    EXPECT_FALSE(after.is_leader);
    EXPECT_FALSE(after.leadership);
    EXPECT_FALSE(after.waited);
    EXPECT_FALSE(after.term_running);
    std::this_thread::sleep_for(20ms);  // let the sampler look while A's reply is held
    proxy.hold_replies(false);
    done = true;
    sampler.join();
    EXPECT_EQ(violations.load(), 0) << "A still reported leadership while B led";
    b.stop();
    a.stop();
}

// --- Renewal replies are matched by (name, fencing token) ------------------

TEST_F(SafetyTest, RenewalOfOneHolderDoesNotKeepAnEarlierHolderOfTheSameNameAlive) {
    Lock first = client_->acquire("job");
    auto second = std::async(std::launch::async, [&] { return client_->acquire("job"); });
    ASSERT_TRUE(eventually([&] { return row_owner("job") == client_->owner(); }));
    // Freed by hand: the second thread of the same client (same owner) takes it.
    sql("UPDATE \"" + table_ + "\" SET record_version_number = NULL WHERE name = 'job'");
    ASSERT_EQ(second.wait_for(10s), std::future_status::ready);
    Lock next = second.get();
    EXPECT_GT(next.fencing_token(), first.fencing_token());
    EXPECT_TRUE(eventually([&] { return first.is_released(); }, 3s))
        << "the first Lock is kept alive by the second one's renewals";
    EXPECT_EQ(first.loss_cause(), LossCause::taken_over);
    EXPECT_FALSE(next.is_released());
}

// --- Expiry by time is final ------------------------------------------------

// Y's lease expires by time (every write refused, so neither the best-effort
// release nor a new term of Y gets through) while X's stop callback keeps a
// thread busy; then Y's elector is ended with `end` (stopped or destroyed) and
// writes work again: nothing may renew Y's row any more, and another candidate
// leads.
void SafetyTest::expired_lease_leaves_the_renewal_set(const std::function<void(std::unique_ptr<Elector>&)>& end) {
    LockClient& client = *client_;
    LeaseTiming x_timing = fast_timing();
    x_timing.heartbeat_interval = 100ms;
    x_timing.renew_deadline = 550ms;
    // Declared before the electors: X's slot uses them until X is destroyed.
    std::atomic<bool> x_callback_running{false};
    std::atomic<int> y_terms{0};
    std::mutex mu;
    std::vector<std::unique_ptr<std::stop_callback<std::function<void()>>>> callbacks;
    Elector x(client, group("x", "me", x_timing));
    auto y = std::make_unique<Elector>(client, group("y", "me"));
    x.become_leader.connect([&](const Leadership& l) {
        std::lock_guard lk(mu);
        callbacks.push_back(std::make_unique<std::stop_callback<std::function<void()>>>(
            l.stop_token, std::function<void()>([&] {
                x_callback_running = true;
                std::this_thread::sleep_for(3s);
            })));
    });
    y->become_leader.connect([&](const Leadership&) { ++y_terms; });
    x.start();
    y->start();
    ASSERT_TRUE(x.wait_for_leadership(10s));
    ASSERT_TRUE(y->wait_for_leadership(10s));
    fail_renewals(true, Refuse::all_writes);
    ASSERT_TRUE(eventually([&] { return !y->is_leader(); }, 5s));
    EXPECT_TRUE(eventually([&] { return x_callback_running.load(); }, 5s))
        << "x's loss (earlier deadline) should be in its callback";
    EXPECT_EQ(y_terms.load(), 1) << "y won a term while every write was refused";
    const auto rvn = row_rvn("y");
    ASSERT_NE(rvn, 0) << "y's row was freed while every write was refused";
    end(y);  // Y expired by time; ending it must drop it from the renewal set
    fail_renewals(false);
    // Writes work again: for several heartbeats nobody renews Y's row (the
    // best-effort release of the lost term may still free it: version 0).
    const auto until = Clock::now() + 6 * fast_timing().heartbeat_interval;
    while (Clock::now() < until) {
        const auto now = row_rvn("y");
        ASSERT_TRUE(now == rvn || now == 0) << "the expired lease of y is still being renewed";
        std::this_thread::sleep_for(10ms);
    }
    auto other = make_client();
    Elector z(*other, group("y", "zed"));
    const auto started = Clock::now();
    z.start();
    // A lease and a retry (the row is left to expire if the best-effort
    // release did not get through), plus 2 s for a loaded machine.
    const auto bound = fast_timing().lease_duration + fast_timing().retry_interval + 2s;
    EXPECT_TRUE(z.wait_for_leadership(bound + 3s)) << "no other candidate leads y";
    EXPECT_LE(Clock::now() - started, bound);
    EXPECT_EQ(row_owner("y"), "zed");
    z.stop();
    x.stop();
}

TEST_F(SafetyTest, ExpiredLeaseIsNeverRevivedAndLeavesTheRenewalSetWhenStopped) {
    expired_lease_leaves_the_renewal_set([](std::unique_ptr<Elector>& e) { e->stop(); });
}

TEST_F(SafetyTest, ExpiredLeaseIsNeverRevivedAndLeavesTheRenewalSetWhenDestroyed) {
    expired_lease_leaves_the_renewal_set([](std::unique_ptr<Elector>& e) { e.reset(); });
}

TEST_F(SafetyTest, LockPastItsDeadlineIsNotRevivedByALateRenewal) {
    // X's loss is reported first and its stop callback keeps that thread busy
    // while Y passes its deadline; then renewals succeed again.
    LeaseTiming x_timing = fast_timing();
    x_timing.heartbeat_interval = 100ms;
    x_timing.renew_deadline = 550ms;
    AcquireOptions xo;
    xo.timing = x_timing;
    Lock x = client_->acquire("x", xo);
    Lock y = client_->acquire("y");
    std::atomic<bool> x_callback_running{false};
    std::stop_callback blocker(x.lost_token(), [&] {
        x_callback_running = true;
        std::this_thread::sleep_for(3s);
    });
    fail_renewals(true);
    ASSERT_TRUE(eventually([&] { return x_callback_running.load(); }, 5s));
    ASSERT_TRUE(eventually([&] { return y.is_released(); }, 5s));
    fail_renewals(false);
    // Renewals succeed again now: y stays released, for good.
    const auto until = Clock::now() + 1500ms;
    while (Clock::now() < until) {
        ASSERT_TRUE(y.is_released()) << "an expired lock came back to life";
        std::this_thread::sleep_for(5ms);
    }
    EXPECT_TRUE(eventually([&] { return y.lost_token().stop_requested(); }, 5s));
}

// --- After a loss by failure, the conditional release is still tried -------

TEST_F(SafetyTest, LeaseLostToFailingRenewalsIsReleasedForFollowers) {
    LeaseTiming t;
    t.lease_duration = 5000ms;
    t.renew_deadline = 1000ms;
    t.heartbeat_interval = 250ms;
    t.retry_interval = 100ms;
    auto holder_client = make_client(t);
    auto follower_client = make_client(t);
    Elector holder(*holder_client, group("g", "holder", t));
    holder.start();
    ASSERT_TRUE(holder.wait_for_leadership(10s));
    Elector follower(*follower_client, group("g", "follower", t));
    follower.start();
    std::atomic<bool> lost{false};
    Clock::time_point lost_at{};
    holder.lost_leadership.connect([&](const LossInfo&) {
        lost_at = Clock::now();
        lost = true;
    });
    fail_renewals(true);
    ASSERT_TRUE(eventually([&] { return lost.load(); }, 10s));
    // The row is freed best-effort, so the follower need not wait out the lease.
    ASSERT_TRUE(follower.wait_for_leadership(10s));
    const auto waited = Clock::now() - lost_at;
    EXPECT_LT(waited, 3000ms) << "the follower waited for the lease to run out";
    fail_renewals(false);
    follower.stop();
    holder.stop();
}

// --- User code never runs on the renewal or deadline threads ---------------

TEST_F(SafetyTest, BlockingStopCallbackDoesNotDelayAnotherGroupsLoss) {
    LeaseTiming t = slow_timing();
    t.heartbeat_interval = 200ms;  // the takeover is seen by the next renewal
    auto c = make_client(t);
    Elector x(*c, group("x", "me", t));
    Elector y(*c, group("y", "me", t));
    std::atomic<bool> x_blocked{false};
    std::atomic<bool> y_lost{false};
    std::mutex mu;
    std::vector<std::unique_ptr<std::stop_callback<std::function<void()>>>> callbacks;
    x.become_leader.connect([&](const Leadership& l) {
        std::lock_guard lk(mu);
        callbacks.push_back(std::make_unique<std::stop_callback<std::function<void()>>>(
            l.stop_token, std::function<void()>([&] {
                x_blocked = true;
                std::this_thread::sleep_for(5s);
            })));
    });
    y.lost_leadership.connect([&](const LossInfo&) { y_lost = true; });
    x.start();
    y.start();
    ASSERT_TRUE(x.wait_for_leadership(10s));
    ASSERT_TRUE(y.wait_for_leadership(10s));
    sql("UPDATE \"" + table_ + "\" SET fencing_token = fencing_token + 1000 WHERE name = 'x'");
    ASSERT_TRUE(eventually([&] { return x_blocked.load(); }, 5s));
    sql("UPDATE \"" + table_ + "\" SET fencing_token = fencing_token + 1000 WHERE name = 'y'");
    const auto taken = Clock::now();
    ASSERT_TRUE(eventually([&] { return y_lost.load(); }, 10s));
    EXPECT_LT(Clock::now() - taken, 2s) << "y's loss waited for x's stop callback";
    {
        std::lock_guard lk(mu);
        callbacks.clear();
    }
    x.stop();
    y.stop();
}

// --- become_leader only for a live term -------------------------------------

TEST_F(SafetyTest, NoBecomeLeaderAfterStopWasCalled) {
    Elector e(*client_, group("g", "me"));
    std::atomic<int> became{0}, lost{0};
    std::atomic<bool> won{false};
    e.leader_changed.connect([&](const std::optional<LeaderInfo>& info) {
        if (info && info->identity == "me") {
            e.stop();  // from the elector's own thread, just before become_leader
            won = true;
        }
    });
    e.become_leader.connect([&](const Leadership&) { ++became; });
    e.lost_leadership.connect([&](const LossInfo&) { ++lost; });
    e.start();
    ASSERT_TRUE(eventually([&] { return won.load(); }, 10s));
    e.stop();
    EXPECT_EQ(became.load(), 0) << "become_leader was emitted after stop()";
    EXPECT_EQ(lost.load(), became.load());
    EXPECT_EQ(row_rvn("g"), 0) << "the lease was not given back";
}

// --- resign -----------------------------------------------------------------

TEST_F(SafetyTest, SecondResignDuringTheReleaseDoesNotResignTheNextTerm) {
    TcpProxy proxy(server_port());
    auto a_client = proxied_client(proxy, table_, slow_timing());
    Elector a(*a_client, group("g", "alice", slow_timing()));
    std::atomic<int> became{0}, lost{0};
    a.become_leader.connect([&](const Leadership&) { ++became; });
    a.lost_leadership.connect([&](const LossInfo&) { ++lost; });
    a.start();
    ASSERT_TRUE(eventually([&] { return became.load() == 1; }, 10s));
    proxy.hold_replies(true);
    a.resign();
    ASSERT_TRUE(eventually([&] { return row_rvn("g") == 0; }, 5s));  // the release ran
    a.resign();  // while the first release's reply is still held back
    proxy.hold_replies(false);
    ASSERT_TRUE(eventually([&] { return became.load() == 2; }, 10s))
        << "became " << became << " lost " << lost << " row owner '" << row_owner("g") << "' rvn "
        << row_rvn("g");
    const auto until = Clock::now() + 500ms;  // several heartbeats into the next term
    while (Clock::now() < until) {
        ASSERT_EQ(lost.load(), 1) << "the second resign ended the next term";
        std::this_thread::sleep_for(5ms);
    }
    EXPECT_TRUE(a.is_leader());
    a.stop();
}

TEST_F(SafetyTest, ResignHandsLeadershipToAWaitingCandidate) {
    constexpr int kResigns = 100;
    std::vector<std::unique_ptr<LockClient>> clients;
    std::vector<std::unique_ptr<Elector>> electors;
    for (int i = 0; i < 3; ++i) {
        clients.push_back(make_client());
        electors.push_back(std::make_unique<Elector>(*clients.back(),
                                                     group("g", "c" + std::to_string(i))));
        electors.back()->start();
    }
    auto leader_index = [&]() -> int {
        for (int i = 0; i < 3; ++i) {
            if (electors[i]->is_leader()) return i;
        }
        return -1;
    };
    ASSERT_TRUE(eventually([&] { return leader_index() >= 0; }, 10s));
    int again = 0;
    for (int n = 0; n < kResigns; ++n) {
        const int from = leader_index();
        ASSERT_GE(from, 0);
        const auto token = electors[from]->leadership()->fencing_token;
        electors[from]->resign();
        int to = -1;
        ASSERT_TRUE(eventually([&] {
            to = leader_index();
            return to >= 0 && electors[to]->leadership() &&
                   electors[to]->leadership()->fencing_token > token;
        }, 10s));
        if (to == from) ++again;
    }
    std::cout << "resign handoff: " << again << " of " << kResigns
              << " resigns were won again by the resigner (3 candidates)\n";
    EXPECT_LE(again, kResigns / 20) << "a resign with a waiting follower should hand over";
    for (auto& e : electors) e->stop();
}

// --- set_data while following -----------------------------------------------

TEST_F(SafetyTest, DataSetWhileFollowingIsTheNextTermsData) {
    Elector a(*client_, group("g", "alice"));
    a.start();
    ASSERT_TRUE(a.wait_for_leadership(10s));
    auto other = make_client();
    auto o = group("g", "bob");
    o.data = "old";
    Elector b(*other, o);
    b.start();
    ASSERT_TRUE(eventually([&] { return b.leader().has_value(); }));
    std::this_thread::sleep_for(100ms);  // b is waiting inside its campaign
    b.set_data("new");
    a.resign(10s);
    ASSERT_TRUE(b.wait_for_leadership(10s));
    auto leader = b.leader();
    ASSERT_TRUE(leader.has_value());
    EXPECT_EQ(leader->identity, "bob");
    EXPECT_EQ(leader->data, "new");
    b.stop();
    a.stop();
}

// --- A fenced transaction on one group does not cost the others ------------

TEST_F(SafetyTest, LongFencedTransactionOnOneGroupDoesNotCostTheOthers) {
    Elector x(*client_, group("x", "me"));
    Elector y(*client_, group("y", "me"));
    std::atomic<int> y_lost{0};
    y.lost_leadership.connect([&](const LossInfo&) { ++y_lost; });
    x.start();
    y.start();
    ASSERT_TRUE(x.wait_for_leadership(10s));
    ASSERT_TRUE(y.wait_for_leadership(10s));
    const auto term = x.leadership();
    ASSERT_TRUE(term.has_value());
    {
        pqxx::connection c(dsn());
        pqxx::work tx(c);
        check_fencing(tx, *term);
        // Hold the row lock for two renew deadlines.
        const auto until = Clock::now() + 2 * fast_timing().renew_deadline;
        while (Clock::now() < until) {
            ASSERT_TRUE(y.is_leader()) << "y lost its lease to x's fenced transaction";
            std::this_thread::sleep_for(5ms);
        }
        tx.commit();
    }
    EXPECT_EQ(y_lost.load(), 0);
    x.stop();
    y.stop();
}

TEST_F(SafetyTest, RenewalBlockedByAFencedTransactionDoesNotDelayTheSuccessor) {
    // A lease long enough that the defect (the successor waiting a whole extra
    // lease) stays clear of a loaded machine's slow wake-ups (4.3 s seen with
    // a 3 s lease).
    LeaseTiming t;
    t.lease_duration = 6000ms;
    t.renew_deadline = 1000ms;
    t.heartbeat_interval = 200ms;
    t.retry_interval = 50ms;
    auto holder_client = make_client(t);
    // The successor's takeover waits for the transaction's row lock; on a
    // loaded machine it may start seconds before the commit, so its statement
    // timeout must outlast the transaction (a timeout would end acquire()).
    LockClientOptions patient = options_for(table_, t);
    patient.statement_timeout = t.lease_duration + 10s;
    auto successor_client = std::make_unique<LockClient>(dsn(), patient);
    Lock held = holder_client->acquire("g");
    const auto token = held.fencing_token();
    // What the successor read while it waited (printed if it waited too long).
    std::mutex seen_mu;
    std::vector<std::pair<Clock::time_point, std::string>> seen;
    AcquireOptions watching;
    watching.observer = [&](const LockObservation& o) {
        std::lock_guard lk(seen_mu);
        seen.emplace_back(Clock::now(), !o.exists ? std::string("no row")
                                        : o.held  ? "held by " + o.owner + " token " +
                                                       std::to_string(o.fencing_token.value_or(-1)) +
                                                       " rvn " + std::to_string(row_rvn("g"))
                                                  : "free");
    };
    auto successor = std::async(std::launch::async, [&] { return successor_client->acquire("g", watching); });
    ASSERT_TRUE(eventually([&] { return row_owner("g") == holder_client->owner(); }));
    // The successor has read the row: its first attempt did not queue behind
    // the transaction below (an attempt on a held row waits for its row lock,
    // and a row first read after the commit is trusted for a whole lease).
    ASSERT_TRUE(eventually([&] {
        std::lock_guard lk(seen_mu);
        return !seen.empty();
    }));
    Clock::time_point committed;
    {
        // A fenced write of the holder's term (what check_fencing does), held
        // longer than the lease: the successor's takeover waits for it.
        pqxx::connection c(dsn());
        pqxx::work tx(c);
        ASSERT_FALSE(tx.exec("SELECT 1 FROM \"" + table_ + "\" WHERE name = 'g' AND fencing_token = " +
                             std::to_string(token) + " FOR SHARE")
                         .empty());
        std::this_thread::sleep_for(t.lease_duration + 500ms);
        EXPECT_TRUE(held.is_released());
        tx.commit();
        committed = Clock::now();
    }
    ASSERT_EQ(successor.wait_for(10s), std::future_status::ready);
    Lock next = successor.get();
    const auto waited = Clock::now() - committed;
    EXPECT_LT(waited, t.lease_duration / 2)
        << "a renewal queued behind the transaction refreshed a term nobody holds";
    if (waited >= t.lease_duration / 2) {
        std::lock_guard lk(seen_mu);
        std::string last;
        for (const auto& [at, what] : seen) {
            if (what == last) continue;
            last = what;
            std::cout << "  successor read " << what << " at "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(at - committed).count()
                      << " ms from the commit\n";
        }
    }
    EXPECT_GT(next.fencing_token(), token);
}

// --- Fencing tokens ---------------------------------------------------------

TEST_F(SafetyTest, TakeoverDrawsATokenAboveTheRowsEvenIfTheSequenceWasReset) {
    AcquireOptions keep;
    keep.keep_on_release = true;
    std::int64_t last = 0;
    for (int i = 0; i < 3; ++i) {
        Lock l = client_->acquire("job", keep);
        last = l.fencing_token();
        l.release();
    }
    sql("ALTER SEQUENCE \"" + table_ + "_fence\" RESTART WITH 1");
    Lock l = client_->acquire("job", keep);
    EXPECT_GT(l.fencing_token(), last);
}

TEST_F(SafetyTest, EverySpellingOfOneTableSharesTheNotifyChannel) {
    const std::string schema = table_ + "_s";
    sql("CREATE SCHEMA \"" + schema + "\"");
    LeaseTiming t = fast_timing();
    t.lease_duration = 20000ms;
    t.renew_deadline = 10000ms;
    t.heartbeat_interval = 2000ms;
    t.retry_interval = 10000ms;  // a missed NOTIFY would cost 10 s
    LockClientOptions qualified = options_for(schema + ".locks", t);
    LockClient q(dsn(), qualified);
    q.create_table();
    LockClientOptions plain = options_for("locks", t);
    LockClient p(dsn() + " options='-c search_path=" + schema + "'", plain);
    Lock held = q.acquire("job");
    auto waiter = std::async(std::launch::async, [&] { return p.acquire("job"); });
    std::this_thread::sleep_for(300ms);  // the waiter reads the row and listens
    const auto released = Clock::now();
    held.release();
    ASSERT_EQ(waiter.wait_for(15s), std::future_status::ready);
    Lock taken = waiter.get();
    EXPECT_LT(Clock::now() - released, 3s) << "the release's NOTIFY did not reach the other spelling";
    EXPECT_GT(taken.fencing_token(), 0);
    taken.release();
    sql("DROP SCHEMA \"" + schema + "\" CASCADE");
}

// Tokens of one name are drawn under an advisory lock keyed by the table's
// identity: a client that names the table through search_path and one that
// qualifies it queue behind the same lock (held here by hand), so their
// tokens are drawn in commit order too.
TEST_F(SafetyTest, EverySpellingOfOneTableDrawsTokensUnderTheSameAdvisoryLock) {
    const std::string schema = table_ + "_a";
    sql("CREATE SCHEMA \"" + schema + "\"");
    LockClientOptions qualified = options_for(schema + ".locks");
    qualified.statement_timeout = 1000ms;
    LockClient q(dsn(), qualified);
    q.create_table();
    LockClientOptions plain = options_for("locks");
    plain.statement_timeout = 1000ms;
    LockClient p(dsn() + " options='-c search_path=" + schema + "'", plain);
    {
        pqxx::connection c(dsn());
        pqxx::work blocker(c);
        blocker.exec_params("SELECT pg_advisory_xact_lock($1::regclass::oid::int4, hashtext($2))",
                            "\"" + schema + "\".\"locks\"", "job");
        for (LockClient* client : {&q, &p}) {
            try {
                client->try_acquire("job");
                ADD_FAILURE() << "a token was drawn while the table's advisory lock for the name was held";
            } catch (const UnavailableError& e) {
                EXPECT_NE(std::string(e.what()).find("statement timed out"), std::string::npos) << e.what();
            }
        }
        // Another name is another key.
        EXPECT_NO_THROW(p.try_acquire("other").release());
        blocker.abort();
    }
    Lock first = p.try_acquire("job");
    const auto token = first.fencing_token();
    first.release();
    Lock second = q.try_acquire("job");
    EXPECT_GT(second.fencing_token(), token);
    second.release();
    sql("DROP SCHEMA \"" + schema + "\" CASCADE");
}

// --- check_fencing ----------------------------------------------------------

// A nontransaction commits each statement on its own: the row lock would be
// gone before the caller's write.  It is refused at compile time.
template <class Tx>
concept FencingAccepts = requires(Tx& tx, const Leadership& term) { check_fencing(tx, term); };
static_assert(!FencingAccepts<pqxx::nontransaction>);
static_assert(FencingAccepts<pqxx::work>);
static_assert(FencingAccepts<pqxx::transaction<pqxx::repeatable_read>>);
static_assert(FencingAccepts<pqxx::transaction<pqxx::serializable>>);

TEST_F(SafetyTest, FencingInRepeatableReadWorksAsTheFirstStatementAndOtherwiseAsksForARetry) {
    Elector e(*client_, group("g", "me"));
    e.start();
    ASSERT_TRUE(e.wait_for_leadership(10s));
    const auto term = e.leadership();
    ASSERT_TRUE(term.has_value());
    {
        // First statement of the transaction: its snapshot sees the latest renewal.
        pqxx::connection c(dsn());
        pqxx::transaction<pqxx::repeatable_read> tx(c);
        EXPECT_NO_THROW(check_fencing(tx, *term));
        tx.commit();
    }
    {
        // A snapshot older than the latest renewal cannot lock the row.
        pqxx::connection c(dsn());
        pqxx::transaction<pqxx::repeatable_read> tx(c);
        tx.exec("SELECT 1");
        const auto rvn = row_rvn("g");
        ASSERT_TRUE(eventually([&] { return row_rvn("g") != rvn; }, 5s));  // a renewal
        EXPECT_THROW(check_fencing(tx, *term), SerializationError);
    }
    EXPECT_TRUE(e.is_leader());
    e.stop();
}

}  // namespace
}  // namespace pgelect::test
