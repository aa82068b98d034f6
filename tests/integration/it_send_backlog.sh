#!/usr/bin/env bash
# it_send_backlog: a partner that is down gets one probe at a time, and its
# backlog goes out at the concurrency limit, over reused connections, once
# it answers (issue 4, items 2 and 3). The daemon runs on a test clock
# (GW_TEST_CLOCK_FILE); the test moves the clock and wakes it with SIGUSR1.
#   1. 20 messages for the fault receiver while it is down: a first burst of
#      at most probe_after + max_connections attempts, never all 20; then
#      every message is parked (none due at the frozen clock).
#   2. Three retry times later: exactly one more attempt per retry time.
#   3. The receiver comes back: at the next retry time (only the probe due),
#      its answer releases the parked backlog: all 20 are delivered, each
#      sent once, with at most max_connections connections open at once
#      and at most max_connections TLS handshakes for the 20 requests
#      (keep-alive).
# shellcheck source=faultrecv_common.sh
. "$(dirname "$0")/faultrecv_common.sh"
stat_of() { sed -n "s/^$1=//p" "$fr/stats"; }
le() { [ "$1" -le "$2" ] || { echo "  $1 > $2" >&2; return 1; }; }
PROBE_AFTER=3   # DELIVER_PROBE_AFTER
MAX_CONN=4      # the endpoint's max_connections (set below)

faultrecv_start down

LAB_RETRY_BASE=2 LAB_RETRY_CAP=60 lab_gateway_config
sed -i "/^url = /a max_connections = $MAX_CONN" "$cfg"
export GW_TEST_CLOCK_FILE="$LAB/clock"
NOW=$(date +%s%3N)
clock_set() { NOW=$1; echo "$NOW" > "$GW_TEST_CLOCK_FILE.tmp"; mv "$GW_TEST_CLOCK_FILE.tmp" "$GW_TEST_CLOCK_FILE"; }
clock_set "$NOW"

for i in $(seq -w 1 20); do
  sed "s/KDI-2027-004101/KDI-2027-9801$i/" "$SRC/spool/demo/01-release-full-consent.xml" \
    > "$LAB/n$i.xml"
done
lab_drop "$LAB"/n*.xml

attempts() { q "SELECT count(*) FROM attempts"; }
# settle: wait until nothing is sending and the attempt count holds still.
settle() {
  local last=-1 cur
  for _ in $(seq 1 60); do
    cur=$(attempts)
    if [ "$cur" = "$last" ] && [ "$(q "SELECT count(*) FROM messages WHERE state='sending'")" = 0 ]; then
      return 0
    fi
    last=$cur
    sleep 0.25
  done
}

"$GW" send --config "$cfg" 2>>"$LAB/gateway/daemon.log" &
daemon=$!
LAB_PIDS+=("$daemon")
for _ in $(seq 1 100); do grep -q 'event=started' "$LAB/gateway/daemon.log" 2>/dev/null && break; sleep 0.05; done
for _ in $(seq 1 100); do
  [ "$(q "SELECT count(*) FROM messages WHERE endpoint='housing'" 2>/dev/null || echo 0)" = 20 ] && break
  sleep 0.05
done
settle

# --- 1. the first burst, then parked ------------------------------------------
a0=$(attempts)
check "20 messages for the partner" eq "$(q "SELECT count(*) FROM messages WHERE endpoint='housing'")" 20
check "first burst: at most $((PROBE_AFTER + MAX_CONN)) attempts, not 20 (got $a0)" le "$a0" $((PROBE_AFTER + MAX_CONN))
check "all 20 still queued" eq "$(q "SELECT count(*) FROM messages WHERE endpoint='housing' AND state='queued'")" 20
check "none due at the frozen clock (parked or backing off)" \
  eq "$(q "SELECT count(*) FROM messages WHERE state='queued' AND next_attempt_ms <= $NOW")" 0
check "the daemon logged endpoint-down" grep -q 'event=endpoint-down endpoint=housing' "$LAB/gateway/daemon.log"

# --- 2. one probe per retry time ------------------------------------------------
prev=$a0
for k in 1 2 3; do
  clock_set $((NOW + 3600 * 1000)) # past every parked and backed-off time
  kill -USR1 "$daemon"
  for _ in $(seq 1 100); do [ "$(attempts)" -gt "$prev" ] && break; sleep 0.05; done
  settle
  cur=$(attempts)
  check "retry time $k: exactly one attempt (probe)" eq "$((cur - prev))" 1
  check "retry time $k: nothing left due" \
    eq "$(q "SELECT count(*) FROM messages WHERE state='queued' AND next_attempt_ms <= $NOW")" 0
  prev=$cur
done
check "the receiver saw no request while down" eq "$(stat_of requests)" 0

# --- 3. recovery releases the backlog --------------------------------------------
mode accept
# Only the earliest retry falls due: the rest wait parked, until it answers.
clock_set "$(q "SELECT min(next_attempt_ms) FROM messages WHERE state='queued'")"
due=$(q "SELECT count(*) FROM messages WHERE state='queued' AND next_attempt_ms <= $NOW")
check "at the next retry time only the probe is due, not the backlog (due: $due)" le "$due" 3
kill -USR1 "$daemon"
for _ in $(seq 1 200); do
  [ "$(q "SELECT count(*) FROM messages WHERE endpoint='housing' AND state='delivered'")" = 20 ] && break
  sleep 0.05
done
check "after recovery all 20 are delivered" \
  eq "$(q "SELECT count(*) FROM messages WHERE endpoint='housing' AND state='delivered'")" 20
check "the parked backlog was released" grep -q 'event=released endpoint=housing' "$LAB/gateway/daemon.log"
check "each message reached the receiver once" eq "$(cut -d' ' -f1 "$fr/requests.log" | sort -u | wc -l):$(stat_of requests)" "20:20"
check "at most $MAX_CONN connections open at once (got $(stat_of max_open))" le "$(stat_of max_open)" "$MAX_CONN"
check "keep-alive: 20 requests over at most $MAX_CONN TLS handshakes (got $(stat_of handshakes))" \
  le "$(stat_of handshakes)" "$MAX_CONN"

kill -TERM "$daemon"
rc=0
wait "$daemon" || rc=$?
check "SIGTERM: exit 0" eq "$rc" 0
finish
