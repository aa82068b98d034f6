#!/usr/bin/env bash
# run.sh BUILD_DIR [NOTICES] [KILLS]: `make crash-test` (CI: NOTICES=300 KILLS=10).
#
# Delivers NOTICES notices (full consent to housing, nav and health: three
# messages each) from the gateway daemon to three receivers on loopback
# (housing with 1 worker, nav and health with 2) while killing the sender and
# the receivers with SIGKILL at random moments, at least KILLS times in all,
# and restarting them (receivers on the same fixed port). Notices are dropped
# into the spool in chunks between kills, so kills land during intake, during
# transfers and during the receivers' writes. Then the kills stop, the backlog
# drains, the daemon is stopped, `gateway send --until-idle` runs until
# nothing is queued, and the suite checks:
#   - each receiver's inbox/new holds exactly one item per notice: lost = notices
#     with no item, doubled = items beyond one per notice (and no MessageId in
#     two partners' inboxes);
#   - every message is delivered (gateway status: delivered = 3 x NOTICES;
#     nothing queued, sending, failed or held) and has a verified accepted or
#     duplicate receipt in the store (read-only sqlite3 query);
#   - the MessageIds in each inbox are exactly the delivered ones for that
#     partner;
#   - the spool's incoming/new is empty and nothing was rejected.
# Prints "lost: 0, doubled: 0, ..." and exits 0 only when every check holds.
# Work files and logs: BUILD_DIR/crash/ (kept for inspection).
set -euo pipefail

build=${1:-build}
NOTICES=${2:-2000}
KILLS=${3:-50}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
case $build in /*) B=$build ;; *) B=$SRC/$build ;; esac
GW=$B/bin/gateway
PKI=$B/pki
LAB=$B/crash
DRAIN_LIMIT=${CRASH_DRAIN_SECONDS:-900}
T_START=$(date +%s)
PARTNERS=(housing nav health)

[ -x "$GW" ] || { echo "crash: $GW not found; build first (make build)" >&2; exit 1; }
command -v sqlite3 >/dev/null || { echo "crash: the sqlite3 command is required" >&2; exit 1; }
say() { printf '[crash %4ds] %s\n' $(($(date +%s) - T_START)) "$*"; }

rm -rf "$LAB"
"$SRC/certs/mkpki.sh" "$PKI"
# shellcheck source=../../scripts/lab.sh
. "$SRC/scripts/lab.sh"
# shellcheck source=../bench/notices.sh
. "$SRC/tests/bench/notices.sh"
lab_init

SENDER_PID=
cleanup() {
  local p
  [ -n "$SENDER_PID" ] && kill -9 "$SENDER_PID" 2>/dev/null || true
  for p in "${PARTNERS[@]}"; do
    [ -f "$LAB/$p/pid" ] && kill_tree "$(cat "$LAB/$p/pid")" TERM
  done
  lab_stop
}
trap cleanup EXIT

children() { cat /proc/"$1"/task/*/children 2>/dev/null || true; }
kill_tree() { # kill_tree PID SIGNAL: the receiver parent and its workers at once
  local pid=$1 sig=$2 kids
  kids=$(children "$pid")
  # shellcheck disable=SC2086
  kill -"$sig" "$pid" $kids 2>/dev/null || true
}
gone() { # gone PID...: wait (bounded) until none of them exists
  local i p alive
  for i in $(seq 1 200); do
    alive=0
    for p in "$@"; do [ -e /proc/"$p" ] && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.02
  done
  return 1
}

# ---- receivers: first start on any free port, then that port is fixed in
# their configuration, so every restart comes back on the same port.
declare -A WORKERS=([housing]=1 [nav]=2 [health]=2)
for p in "${PARTNERS[@]}"; do
  org_var="ORGNR_${p^^}"
  LAB_WORKERS=${WORKERS[$p]} lab_receiver "$p" "${!org_var}"
  port_var="RECEIVER_PORT_${p^^}"
  sed -i "s#^listen = 127.0.0.1:0#listen = 127.0.0.1:${!port_var}#" "$LAB/$p/receiver.conf"
done
lab_gateway_config
say "receivers up: housing :$RECEIVER_PORT_HOUSING (1 worker), nav :$RECEIVER_PORT_NAV, health :$RECEIVER_PORT_HEALTH (2 workers)"

start_receiver() { # start_receiver NAME: on its fixed port; retried while the port is busy
  local p=$1 dir=$LAB/$1 try i pid
  for try in 1 2 3 4 5; do
    rm -f "$dir/port"
    "$GW" receive --config "$dir/receiver.conf" --port-file "$dir/port" 2>>"$dir/receiver.log" &
    pid=$!
    for i in $(seq 1 100); do
      [ -s "$dir/port" ] && { echo "$pid" > "$dir/pid"; return 0; }
      [ -e /proc/"$pid" ] || break
      sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    sleep 0.2
  done
  echo "crash: receiver $p did not come back on its port; see $dir/receiver.log" >&2
  return 1
}

start_sender() {
  "$GW" send --config "$LAB/gateway/gateway.conf" 2>>"$LAB/gateway/gateway.log" &
  SENDER_PID=$!
}

# ---- notices
gen_notices "$LAB/gen" "$NOTICES" 1 full
SPOOL=$LAB/gateway/spool
mkdir -p "$SPOOL/incoming/tmp" "$SPOOL/incoming/new"
mapfile -t PENDING < <(cd "$LAB/gen" && ls)
NEXT=0
CHUNK=$(((NOTICES + KILLS - 1) / KILLS))
drop_chunk() { # the next CHUNK notices, each renamed into incoming/new
  local i f
  for ((i = 0; i < CHUNK && NEXT < NOTICES; i++)); do
    f=${PENDING[$NEXT]}
    mv "$LAB/gen/$f" "$SPOOL/incoming/tmp/$f"
    mv "$SPOOL/incoming/tmp/$f" "$SPOOL/incoming/new/$f"
    NEXT=$((NEXT + 1))
  done
}

rand_ms() { echo $((RANDOM % ($2 - $1 + 1) + $1)); } # rand_ms MIN MAX
sleep_ms() { sleep "$(printf '0.%03d' "$1")"; }       # below 1000

# ---- the kills
start_sender
say "sender up; $NOTICES notices (${CHUNK} per round), at least $KILLS kills"
KILLED_SENDER=0 KILLED_RECEIVER=0 KILLED_WORKER=0 ROUND=0
while [ $((KILLED_SENDER + KILLED_RECEIVER + KILLED_WORKER)) -lt "$KILLS" ] || [ "$NEXT" -lt "$NOTICES" ]; do
  drop_chunk
  sleep_ms "$(rand_ms 50 900)"
  # The first four rounds hit each process once; then at random, the sender
  # twice as often as any one receiver.
  if [ "$ROUND" -lt 4 ]; then target=$ROUND; else target=$((RANDOM % 5)); fi
  [ "$target" -ge 4 ] && target=0
  ROUND=$((ROUND + 1))
  if [ "$target" = 0 ]; then
    kill -9 "$SENDER_PID" 2>/dev/null || true
    wait "$SENDER_PID" 2>/dev/null || true
    KILLED_SENDER=$((KILLED_SENDER + 1))
    echo "$(date -u +%H:%M:%S.%N) kill -9 sender $SENDER_PID" >> "$LAB/kills.log"
    sleep_ms "$(rand_ms 0 300)"
    start_sender
  else
    p=${PARTNERS[$((target - 1))]}
    pid=$(cat "$LAB/$p/pid")
    kids=$(children "$pid")
    if [ $((RANDOM % 4)) = 0 ] && [ -n "$kids" ]; then
      # One worker only: the parent restarts it.
      w=$(echo "$kids" | tr ' ' '\n' | grep . | head -1)
      kill -9 "$w" 2>/dev/null || true
      KILLED_WORKER=$((KILLED_WORKER + 1))
      echo "$(date -u +%H:%M:%S.%N) kill -9 $p worker $w" >> "$LAB/kills.log"
    else
      kill_tree "$pid" 9
      wait "$pid" 2>/dev/null || true
      # shellcheck disable=SC2086
      gone $pid $kids || { echo "crash: $p processes survived SIGKILL" >&2; exit 1; }
      KILLED_RECEIVER=$((KILLED_RECEIVER + 1))
      echo "$(date -u +%H:%M:%S.%N) kill -9 $p $pid $kids" >> "$LAB/kills.log"
      sleep_ms "$(rand_ms 0 900)"
      start_receiver "$p"
    fi
  fi
  sleep_ms "$(rand_ms 100 900)"
done
KILLED=$((KILLED_SENDER + KILLED_RECEIVER + KILLED_WORKER))
say "kills done: $KILLED (sender $KILLED_SENDER, receiver $KILLED_RECEIVER, single worker $KILLED_WORKER); draining"

# ---- drain: let the daemon finish, then stop it cleanly
status_of() { "$GW" status --config "$LAB/gateway/gateway.conf" | awk -v s="$1" 'NF == 2 && $1 == s { print $2 }'; }
deadline=$(($(date +%s) + DRAIN_LIMIT))
while :; do
  left=$(( $(status_of queued) + $(status_of sending) ))
  if [ "$left" = 0 ] && [ -z "$(ls -A "$SPOOL/incoming/new")" ]; then break; fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    say "drain limit reached with $left messages left"
    break
  fi
  kill -0 "$SENDER_PID" 2>/dev/null || start_sender
  sleep 1
done
kill -TERM "$SENDER_PID" 2>/dev/null || true
wait "$SENDER_PID" 2>/dev/null || true
SENDER_PID=
# A final clean run, repeated while retries are still scheduled.
for i in $(seq 1 30); do
  LAB_MAX_SECONDS=120 lab_send || true
  left=$(( $(status_of queued) + $(status_of sending) ))
  [ "$left" = 0 ] && break
  sleep 1
done
say "final clean run done"

# ---- checks
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
LOST=0 DOUBLED=0
expected_total=$((3 * NOTICES))
DB=$LAB/gateway/gateway.db
q() { sqlite3 -readonly -batch -noheader "$DB" "$1"; }
for p in "${PARTNERS[@]}"; do
  inbox=$LAB/$p/inbox/new
  items=$(find "$inbox" -name '*.xml' | wc -l)
  notices=$(find "$inbox" -name '*.xml' -print0 | xargs -0 -r grep -ho 'id="KDI-2027-[0-9]*"' |
    sort -u | wc -l)
  lost=$((NOTICES - notices))
  doubled=$((items - notices))
  LOST=$((LOST + lost))
  DOUBLED=$((DOUBLED + doubled))
  [ "$lost" = 0 ] || fail "$p: $lost notices have no inbox item"
  [ "$doubled" = 0 ] || fail "$p: $doubled inbox items beyond one per notice"
  # The inbox's MessageIds are exactly the gateway's delivered ones for p.
  find "$inbox" -name '*.xml' -printf '%f\n' | sed 's/\.xml$//' | sort > "$LAB/$p.inbox.ids"
  q "SELECT message_id FROM messages WHERE service = '$p' AND state = 'delivered' ORDER BY 1;" |
    sort > "$LAB/$p.delivered.ids"
  if ! cmp -s "$LAB/$p.inbox.ids" "$LAB/$p.delivered.ids"; then
    fail "$p: inbox MessageIds differ from the gateway's delivered messages (see $LAB/$p.*.ids)"
  fi
  printf '  %-8s inbox items %5d, notices %5d, duplicates answered %d\n' "$p" "$items" "$notices" \
    "$(grep -c 'event=duplicate' "$LAB/$p/receiver.log" || true)"
done
cross=$(cat "$LAB"/*.inbox.ids | sort | uniq -d | wc -l)
[ "$cross" = 0 ] || { fail "$cross MessageIds are in more than one inbox"; DOUBLED=$((DOUBLED + cross)); }

delivered=$(status_of delivered)
[ "$delivered" = "$expected_total" ] || fail "gateway: $delivered delivered, expected $expected_total"
for s in queued sending failed held superseded cancelled; do
  n=$(status_of "$s")
  [ "$n" = 0 ] || fail "gateway: $n messages $s"
done
total=$(q "SELECT count(*) FROM messages;")
[ "$total" = "$expected_total" ] || fail "gateway: $total messages in the store, expected $expected_total"
unverified=$(q "SELECT count(*) FROM messages m WHERE m.state = 'delivered' AND NOT EXISTS
  (SELECT 1 FROM receipts r WHERE r.message_id = m.message_id AND r.verified = 1
   AND r.status IN ('accepted', 'duplicate'));")
[ "$unverified" = 0 ] || fail "gateway: $unverified delivered messages without a verified receipt"
notices_db=$(q "SELECT count(*) FROM notices;")
[ "$notices_db" = "$NOTICES" ] || fail "gateway: $notices_db notices in the store, expected $NOTICES"
left_new=$(find "$SPOOL/incoming/new" -type f | wc -l)
[ "$left_new" = 0 ] || fail "spool: $left_new files left in incoming/new"
rejected=$(find "$SPOOL/rejected" -type f 2>/dev/null | wc -l)
[ "$rejected" = 0 ] || fail "spool: $rejected files in rejected/"
# Evidence spot check: a few inbox items re-verified by the receiver's own command.
for p in "${PARTNERS[@]}"; do
  for id in $(head -2 "$LAB/$p.inbox.ids"); do
    "$GW" inbox verify "$id" --config "$LAB/$p/receiver.conf" >/dev/null 2>&1 ||
      fail "$p: gateway inbox verify $id failed"
  done
done

resent=$(grep -c 'event=recovered' "$LAB/gateway/gateway.log" || true)
retries=$(grep -c 'event=retry' "$LAB/gateway/gateway.log" || true)
echo
echo "notices $NOTICES, messages $expected_total, kills $KILLED (sender $KILLED_SENDER," \
  "receiver $KILLED_RECEIVER, single worker $KILLED_WORKER), sender restarts that recovered" \
  "sending messages: $resent, retries: $retries, $(($(date +%s) - T_START)) s"
echo "lost: $LOST, doubled: $DOUBLED, delivered: $delivered/$expected_total," \
  "without verified receipt: $unverified, left in incoming/new: $left_new"
if [ "$FAILS" -ne 0 ]; then
  echo "crash: $FAILS check(s) failed; logs under $LAB" >&2
  exit 1
fi
echo "crash: ok"
