#include "lock/client_core.hpp"

#include <algorithm>

#include "lock/timing_rules.hpp"
#include "pgelect/errors.hpp"

namespace pgelect::detail {

ClientCore::ClientCore(std::shared_ptr<LockStore> store, std::shared_ptr<Clock> clock,
                       LockClientOptions options)
    : options_((validate_options(options), std::move(options))),
      table_(parse_table_name(options_.table)),
      owner_(options_.owner.empty() ? default_identity() : options_.owner),
      store_(std::move(store)),
      clock_(std::move(clock)),
      board_(clock_),
      poller_([this](const std::vector<std::string>& names) { return store_->poll(names); }, clock_,
              board_),
      renewer_([this](const std::vector<RenewItem>& items) {
                   return renew(RenewVia::renewal_connection, items);
               },
               [this](const std::shared_ptr<LockState>& s, LossCause cause,
                      const std::string& reason) { lose_in_background(s, cause, reason); },
               clock_, [this] { store_->warm_renewal(); }) {
    LockStore::Listeners listeners;
    listeners.notification = [this](const std::string& payload) { on_notification(payload); };
    listeners.reconnected = [this] { board_.wake_all(); };
    listeners.unknown_outcome = [this](const char* operation, const std::vector<std::string>& names,
                                       const std::string& warning) {
        if (!hooks_.unknown_outcome) return;
        for (const auto& name : names) hooks_.unknown_outcome(UnknownOutcome{name, operation, warning});
    };
    listeners.timeline = [this](std::int64_t timeline) {
        if (hooks_.timeline) hooks_.timeline(timeline);
    };
    store_->set_listeners(std::move(listeners));
}

ClientCore::~ClientCore() { shutdown(); }

std::string ClientCore::context(const char* operation, const std::string& name) const {
    return lock_context(operation, name, table_);
}

void ClientCore::shutdown() {
    if (shut_down_.exchange(true)) return;
    // No renewal starts any more; one in flight (or the renewal connection
    // being opened) may run on while the locks are released, so that a
    // silent server costs one cut-off, not two.
    renewer_.request_stop();
    bool reachable = true;
    for (const auto& s : renewer_.held()) {
        if (reachable) {
            try {
                release(s, LossCause::client_closed);
            } catch (const UnavailableError&) {
                reachable = false;  // do not wait out a timeout for every lock
            } catch (const Error&) {
            }
        }
        lose(s, LossCause::client_closed, "the lock client was destroyed");
    }
    renewer_.stop();
    dispatcher_.stop();  // pending callbacks and best-effort releases finish first
    store_->stop_listening();
    hooks_ = Hooks{};
    store_->close_idle();
}

void ClientCore::create_table() { store_->create_table(); }

void ClientCore::try_create_table() { store_->try_create_table(); }

void ClientCore::drop_table() { store_->drop_table(); }

std::int64_t ClientCore::bump_epoch(std::int64_t above) { return store_->bump_epoch(above); }

Lock ClientCore::acquire(const std::string& name, const AcquireOptions& o, std::stop_token stop) {
    validate_lock_name(name);
    const LeaseTiming timing = o.timing.value_or(options_.timing);
    if (o.timing) {
        validate_timing(*o.timing);
        validate_renewal_fits(*o.timing, options_);
    }
    if (o.owner) validate_owner(*o.owner);
    const std::string& owner = o.owner ? *o.owner : owner_;
    if (shut_down_) throw NotAcquiredError(context("acquire", name) + ": the client is shut down");
    const auto lease = timing.lease_duration;

    WaitBoard::Registration registration(board_, name);
    // A read of the row asked of the poller and not used yet; withdrawn when
    // this call returns.
    std::shared_ptr<Poller::Request> read;
    struct Withdraw {
        Poller& poller;
        std::shared_ptr<Poller::Request>& read;
        ~Withdraw() {
            if (read) poller.withdraw(read);
        }
    } withdraw{poller_, read};
    std::optional<std::int64_t> expected = tracker_.stale_version(name, clock_->now(), lease);
    bool may_take = true;
    // The board's generation before the last attempt or read, so that a
    // release or acquisition noticed after it is never missed.
    WaitBoard::Generation generation;
    for (;;) {
        if (stop.stop_requested()) {
            throw NotAcquiredError(context("acquire", name) + ": cancelled while waiting");
        }
        if (!read) generation = board_.generation(name);
        if (may_take) {
            const auto start = clock_->now();
            TakeOutcome outcome;
            try {
                outcome = store_->try_take(name, owner, o, expected);
            } catch (const Error&) {
                if (hooks_.attempt) hooks_.attempt(name, AttemptResult::error);
                throw;
            }
            auto& taken = outcome.taken;
            if (hooks_.attempt) hooks_.attempt(name, taken ? AttemptResult::acquired : AttemptResult::busy);
            if (!taken && outcome.quarantine.count() > 0) {
                // The server was promoted less than a lease ago: nothing may be
                // taken until then, while a holder whose acquisition was lost
                // with the old primary may still believe it leads.
                if (o.fail_if_locked) {
                    throw NotAcquiredError(context("acquire", name) +
                                           ": failover quarantine for another " +
                                           std::to_string(outcome.quarantine.count()) + " ms");
                }
                board_.wait(name, generation,
                            clock_->now() + std::min<Clock::duration>(outcome.quarantine,
                                                                      timing.retry_interval),
                            stop);
                may_take = true;
                continue;
            }
            if (taken) {
                tracker_.forget(name);
                auto state = std::make_shared<LockState>(name, owner, timing, o.keep_on_release);
                state->fencing_token = taken->fencing_token;
                state->record_version_number = taken->rvn;
                state->data = std::move(taken->data);
                state->valid_until = start + timing.renew_deadline;
                state->next_renewal = start + timing.heartbeat_interval;
                if (clock_->now() >= state->valid_until) {
                    // The database took longer than the renew deadline to
                    // answer: this lease cannot be trusted; give it back.
                    try {
                        release(state);
                    } catch (const Error&) {
                    }
                    continue;
                }
                renewer_.add(state);
                return Lock(shared_from_this(), std::move(state));
            }
        }
        if (!read) {
            const auto now = clock_->now();
            read = poller_.ask(name, now, now);
        }
        // Waits for the answer.  At the read's instant this thread reads (with
        // the client's other contenders whose reads may run then) unless
        // another contender is reading it already.  A release or an
        // acquisition by someone else ends the wait.
        std::optional<PolledRow> row;
        bool woken = false;
        while (!Poller::answered(read, row)) {  // rethrows the read's error
            if (stop.stop_requested()) {
                throw NotAcquiredError(context("acquire", name) + ": cancelled while waiting");
            }
            const auto now = clock_->now();
            if (now >= read->due && poller_.read_due(read)) continue;
            board_.wait(name, generation, now >= read->due ? Clock::time_point::max() : read->due, stop,
                        [&] { return read->done.load(std::memory_order_acquire); });
            if (!(board_.generation(name) == generation)) {
                woken = true;
                break;
            }
        }
        if (woken) {
            // Released: try to take it at once; acquired by someone or
            // notifications missed: read it at once.
            poller_.withdraw(read);
            read.reset();
            may_take = board_.generation(name).released != generation.released;
            continue;
        }
        read.reset();
        if (o.observer) {
            LockObservation seen{name, row.has_value(), row && row->rvn, row ? row->owner : "",
                                 row ? row->fencing_token : std::nullopt};
            o.observer(seen);
        }
        if (!row || !row->rvn) {
            // Free (or gone) now: try again at once.
            expected.reset();
            may_take = true;
            continue;
        }
        const auto now = clock_->now();
        const auto first_seen = tracker_.observe(name, *row->rvn, now);
        if (o.fail_if_locked) {
            throw NotAcquiredError(context("acquire", name) + ": held by \"" + row->owner + "\"");
        }
        if (now - first_seen >= lease) {
            expected = row->rvn;  // unchanged for a full lease: the holder is gone
            may_take = true;
            continue;
        }
        may_take = false;
        store_->ensure_listening(options_.connect_timeout);
        // The next read: at the next retry tick, in step with the client's
        // other contenders (up to half an interval early); at the lease's end
        // exactly, when that comes first.
        const auto tick = now + timing.retry_interval;
        const auto lease_end = first_seen + lease;
        read = tick < lease_end ? poller_.ask(name, tick, tick - timing.retry_interval / 2)
                                : poller_.ask(name, lease_end, lease_end);
    }
}

std::vector<Renewed> ClientCore::renew(RenewVia via, const std::vector<RenewItem>& items) {
    RenewalReport report;
    const bool wanted = hooks_.renewal && (!hooks_.renewal_wanted || hooks_.renewal_wanted());
    if (wanted) {
        for (const auto& i : items) report.names.push_back(i.name);
    }
    const auto start = clock_->now();
    auto finish = [&](bool ok, std::optional<ErrorKind> error, const std::vector<Renewed>* rows) {
        if (!wanted) return;
        report.elapsed = std::chrono::duration_cast<std::chrono::steady_clock::duration>(clock_->now() - start);
        report.ok = ok;
        report.error = error;
        if (rows) {
            // Rows skipped because another transaction locked them were not renewed.
            for (const auto& r : *rows) {
                if (r.record_version_number) report.still_held.push_back(r.name);
            }
        }
        hooks_.renewal(report);
    };
    try {
        auto rows = store_->renew(items, via);
        finish(true, std::nullopt, &rows);
        return rows;
    } catch (const Error& e) {
        finish(false, e.kind(), nullptr);
        throw;
    }
}

void ClientCore::on_notification(const std::string& payload) {
    if (payload.size() < 2) return;
    const std::string name = payload.substr(1);
    if (payload[0] == 'R') {
        board_.wake(name);
    } else {
        board_.touch(name);
    }
}

void ClientCore::lose(const std::shared_ptr<LockState>& s, LossCause cause,
                      const std::string& reason) {
    renewer_.remove(s.get());
    if (!s->mark_released(cause, reason)) return;
    board_.wake(s->name);
    s->lost.request_stop();
}

void ClientCore::lose_in_background(const std::shared_ptr<LockState>& s, LossCause cause,
                                    const std::string& reason) {
    renewer_.remove(s.get());
    if (!s->mark_released(cause, reason)) return;
    board_.wake(s->name);
    // Only for locks renewed automatically: a lock without heartbeats that
    // reaches its deadline was simply not renewed, and expires after the
    // lease as in pglock.
    const bool give_back = s->automatic_renewal() && (cause == LossCause::deadline_passed ||
                                                      cause == LossCause::renewal_failed ||
                                                      cause == LossCause::database_unavailable);
    dispatcher_.post([this, s, give_back] {
        s->lost.request_stop();
        if (!give_back) return;
        std::int64_t token;
        {
            std::lock_guard lk(s->mu);
            token = s->fencing_token;
        }
        try {
            // Matches this acquisition only: a successor's row is never touched.
            store_->release(s->name, token, s->owner, s->keep_on_release);
        } catch (const Error&) {
            // Still unreachable: the row expires after the lease.
        }
    });
}

std::string ClientCore::deadline_reason(const LockState& s) const {
    return "renew deadline passed: no successful renewal for " +
           std::to_string(s.timing.renew_deadline.count()) + "ms";
}

void ClientCore::forget(const std::shared_ptr<LockState>& s) {
    bool reported;
    {
        std::lock_guard lk(s->mu);
        reported = s->released;
    }
    if (reported) {
        renewer_.remove(s.get());
    } else {
        lose_in_background(s, s->deadline_cause(), deadline_reason(*s));
    }
}

void ClientCore::heartbeat(const std::shared_ptr<LockState>& s) {
    const auto token = s->valid_token(clock_->now());
    if (!token) {
        forget(s);
        throw AlreadyReleasedError(context("renew", s->name) + ": already released (" +
                                   s->loss_reason() + ")");
    }
    const auto start = clock_->now();
    auto result = renew(RenewVia::pool, {RenewItem{s->name, *token, s->owner}});
    const auto mine = std::find_if(result.begin(), result.end(), [&](const Renewed& r) {
        return r.name == s->name && r.fencing_token == *token;
    });
    if (mine == result.end()) {
        lose(s, LossCause::taken_over,
             "taken over: the row no longer carries this holder's fencing token");
        throw AlreadyReleasedError(context("renew", s->name) + ": the lock was taken over or released");
    }
    if (!mine->record_version_number) {
        throw UnavailableError(context("renew", s->name) +
                               ": the row is locked by another transaction (a fenced write?); "
                               "outcome unknown, try again");
    }
    if (s->renewed(start, *mine->record_version_number, clock_->now()) !=
        LockState::Renewal::renewed) {
        forget(s);
        throw AlreadyReleasedError(context("renew", s->name) + ": already released (" +
                                   s->loss_reason() + ")");
    }
}

void ClientCore::release(const std::shared_ptr<LockState>& s, LossCause cause) {
    const auto token = s->valid_token(clock_->now());
    if (!token) {
        // Lost already, or past its renew deadline and not reported yet.
        forget(s);
        throw AlreadyReleasedError(context("release", s->name) + ": already released (" +
                                   s->loss_reason() + ")");
    }
    // Belief ends here, before the statement that lets a successor in is
    // sent: is_released() turns true and lost_token() fires on this thread.
    if (!s->mark_released(cause, cause == LossCause::released ? "released"
                                                               : "the lock client was destroyed")) {
        throw AlreadyReleasedError(context("release", s->name) + ": already released (" +
                                   s->loss_reason() + ")");
    }
    renewer_.remove(s.get());
    s->lost.request_stop();
    bool released = false;
    try {
        released = store_->release(s->name, *token, s->owner, s->keep_on_release);
    } catch (const Error& e) {
        s->set_cause(e.kind() == ErrorKind::unavailable ? LossCause::database_unavailable
                                                        : LossCause::renewal_failed,
                     std::string("release failed: ") + e.what());
        board_.wake(s->name);
        throw;
    }
    board_.wake(s->name);
    if (!released) {
        s->set_cause(LossCause::taken_over, "taken over or released by someone else");
        throw AlreadyReleasedError(context("release", s->name) +
                                   ": already released (taken over or released by someone else)");
    }
}

void ClientCore::abandon(const std::shared_ptr<LockState>& s) {
    lose(s, LossCause::released, "abandoned: left to expire after the lease");
}

void ClientCore::set_data(const std::shared_ptr<LockState>& s, const std::string& data) {
    const auto token = s->valid_token(clock_->now());
    if (!token) {
        forget(s);
        throw AlreadyReleasedError(context("set data of", s->name) + ": already released (" +
                                   s->loss_reason() + ")");
    }
    bool ok = store_->set_data(s->name, *token, s->owner, data);
    if (!ok) {
        lose(s, LossCause::taken_over, "taken over or released by someone else");
        throw AlreadyReleasedError(context("set data of", s->name) +
                                   ": the lock was taken over or released");
    }
    std::lock_guard lk(s->mu);
    s->data = data;
}

LockInfo ClientCore::get(const std::string& name) {
    validate_lock_name(name);
    return store_->get(name);
}

std::vector<LockInfo> ClientCore::get_all() { return store_->get_all(); }

}  // namespace pgelect::detail
