#!/usr/bin/env bash
# shellcheck disable=SC2317  # cleanup is invoked via trap
# Usage: scripts/with-patroni tests/patroni/patroni_test.sh PATH_TO_PGELECT
#
# `pgelect run` on a Patroni cluster (scripts/with-patroni): three candidates of
# one group, two through the multi-host DSN and one through haproxy, each
# running a command that logs "start IDENTITY TOKEN MONOTONIC_NS" when it starts
# and "end ..." when SIGTERM reaches it.  The cluster goes through a graceful
# switchover (patronictl), a crash of the primary once the switchover's failover
# quarantine has ended (kill -9 of its Patroni and PostgreSQL; Patroni promotes
# the synchronous standby after its ttl) and the crashed node's return as a
# standby.  Then, from the log:
#   (a) commands of different terms never ran at the same time;
#   (b) fencing tokens strictly increase from term to term;
#   (c) the tokens' timeline part (token >> 40) grew across the crash (and
#       across the switchover, when a term started after it);
#   (d) a term started after the crash.
# Exits non-zero naming the violation.
#
# PGELECT_KEEP_PATRONI_TEST=DIR keeps the log and the candidates' stderr there.
set -euo pipefail

prog=patroni_test
if (($# != 1)) || [[ ! -x $1 ]]; then
    echo "usage: scripts/with-patroni $0 PATH_TO_PGELECT" >&2
    exit 2
fi
PGELECT=$1
for v in PGELECT_PATRONI_DSN PGELECT_PATRONI_HAPROXY_DSN PGELECT_PATRONICTL PGELECT_PATRONI_CTL; do
    if [[ -z ${!v:-} ]]; then
        echo "$prog: $v is not set: run under scripts/with-patroni" >&2
        exit 2
    fi
done
CTL=$PGELECT_PATRONI_CTL
GROUP=patroni
LEASE_S=6
TIMING=(--lease "${LEASE_S}s" --renew-deadline 4s --heartbeat 500ms --retry 200ms --grace 1s)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgelect-patroni-test.XXXXXX")
LOG=$WORK/terms.log
: >"$LOG"
now_ms() { local us=${EPOCHREALTIME//[!0-9]/}; echo $((us / 1000)); }
ms_since() { echo $(($(now_ms) - $1)); }
test_start=$(now_ms)

# The candidates' command, and "mark" lines for the test's own events, all in
# one log, each line written with a single O_APPEND write.
cat >"$WORK/term.py" <<'EOF'
import os, signal, sys, time

path = sys.argv[1]

def write(kind, who, value):
    line = "%s %s %s %d\n" % (kind, who, value, time.monotonic_ns())
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)

if len(sys.argv) > 2:  # term.py LOG mark NAME [VALUE]
    write("mark", sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "-")
    sys.exit(0)

identity = os.environ["PGELECT_IDENTITY"]
token = os.environ["PGELECT_FENCING_TOKEN"]

def on_term(signum, frame):
    write("end", identity, token)
    os._exit(0)

signal.signal(signal.SIGTERM, on_term)
write("start", identity, token)
while True:
    signal.pause()
EOF

pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    if [[ -n ${PGELECT_KEEP_PATRONI_TEST:-} ]]; then
        { mkdir -p "$PGELECT_KEEP_PATRONI_TEST" && cp -f -- "$WORK"/* "$PGELECT_KEEP_PATRONI_TEST"/; } || true
    fi
    rm -rf -- "$WORK"
}
trap cleanup EXIT

mark() { python3 "$WORK/term.py" "$LOG" mark "$@"; }
fail() {
    echo "$prog: FAIL: $*" >&2
    echo "--- cluster ---" >&2
    "$CTL" status >&2 || true
    echo "--- $LOG ---" >&2
    cat "$LOG" >&2
    local i
    for i in 1 2 3; do
        echo "--- candidate c$i (last 25 lines of stderr) ---" >&2
        tail -n 25 "$WORK/c$i.err" >&2 || true
    done
    exit 1
}
stamp() { # prefix each line with the wall-clock time
    local line t
    while IFS= read -r line; do
        t=$EPOCHREALTIME
        printf '%(%T)T.%s %s\n' "${t%[.,]*}" "${t:(-6):3}" "$line"
    done
}
step() {
    local ms
    ms=$(ms_since "$test_start")
    echo "$prog: [$((ms / 1000)).$((ms % 1000 / 100))s] $*" >&2
}

# The open term whose token is the lease row's on the current primary, once
# the row was renewed there after the server time $1: prints "IDENTITY TOKEN".
leader_since() {
    local p row
    p=$("$CTL" primary 2>/dev/null) || return 1
    row=$("$CTL" psql "$p" -At -c "SELECT owner || ' ' || fencing_token FROM locks
                                    WHERE name = '$GROUP' AND renewed_at > '$1'" 2>/dev/null) || return 1
    [[ -n $row ]] || return 1
    awk '$1 == "start" { open[$2 " " $3] = 1 } $1 == "end" { delete open[$2 " " $3] }
         END { for (k in open) print k }' "$LOG" | grep -qxF -- "$row" || return 1
    echo "$row"
}
server_now() { # the current primary's clock
    "$CTL" psql "$1" -At -c 'SELECT clock_timestamp()'
}
wait_leader() { # wait_leader SINCE SECONDS WHAT
    local deadline=$((SECONDS + $2)) who
    while ((SECONDS < deadline)); do
        if who=$(leader_since "$1"); then
            echo "$who"
            return 0
        fi
        sleep 0.2
    done
    fail "no leader renewing on the primary within $2s $3"
}
check_candidates() {
    local i
    for i in 1 2 3; do
        kill -0 "${pids[i - 1]}" 2>/dev/null || fail "candidate c$i exited early ($1)"
    done
}

# --- candidates ---
p=$("$CTL" wait-primary 30) || fail "no primary at the start"
tl=$("$CTL" timeline "$p") || fail "no timeline from node $p"
mark begin "$tl"
since=$(server_now "$p") || fail "node $p does not answer"
for i in 1 2 3; do
    dsn=$PGELECT_PATRONI_DSN
    ((i == 3)) && dsn=$PGELECT_PATRONI_HAPROXY_DSN
    "$PGELECT" --dsn "$dsn" run --group "$GROUP" --identity "c$i" "${TIMING[@]}" --create-table \
        -- python3 "$WORK/term.py" "$LOG" 2> >(stamp >"$WORK/c$i.err") &
    pids+=($!)
done
step "candidates c1, c2 (multi-host DSN) and c3 (haproxy) started; node $p is primary on timeline $tl"
who=$(wait_leader "$since" 30 "after the start")
step "leader: $who"

# --- graceful switchover ---
mark switchover-begin "$tl"
t=$(now_ms)
p=$("$CTL" switchover 60 2>"$WORK/switchover.out") || { cat "$WORK/switchover.out" >&2; fail "switchover"; }
tl=$("$CTL" timeline "$p") || fail "no timeline from node $p"
mark switchover-done "$tl"
since=$(server_now "$p") || fail "node $p does not answer"
step "switchover: node $p is primary on timeline $tl after $(ms_since "$t") ms"
who=$(wait_leader "$since" 60 "after the switchover")
step "leader: $who"
# Only the synchronous standby may be promoted (synchronous_mode): wait until
# the old primary streams again as one.
t=$(now_ms)
"$CTL" wait-healthy 60 >/dev/null || fail "node $((3 - p)) did not return as synchronous standby"
step "node $((3 - p)) is synchronous standby again after $(ms_since "$t") ms"
check_candidates "after the switchover"
# A candidate that comes back on a new timeline waits out its quarantine (one
# lease from the timeline's first acquisition attempt) without reading the
# lease row; crashing before that ends would measure two failovers within one
# lease (its first look at the row then comes after the next quarantine, and a
# takeover a full lease later).  Crash one lease and a second after both.
deadline=$((SECONDS + 30))
until [[ $("$CTL" psql "$p" -At -c "SELECT clock_timestamp() > greatest('$since'::timestamptz,
              (SELECT max(first_seen) FROM locks_epoch WHERE timeline = $tl)) + interval '$((LEASE_S + 1)) s'" \
           2>/dev/null) == t ]]; do
    ((SECONDS < deadline)) || fail "timeline $tl's quarantine did not end within 30s"
    sleep 0.2
done
step "timeline $tl's failover quarantine is over"

# --- crash of the primary ---
crashed=$p
mark crash "$tl"
"$CTL" kill "$crashed"
t=$(now_ms)
step "killed node $crashed (Patroni and PostgreSQL, SIGKILL)"
p=$("$CTL" wait-primary 60) || fail "no node was promoted after the crash"
((p != crashed)) || fail "node $p, the crashed one, is primary"
tl=$("$CTL" timeline "$p") || fail "no timeline from node $p"
mark promoted "$tl"
since=$(server_now "$p") || fail "node $p does not answer"
promoted_at=$since
step "promoted: node $p on timeline $tl, $(ms_since "$t") ms after the crash"
who=$(wait_leader "$since" 60 "after the crash")
step "leader: $who"

# --- the crashed node returns ---
"$CTL" start "$crashed"
t=$(now_ms)
"$CTL" wait-healthy 90 >/dev/null || fail "node $crashed did not rejoin as synchronous standby"
mark rejoined "$("$CTL" timeline "$crashed")"
step "node $crashed rejoined as synchronous standby after $(ms_since "$t") ms"
check_candidates "after the crashed node's return"

# --- stop: followers first, so nobody takes over from the stopping leader ---
leader=${who%% *}
order=()
for i in 1 2 3; do [[ c$i != "$leader" ]] && order+=("$i"); done
order+=("${leader#c}")
for i in "${order[@]}"; do
    kill -TERM "${pids[i - 1]}"
    deadline=$((SECONDS + 15))
    while kill -0 "${pids[i - 1]}" 2>/dev/null; do
        ((SECONDS < deadline)) || fail "candidate c$i did not stop within 15s of SIGTERM"
        sleep 0.1
    done
    rc=0
    wait "${pids[i - 1]}" || rc=$?
    ((rc == 0)) || fail "candidate c$i exited with status $rc after SIGTERM"
done
pids=()
mark stopped -
step "candidates stopped"
# When the quarantine began: the first acquisition attempt on the new timeline.
p=$("$CTL" primary) || fail "no primary at the end"
quarantine_ms=$("$CTL" psql "$p" -At -c "SELECT round(extract(epoch FROM first_seen - '$promoted_at') * 1000)
                                         FROM locks_epoch WHERE timeline = $tl") || quarantine_ms=

# --- the checks ---
python3 - "$LOG" "$(ms_since "$test_start")" "${quarantine_ms:-}" <<'EOF' || fail "see above"
import sys

path, total, quarantine = sys.argv[1], int(sys.argv[2]), sys.argv[3]
terms, marks, errors = {}, {}, []
for n, line in enumerate(open(path), 1):
    kind, who, value, ns = line.split()
    ns = int(ns)
    if kind == "mark":
        marks[who] = (value, ns)
    elif kind == "start":
        if value in terms:
            errors.append("line %d: token %s started twice" % (n, value))
        terms[value] = {"who": who, "token": int(value), "start": ns, "end": None}
    elif kind == "end":
        t = terms.get(value)
        if t is None or t["who"] != who or t["end"] is not None:
            errors.append("line %d: end without its start: %s" % (n, line.strip()))
        else:
            t["end"] = ns

INF = float("inf")
order = sorted(terms.values(), key=lambda t: t["start"])
tl = lambda t: t["token"] >> 40
ms = lambda a, b: (b - a) / 1e6
for t in order:
    if t["end"] is None:
        print("%s: term %d of %s is still open at the check" % ("patroni_test", t["token"], t["who"]))

# (a) no two terms' commands at the same time (an open term runs until the end)
latest = None
for t in order:
    if latest is not None and (latest["end"] or INF) >= t["start"]:
        errors.append("(a) overlap: %s's term %d (start %d, end %s) and %s's term %d (start %d)"
                      % (latest["who"], latest["token"], latest["start"], latest["end"],
                         t["who"], t["token"], t["start"]))
    if latest is None or (t["end"] or INF) > (latest["end"] or INF):
        latest = t

# (b) tokens strictly increase in start order
for a, b in zip(order, order[1:]):
    if b["token"] <= a["token"]:
        errors.append("(b) token %d (%s) started after token %d (%s)"
                      % (b["token"], b["who"], a["token"], a["who"]))

# (c), (d): around the switchover and the crash
def started(after=None, before=None):
    return [t for t in order
            if (after is None or t["start"] > marks[after][1])
            and (before is None or t["start"] < marks[before][1])]
for m in ("begin", "switchover-begin", "switchover-done", "crash", "promoted", "rejoined", "stopped"):
    if m not in marks:
        errors.append("mark %s missing from the log" % m)
if not errors:
    tl0, tl_sw, tl_crash = (int(marks[m][0]) for m in ("begin", "switchover-done", "promoted"))
    if not tl0 < tl_sw < tl_crash:
        errors.append("cluster timelines did not grow: %d, after the switchover %d, after the crash %d"
                      % (tl0, tl_sw, tl_crash))
    before_sw = started(before="switchover-begin")
    after_sw = started(after="switchover-done", before="crash")
    before_crash = started(before="crash")
    after_crash = started(after="crash")
    if not before_sw:
        errors.append("no term started before the switchover")
    if after_sw:
        low = min(tl(t) for t in after_sw)
        if before_sw and low <= max(tl(t) for t in before_sw):
            errors.append("(c) a term after the switchover has timeline %d, not above the terms before it (%d)"
                          % (low, max(tl(t) for t in before_sw)))
        if low < tl_sw:
            errors.append("(c) a term after the switchover has timeline %d, below the cluster's %d" % (low, tl_sw))
        sw_note = "new term(s) after the switchover on timeline %d" % low
    else:
        survivor = [t for t in order if t["start"] < marks["switchover-begin"][1]
                    and (t["end"] or INF) > marks["switchover-done"][1]]
        sw_note = ("term %d of %s survived the switchover" % (survivor[0]["token"], survivor[0]["who"])
                   if survivor else "no term started after the switchover")
    if not after_crash:
        errors.append("(d) no term started after the crash")
    else:
        first = after_crash[0]
        if before_crash and tl(first) <= max(tl(t) for t in before_crash):
            errors.append("(c) the first term after the crash has timeline %d, not above %d"
                          % (tl(first), max(tl(t) for t in before_crash)))
        if tl(first) < tl_crash:
            errors.append("(c) the first term after the crash has timeline %d, below the promoted node's %d"
                          % (tl(first), tl_crash))

print("%-4s %-20s %-8s %-14s %s" % ("who", "token", "timeline", "start (ms)", "ran (ms)"))
t0 = marks.get("begin", ("", order[0]["start"] if order else 0))[1]
for t in order:
    print("%-4s %-20d %-8d %-14.0f %s" % (t["who"], t["token"], tl(t), ms(t0, t["start"]),
                                          "%.0f" % ms(t["start"], t["end"]) if t["end"] else "open"))
if not errors:
    crash = marks["crash"][1]
    first = after_crash[0]
    ended = [t["end"] for t in before_crash if t["end"] is not None]
    last_end = max(ended) if ended else crash
    print("switchover: %s (timeline %d -> %d)" % (sw_note, tl0, tl_sw))
    print("crash: promotion after %.0f ms (timeline %d); first term after the crash: %s, token %d (timeline %d)"
          % (ms(crash, marks["promoted"][1]), tl_crash, first["who"], first["token"], tl(first)))
    print("leaderless after the crash: %.0f ms from the last command's end, %.0f ms from the crash"
          % (ms(last_end, first["start"]), ms(crash, first["start"])))
    if quarantine:
        print("failover quarantine: timeline %d first seen by an acquisition %s ms after the promotion was"
              " observed; first term %.0f ms after the promotion was observed"
              % (tl_crash, quarantine, ms(marks["promoted"][1], first["start"])))
    print("terms: %d, test time %.1f s" % (len(order), total / 1000))
for e in errors:
    print("patroni_test: VIOLATION " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
echo "$prog: PASS" >&2
