#!/usr/bin/env bash
# it_receiver_stop: SIGTERM while a request waits for its group commit. The
# worker must not drop it: the commit finishes, the sender gets its 200 with
# the signed receipt, the item is in the inbox once, and the receiver exits 0.
#
# The commit is held back by a second SQLite connection that owns the
# inbox database's write lock until the test lets go (the worker's busy
# handler waits for it), so "waiting for the commit" is a state the test
# controls, not a race it hopes to win.
#
# Environment (set by CTest): GW_GATEWAY, GW_PKI_DIR, GW_SOURCE_DIR.
# shellcheck source=receiver_common.sh
. "$(dirname "$0")/receiver_common.sh"

count_items() { find "$INBOX/new" -maxdepth 1 -type f -name '*.xml' | wc -l; }

write_config "$work/stop.ini" stop workers=1 read_timeout=10
start_receiver stop "$work/stop.ini"
wait_workers 1
ok "receiver listening on port $PORT"

# Someone else holds the write lock.
timeout 60 python3 - "$DB" "$work/lock.ready" "$work/lock.go" <<'PY' &
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
db.execute("COMMIT")
PY
holder=$!
extra_pids+=("$holder")
for _ in $(seq 1 100); do [ -e "$work/lock.ready" ] && break; sleep 0.05; done
[ -e "$work/lock.ready" ] || fail "the lock holder did not start"

id=$(new_id)
make_message "$work/m.xml" "$id" "$(now_utc)" "$ME" "Sent as the receiver stops."
curl -sS --max-time 30 --cacert "$PKI/ca.pem" --cert "$PKI/gateway.pem" --key "$PKI/gateway.key" \
  -H 'Content-Type: application/xml' --data-binary @"$work/m.xml" \
  -o "$work/resp.xml" -w '%{http_code}' "$URL" > "$work/code" 2> "$work/curl.err" &
client=$!
extra_pids+=("$client")
sleep 0.7 # read, verified, signed: waiting for the commit
kill -0 "$client" 2>/dev/null || fail "the request was answered although the lock is held: $(cat "$work/code")"
kill -TERM "$RPID"
sleep 0.7
kill -0 "$client" 2>/dev/null || fail "the request was answered before its commit: $(cat "$work/code")"
kill -0 "$RPID" 2>/dev/null || fail "the receiver exited with a request waiting for its commit"
ok "SIGTERM while a request waits for its commit: the receiver waits too"

touch "$work/lock.go"
wait "$client" || fail "curl failed: $(cat "$work/curl.err")"
code=$(cat "$work/code")
expect_receipt "answer after SIGTERM" 200 accepted "" "$id" "$work/m.xml"
receipt_verifies "answer after SIGTERM"
status=0
for _ in $(seq 1 100); do kill -0 "$RPID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$RPID" 2>/dev/null && fail "receiver did not stop within 10 s of its last answer"
wait "$RPID" || status=$?
[ "$status" -eq 0 ] || fail "receiver exited $status after SIGTERM"
[ "$(count_items)" -eq 1 ] || fail "expected one inbox item, found $(count_items)"
ok "the commit finished, the 200 with a verified receipt went out, one item, exit 0"

echo "$passed passed"
