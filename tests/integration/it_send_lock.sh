#!/usr/bin/env bash
# it_send_lock: one `gateway send` per database (DB.lock, gateway/pidlock.h).
#   1. A daemon sends to a partner that never answers, so its message stays
#      'sending'. A second `gateway send --until-idle` on the same
#      configuration exits 1 at once, naming the database and the daemon's
#      pid, and changes nothing in the store: the same counts by state, the
#      same attempts and audit rows (no "recovered", no "interrupted"
#      attempt), the message still 'sending'.
#   2. The operator commands work while the daemon holds the lock: status,
#      list, show, audit verify, report timeliness, cancel.
#   3. The daemon keeps delivering: its hung attempt times out and is
#      recorded (the message was still its own), the retry is delivered;
#      the partner saw exactly those two requests.
#   4. The lock goes with the process: after SIGTERM, and after SIGKILL (a
#      crash), the next sender starts at once.
# shellcheck source=faultrecv_common.sh
. "$(dirname "$0")/faultrecv_common.sh"
msg_of() { "$GW" list --config "$cfg" --notice "$1" | awk -v s="$2" '$4 == s {print $1}'; }
has() { case "$1" in *"$2"*) return 0 ;; *) echo "  '$1' lacks '$2'" >&2; return 1 ;; esac; }
lacks() { case "$1" in *"$2"*) echo "  '$1' has '$2'" >&2; return 1 ;; *) return 0 ;; esac; }
snapshot() { # what a second start must not change
  q "SELECT 'state', state, count(*) FROM messages GROUP BY state ORDER BY state;
     SELECT 'attempts', count(*) FROM attempts;
     SELECT 'audit', count(*), max(seq) FROM audit;
     SELECT 'sending', group_concat(message_id) FROM messages WHERE state = 'sending'"
}
quiet() { "$@" >/dev/null; }
wait_for() { # wait_for SECONDS command...
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

faultrecv_start hang
LAB_RETRY_BASE=1 LAB_RETRY_CAP=2 lab_gateway_config # one endpoint: housing, the fault receiver
# Long enough for the checks below while the transfer hangs, short enough
# for the daemon to give up on it afterwards.
export GW_TEST_TRANSFER_TIMEOUT_MS=8000

# --- 1. a second sender while the daemon's message is in 'sending' ----------------
lab_drop "$SRC/spool/demo/01-release-full-consent.xml"
"$GW" send --config "$cfg" 2>>"$LAB/gateway/daemon.log" &
daemon=$!
LAB_PIDS+=("$daemon")
hanging() { grep -q ' hang 0$' "$fr/requests.log" 2>/dev/null; }
check "the daemon's transfer hangs at the partner" wait_for 20 hanging
msg=$(msg_of KDI-2027-004101 housing)
check "its message is 'sending'" eq "$(q "SELECT state FROM messages WHERE message_id='$msg'")" sending
check "the lock file names the daemon" eq "$(cat "$db.lock")" "$daemon"
check "the lock file is mode 0600" eq "$(stat -c %a "$db.lock")" 600
before=$(snapshot)
t0=$(date +%s%3N)
rc=0
timeout 60 "$GW" send --config "$cfg" --until-idle --max-seconds 30 >"$LAB/second.out" 2>&1 || rc=$?
elapsed=$(($(date +%s%3N) - t0))
check "the second sender exits 1" eq "$rc" 1
check "... at once (${elapsed} ms)" test "$elapsed" -lt 5000
check "... naming the database" has "$(cat "$LAB/second.out")" "another gateway send is running on the database $db"
check "... and the daemon's pid" has "$(cat "$LAB/second.out")" "held by process $daemon"
check "the store is unchanged by the second start" eq "$(snapshot)" "$before"
check "the message is still 'sending'" eq "$(q "SELECT state FROM messages WHERE message_id='$msg'")" sending
check "no 'recovered' row in the audit trail" eq "$(q "SELECT count(*) FROM audit WHERE event='recovered'")" 0
check "the daemon still runs" kill -0 "$daemon"
# The same database named through a symbolic link: the same lock.
ln -s "$db" "$LAB/alias.db"
sed "s#^db = .*#db = $LAB/alias.db#" "$cfg" > "$LAB/alias.conf"
rc=0
timeout 60 "$GW" send --config "$LAB/alias.conf" --until-idle --max-seconds 30 >"$LAB/alias.out" 2>&1 || rc=$?
check "a sender naming the database through a symlink exits 1" eq "$rc" 1
check "... and changes nothing" eq "$(snapshot)" "$before"

# --- 2. the operator commands do not take the lock --------------------------------
check "status while the daemon runs" quiet "$GW" status --config "$cfg"
check "list while the daemon runs" bash -c "'$GW' list --config '$cfg' | grep -q '$msg'"
check "show while the daemon runs" quiet "$GW" show --config "$cfg" "$msg"
check "audit verify while the daemon runs" quiet "$GW" audit verify --config "$cfg"
check "report while the daemon runs" quiet "$GW" report timeliness --config "$cfg"
held=$(msg_of KDI-2027-004101 nav)
check "cancel while the daemon runs" quiet "$GW" cancel --config "$cfg" "$held"
check "... cancelled" eq "$(q "SELECT state FROM messages WHERE message_id='$held'")" cancelled

# --- 3. the daemon keeps delivering --------------------------------------------------
mode accept
delivered() { [ "$(q "SELECT state FROM messages WHERE message_id='$msg'")" = delivered ]; }
check "the daemon delivers its message" wait_for 40 delivered
errors=$(q "SELECT group_concat(coalesce(error,''), ' | ') FROM attempts WHERE message_id='$msg'")
check "two attempts: the timed-out one, then the delivery" \
  eq "$(q "SELECT count(*) FROM attempts WHERE message_id='$msg'")" 2
check "no attempt recorded as interrupted" lacks "$errors" "interrupted"
check "every outcome was recorded (none refused as not sending)" \
  bash -c "! grep -q 'not sending' '$LAB/gateway/daemon.log'"
check "the partner saw exactly two requests for it" eq "$(grep -c "^$msg " "$fr/requests.log")" 2
check "the audit trail is intact" quiet "$GW" audit verify --config "$cfg"

# --- 4. the lock goes with the process -----------------------------------------------
kill -TERM "$daemon"
rc=0
wait "$daemon" || rc=$?
check "SIGTERM stops the daemon with exit 0" eq "$rc" 0
check "after it, a sender starts and runs until idle" lab_send
"$GW" send --config "$cfg" 2>>"$LAB/gateway/daemon.log" &
crashed=$!
LAB_PIDS+=("$crashed")
locked_by_it() { [ "$(cat "$db.lock" 2>/dev/null)" = "$crashed" ]; }
check "a new daemon takes the lock" wait_for 20 locked_by_it
kill -KILL "$crashed"
wait "$crashed" 2>/dev/null || true
check "after a crash (SIGKILL), a sender starts at once" lab_send
finish
