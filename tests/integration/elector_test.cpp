// Elector: signals and their contract, resign/stop/handoff, observation,
// health, fenced writes.
#include <future>
#include <mutex>

#include "pgelect/fencing.hpp"
#include "test_env.hpp"

namespace pgelect::test {
namespace {

using Clock = std::chrono::steady_clock;

// Records an elector's signals in order.
struct Recorder {
    struct Event {
        char kind;  // 'B' become, 'L' lost, 'C' changed
        std::int64_t token;
        LossReason reason;
        std::string who;
    };
    explicit Recorder(Elector& e) {
        e.become_leader.connect([this](const Leadership& l) { add({'B', l.fencing_token, {}, l.identity}); });
        e.lost_leadership.connect([this](const LossInfo& l) { add({'L', l.fencing_token, l.reason, l.identity}); });
        e.leader_changed.connect([this](const std::optional<LeaderInfo>& i) {
            add({'C', i ? i->fencing_token : 0, {}, i ? i->identity : ""});
        });
    }
    void add(Event e) {
        std::lock_guard lk(mu);
        events.push_back(std::move(e));
    }
    std::vector<Event> snapshot() {
        std::lock_guard lk(mu);
        return events;
    }
    int count(char kind) {
        int n = 0;
        for (auto& e : snapshot()) n += e.kind == kind;
        return n;
    }
    // become/lost strictly alternate, start with become, and pair on the token.
    void expect_pairs() {
        std::optional<std::int64_t> open;
        for (auto& e : snapshot()) {
            if (e.kind == 'B') {
                EXPECT_FALSE(open.has_value()) << "become_leader twice without lost_leadership";
                open = e.token;
            } else if (e.kind == 'L') {
                ASSERT_TRUE(open.has_value()) << "lost_leadership without become_leader";
                EXPECT_EQ(*open, e.token);
                open.reset();
            }
        }
    }
    std::mutex mu;
    std::vector<Event> events;
};

class ElectorTest : public LockTableTest {
protected:
    std::unique_ptr<Elector> make_elector(const std::string& identity, LockClient* client = nullptr,
                                          std::string data = {},
                                          std::optional<LeaseTiming> timing = std::nullopt) {
        ElectorOptions o;
        o.group = "scheduler";
        o.identity = identity;
        o.data = std::move(data);
        o.timing = timing;
        return std::make_unique<Elector>(client ? *client : *client_, o);
    }
};

TEST_F(ElectorTest, SingleCandidateBecomesLeaderAndAdvertises) {
    auto e = make_elector("alpha", nullptr, "10.0.0.1:80");
    Recorder rec(*e);
    e->start();
    ASSERT_TRUE(e->wait_for_leadership(5s));
    // is_leader() may turn true a moment before become_leader is emitted
    // (docs/elector.md); a stop() in that moment would rightly give the term
    // back unannounced.
    ASSERT_TRUE(eventually([&] { return rec.count('B') == 1; }));
    EXPECT_TRUE(e->is_leader());
    EXPECT_TRUE(e->healthy());
    auto leader = e->leader();
    ASSERT_TRUE(leader.has_value());
    EXPECT_EQ(leader->identity, "alpha");
    EXPECT_EQ(leader->data, "10.0.0.1:80");
    auto term = e->leadership();
    ASSERT_TRUE(term.has_value());
    EXPECT_EQ(leader->fencing_token, term->fencing_token);
    EXPECT_EQ(term->group, "scheduler");
    e->stop();
    EXPECT_FALSE(e->is_leader());
    EXPECT_TRUE(term->stop_token.stop_requested());
    ASSERT_EQ(rec.count('B'), 1);
    ASSERT_EQ(rec.count('L'), 1);
    EXPECT_EQ(rec.snapshot().back().reason, LossReason::stopped);
    rec.expect_pairs();
    EXPECT_FALSE(e->leader().has_value());  // released on stop
}

TEST_F(ElectorTest, StopHandsOverAtOnceAndFollowersObserveTheNewLeader) {
    // A handoff through the release takes well under a second even on a busy
    // machine; a takeover after the lease would take 5 s.  Bounding the
    // handoff at half the lease tells the two apart without depending on how
    // quickly a loaded machine runs the waiter.
    const LeaseTiming timing = loaded_timing();
    auto c2 = make_client();
    auto c3 = make_client();
    auto a = make_elector("a", nullptr, {}, timing);
    auto b = make_elector("b", c2.get(), {}, timing);
    auto f = make_elector("f", c3.get(), {}, timing);
    Recorder ra(*a), rb(*b), rf(*f);
    a->start();
    ASSERT_TRUE(a->wait_for_leadership(5s));
    ASSERT_TRUE(eventually([&] { return ra.count('B') == 1; }));  // announced before it ends
    b->start();
    f->start();
    // Followers see a as the leader.
    ASSERT_TRUE(eventually([&] {
        for (auto& ev : rb.snapshot()) if (ev.kind == 'C' && ev.who == "a") return true;
        return false;
    }));
    const auto start = Clock::now();
    a->stop();
    ASSERT_TRUE(eventually([&] { return b->is_leader() || f->is_leader(); }, 10s));
    EXPECT_LT(Clock::now() - start, timing.lease_duration / 2);  // a handoff, not a lease
    EXPECT_FALSE(b->is_leader() && f->is_leader());
    Elector& winner = b->is_leader() ? *b : *f;
    Recorder& loser_rec = b->is_leader() ? rf : rb;
    // The other follower learns of the new leader.
    ASSERT_TRUE(eventually([&] {
        for (auto& ev : loser_rec.snapshot()) if (ev.kind == 'C' && ev.who == winner.identity()) return true;
        return false;
    }));
    b->stop();
    f->stop();
    ra.expect_pairs();
    rb.expect_pairs();
    rf.expect_pairs();
    EXPECT_EQ(ra.snapshot().back().reason, LossReason::stopped);
}

TEST_F(ElectorTest, ResignGivesLeadershipAwayAndCooldownKeepsOut) {
    // As above: half of a 5 s lease tells a handoff from a takeover after the
    // lease.  The cooldown is long enough that b's resignation and return
    // surely fall inside it, however slowly a busy machine runs them.
    const LeaseTiming timing = loaded_timing();
    constexpr auto kCooldown = 4s;
    auto c2 = make_client();
    auto a = make_elector("a", nullptr, {}, timing);
    auto b = make_elector("b", c2.get(), {}, timing);
    Recorder ra(*a), rb(*b);
    a->start();
    ASSERT_TRUE(a->wait_for_leadership(5s));
    ASSERT_TRUE(eventually([&] { return ra.count('B') == 1; }));  // announced before it ends
    b->start();
    std::this_thread::sleep_for(100ms);  // b is waiting
    const auto start = Clock::now();
    a->resign(kCooldown);
    ASSERT_TRUE(b->wait_for_leadership(10s));
    EXPECT_LT(Clock::now() - start, timing.lease_duration / 2);  // a handoff, not a lease
    // a's term ended before its release; the signal follows on a's thread.
    ASSERT_TRUE(eventually([&] { return ra.snapshot().back().kind == 'L'; }, 2s));
    EXPECT_EQ(ra.snapshot().back().reason, LossReason::resigned);
    b->resign();  // b campaigns again at once; a is still cooling down
    ASSERT_TRUE(b->wait_for_leadership(2s));
    ASSERT_LT(Clock::now() - start, kCooldown) << "too slow to check the cooldown";
    EXPECT_FALSE(a->is_leader());
    EXPECT_EQ(ra.count('B'), 1);
    // After the cooldown a competes again and wins when b resigns.
    std::this_thread::sleep_until(start + kCooldown);
    b->resign(5s);
    ASSERT_TRUE(a->wait_for_leadership(5s));
    a->stop();
    b->stop();
    ra.expect_pairs();
    rb.expect_pairs();
}

TEST_F(ElectorTest, SlotsMayCallBackAndThrowingSlotsAreContained) {
    auto e = make_elector("reentrant");
    std::atomic<int> terms{0};
    std::atomic<bool> was_leader_inside{false};
    e->become_leader.connect([&](const Leadership&) { throw std::runtime_error("slot failure"); });
    e->become_leader.connect([&](const Leadership&) {
        was_leader_inside = e->is_leader();
        if (++terms == 1) e->resign();  // from the elector's own thread
    });
    Recorder rec(*e);
    e->start();
    ASSERT_TRUE(eventually([&] { return terms.load() >= 2; }, 5s));
    EXPECT_TRUE(was_leader_inside.load());
    ASSERT_TRUE(e->wait_for_leadership(2s));
    e->lost_leadership.connect([&](const LossInfo&) { e->stop(); });  // stop from a slot: no deadlock
    e->resign();
    ASSERT_TRUE(eventually([&] { return rec.count('L') >= 2; }, 5s));
    e->stop();
    rec.expect_pairs();
}

TEST_F(ElectorTest, IsLeaderTurnsFalseAtTheDeadlineEvenWhileTheCampaignThreadIsStuck) {
    auto e = make_elector("stuck");
    std::promise<void> release_slot;
    auto slot_may_return = release_slot.get_future().share();
    e->become_leader.connect([&](const Leadership&) { slot_may_return.wait(); });
    Recorder rec(*e);
    e->start();
    ASSERT_TRUE(eventually([&] { return e->is_leader(); }, 5s));
    ASSERT_TRUE(eventually([&] { return rec.count('B') == 0; }, 1s));  // slot still running
    pqxx::connection blocker(dsn());
    pqxx::work tx(blocker);
    tx.exec("SELECT * FROM \"" + table_ + "\" WHERE name = 'scheduler' FOR UPDATE");
    ASSERT_TRUE(eventually([&] { return !e->healthy(); }, 2s));  // overdue before the deadline
    const auto blocked = Clock::now();
    ASSERT_TRUE(eventually([&] { return !e->is_leader(); }, 2s));
    EXPECT_LT(Clock::now() - blocked, 1000ms);
    tx.abort();
    release_slot.set_value();
    ASSERT_TRUE(eventually([&] { return rec.count('L') == 1; }, 3s));
    const auto ev = rec.snapshot();
    auto lost = std::find_if(ev.begin(), ev.end(), [](auto& x) { return x.kind == 'L'; });
    EXPECT_EQ(lost->reason, LossReason::deadline_passed);
    e->stop();
    rec.expect_pairs();
}

TEST_F(ElectorTest, TakenLeaseEndsTheTermWithLockTaken) {
    auto e = make_elector("victim");
    Recorder rec(*e);
    std::stop_token term_token;
    e->become_leader.connect([&](const Leadership& l) { term_token = l.stop_token; });
    e->start();
    ASSERT_TRUE(e->wait_for_leadership(5s));
    sql("UPDATE \"" + table_ + "\" SET fencing_token = fencing_token + 100 WHERE name = 'scheduler'");
    ASSERT_TRUE(eventually([&] { return rec.count('L') == 1; }, 3s));
    EXPECT_EQ(rec.snapshot()[2].reason, LossReason::lock_taken);  // C, B, L
    EXPECT_TRUE(term_token.stop_requested());
    e->stop();
    rec.expect_pairs();
}

TEST_F(ElectorTest, WaitForLeadershipTimesOutWhileAnotherLeads) {
    auto c2 = make_client();
    auto a = make_elector("a");
    auto b = make_elector("b", c2.get());
    a->start();
    ASSERT_TRUE(a->wait_for_leadership(5s));
    b->start();
    const auto start = Clock::now();
    EXPECT_FALSE(b->wait_for_leadership(300ms));
    EXPECT_GE(Clock::now() - start, 290ms);
    EXPECT_EQ(b->leader()->identity, "a");
}

TEST_F(ElectorTest, SetDataIsSeenByFollowers) {
    auto e = make_elector("proclaimer", nullptr, "v1");
    e->start();
    ASSERT_TRUE(e->wait_for_leadership(5s));
    e->set_data("v2");
    auto c2 = make_client();
    auto f = make_elector("f", c2.get());
    EXPECT_EQ(f->leader()->data, "v2");
}

TEST_F(ElectorTest, WithoutReleaseOnStopTheLeaseExpires) {
    ElectorOptions o;
    o.group = "scheduler";
    o.identity = "leaves";
    o.release_on_stop = false;
    Elector a(*client_, o);
    a.start();
    ASSERT_TRUE(a.wait_for_leadership(5s));
    auto c2 = make_client();
    auto b = make_elector("b", c2.get());
    b->start();
    std::this_thread::sleep_for(100ms);
    const auto stopped = Clock::now();
    a.stop();
    ASSERT_TRUE(b->wait_for_leadership(3s));
    EXPECT_GE(Clock::now() - stopped, 900ms);  // waited out the 1 s lease
}

TEST_F(ElectorTest, DeposedLeadersFencedWriteIsRejected) {
    sql("CREATE TABLE \"" + table_ + "_data\" (v int)");
    auto e = make_elector("writer");
    e->start();
    ASSERT_TRUE(e->wait_for_leadership(5s));
    const std::optional<Leadership> term = e->leadership();
    ASSERT_TRUE(term.has_value());
    {
        pqxx::connection c(dsn());
        pqxx::work tx(c);
        check_fencing(tx, *term);
        tx.exec("INSERT INTO \"" + table_ + "_data\" VALUES (1)");
        tx.commit();
    }
    sql("UPDATE \"" + table_ + "\" SET fencing_token = fencing_token + 100 WHERE name = 'scheduler'");
    pqxx::connection c(dsn());
    pqxx::work tx(c);
    try {
        check_fencing(tx, *term);
        FAIL() << "fenced write of a deposed leader passed";
    } catch (const LeadershipLostError& err) {
        EXPECT_EQ(err.kind(), ErrorKind::leadership_lost);
        EXPECT_NE(std::string(err.what()).find("scheduler"), std::string::npos);
    }
}

TEST_F(ElectorTest, TakeoverWaitsForAnOpenFencedTransaction) {
    sql("CREATE TABLE \"" + table_ + "_data\" (v int)");
    LeaseTiming off = fast_timing();
    off.heartbeat_interval = 0ms;  // the old leader stops renewing: a takeover is due after 1 s
    auto old_client = make_client(off);
    auto lock = old_client->acquire("scheduler", AcquireOptions{.owner = "old"});
    Leadership term{"scheduler", "old", table_, lock.fencing_token(), {}, {}};
    pqxx::connection c(dsn());
    pqxx::work tx(c);
    check_fencing(tx, term);
    auto c2 = make_client();
    auto contender = std::async(std::launch::async, [&] {
        auto l = c2->acquire("scheduler");
        return std::make_pair(Clock::now(), l.fencing_token());
    });
    std::this_thread::sleep_for(1500ms);  // past the lease: the takeover is blocked by FOR SHARE
    EXPECT_EQ(contender.wait_for(0ms), std::future_status::timeout);
    tx.exec("INSERT INTO \"" + table_ + "_data\" VALUES (1)");
    const auto committed = Clock::now();
    tx.commit();
    ASSERT_EQ(contender.wait_for(5s), std::future_status::ready);
    auto [at, token] = contender.get();
    EXPECT_GE(at, committed);
    EXPECT_GT(token, term.fencing_token);
}

TEST(ElectorUnavailable, KeepsCampaigningWhileTheDatabaseIsDownAndStopsPromptly) {
    LockClientOptions o;
    o.connect_timeout = 2s;
    LockClient client("host=127.0.0.1 port=1 dbname=x", o);
    ElectorOptions eo;
    eo.group = "g";
    Elector e(client, eo);
    Recorder rec(e);
    e.start();
    EXPECT_FALSE(e.wait_for_leadership(500ms));
    const auto start = Clock::now();
    e.stop();
    EXPECT_LT(Clock::now() - start, 3s);
    EXPECT_EQ(rec.count('B'), 0);
    EXPECT_EQ(rec.count('L'), 0);
}

TEST(ElectorOptionsTest, BadOptionsAreRefused) {
    LockClient client("", LockClientOptions{});
    EXPECT_THROW(Elector(client, ElectorOptions{}), InvalidArgumentError);  // no group
    ElectorOptions o;
    o.group = "g";
    o.timing = LeaseTiming{.lease_duration = 1s, .renew_deadline = 2s};
    EXPECT_THROW(Elector(client, o), InvalidArgumentError);
}

}  // namespace
}  // namespace pgelect::test
