#!/usr/bin/env bash
# it_send_faults: `gateway send` against the fault receiver (tests/faultrecv),
# one fault at a time, on a test clock (GW_TEST_CLOCK_FILE) so the retry
# schedule is checked without waiting for it. Each step drops a fresh notice
# whose only configured recipient is the fault receiver (endpoint housing),
# runs `gateway send --until-idle` once, and reads the store:
#   - temporary faults (500, 503 + Retry-After, 429, reset mid body, never
#     answers, down, wrong server organisation, untrusted server, 200 without
#     a receipt): queued, next attempt within [now + 1 s, now + ceiling]
#     (full jitter; base 30 s, doubling), the attempt's HTTP status and error;
#     Retry-After honoured;
#   - receipts that prove nothing (bad signature, another MessageId, wrong
#     digest, wrong signer, not XML): not delivered, each with its own reason,
#     the receipt kept unverified, retried;
#   - permanent answers (400 + signed rejection, 409, 403, 413): failed, and
#     never attempted again;
#   - signed bytes changed in the database: failed before the next attempt,
#     never sent again (and put off when the store refuses to fail it);
#   - down -> up: the retry delivers;
#   - SIGTERM while a transfer hangs: exit 0 within the 10 s grace period,
#     the attempt recorded as abandoned, the message queued, the next run
#     delivers it;
#   - past the retry horizon: every message still retrying is failed with
#     "retry horizon reached".
# shellcheck source=faultrecv_common.sh
. "$(dirname "$0")/faultrecv_common.sh"
msg_of() { "$GW" list --config "$cfg" --notice "$1" | awk -v s="$2" '$4 == s {print $1}'; }

# --- the fault receiver, serving housing's certificate --------------------
faultrecv_start accept --alt-cert "$PKI/nav.pem" --alt-key "$PKI/nav.key" \
  --untrusted-cert "$PKI/untrusted.pem" --untrusted-key "$PKI/untrusted.key"

# --- the gateway: one endpoint (housing) at the fault receiver -------------
LAB_RETRY_BASE=30 LAB_RETRY_CAP=3600 lab_gateway_config
export GW_TEST_CLOCK_FILE="$LAB/clock"
export GW_TEST_TRANSFER_TIMEOUT_MS=1500
NOW=$(date +%s%3N)
echo "$NOW" > "$GW_TEST_CLOCK_FILE"
clock_set() { NOW=$1; echo "$NOW" > "$GW_TEST_CLOCK_FILE.tmp"; mv "$GW_TEST_CLOCK_FILE.tmp" "$GW_TEST_CLOCK_FILE"; }

n=0
MSG=
# step MODE...: a fresh notice, the fault receiver in MODE, one send run.
step() {
  n=$((n + 1))
  local id
  id=$(printf 'KDI-2027-99%04d' "$n")
  mode "$@"
  sed "s/KDI-2027-004101/$id/" "$SRC/spool/demo/01-release-full-consent.xml" > "$LAB/$id.xml"
  lab_drop "$LAB/$id.xml"
  lab_send || echo "send exited $?" >&2
  MSG=$(msg_of "$id" housing)
}
state() { q "SELECT state FROM messages WHERE message_id='$1'"; }
attempts() { q "SELECT count(*) FROM attempts WHERE message_id='$1'"; }
last_status() { q "SELECT http_status FROM attempts WHERE message_id='$1' ORDER BY attempt_id DESC LIMIT 1"; }
last_error() { q "SELECT error FROM attempts WHERE message_id='$1' ORDER BY attempt_id DESC LIMIT 1"; }
next_in() { echo $(($(q "SELECT next_attempt_ms FROM messages WHERE message_id='$1'") - NOW)); }
has() { case "$1" in *"$2"*) return 0 ;; *) echo "  '$1' lacks '$2'" >&2; return 1 ;; esac; }
within() { [ "$1" -ge "$2" ] && [ "$1" -le "$3" ] || { echo "  $1 not in [$2, $3]" >&2; return 1; }; }

# retried WHAT STATUS ERROR [CEILING_MS]: the message of the last step waits
# for a retry within full jitter bounds after one attempt.
retried() {
  local what=$1 status=$2 error=$3 ceiling=${4:-30000}
  check "$what: queued for a retry" eq "$(state "$MSG")" queued
  check "$what: one attempt, HTTP $status" eq "$(attempts "$MSG"):$(last_status "$MSG")" "1:$status"
  check "$what: the attempt says '$error'" has "$(last_error "$MSG")" "$error"
  check "$what: next attempt in [1 s, $((ceiling / 1000)) s]" within "$(next_in "$MSG")" 1000 "$ceiling"
}
# failed_now WHAT STATUS REASON: the message of the last step is final.
PERMANENT=()
failed_now() {
  check "$1: failed, no retry" eq "$(state "$MSG")" failed
  check "$1: one attempt, HTTP $2" eq "$(attempts "$MSG"):$(last_status "$MSG")" "1:$2"
  check "$1: the reason says '$3'" has "$(q "SELECT reason FROM messages WHERE message_id='$MSG'")" "$3"
  PERMANENT+=("$MSG")
}

# --- 500: the schedule grows by doubling ceilings ----------------------------
step 500
retried "500" 500 "temporary: HTTP 500"
m500=$MSG
for k in 1 2; do
  clock_set "$(q "SELECT next_attempt_ms FROM messages WHERE message_id='$m500'")"
  lab_send
  ceiling=$((30000 << k))
  check "500, attempt $((k + 1)): queued, next within [1 s, $((ceiling / 1000)) s]" \
    within "$(next_in "$m500")" 1000 "$ceiling"
  check "500, attempt $((k + 1)) recorded" eq "$(attempts "$m500")" $((k + 1))
done

# --- temporary faults ---------------------------------------------------------
step 503 120
check "503 Retry-After 120: next attempt no sooner than 120 s" within "$(next_in "$MSG")" 120000 120000
check "503: the attempt says 'temporary: HTTP 503'" has "$(last_error "$MSG")" "temporary: HTTP 503"
step 429
retried "429" 429 "temporary: HTTP 429"
step reset
retried "reset mid body" 0 "connection:"
step hang
retried "never answers" 0 "timeout:"
step wrong-org
retried "wrong server organisation" 0 "tls: wrong server organisation: server certificate names organisation $ORGNR_NAV, expected $ORGNR_HOUSING"
step untrusted
retried "untrusted server certificate" 0 "tls:"
step no-receipt
retried "200 without a receipt" 200 "HTTP 200 without a receipt"
check "the server certificate faults reached no request" \
  eq "$(grep -c -e ' wrong-org ' -e ' untrusted ' "$fr/requests.log" || true)" 0

# --- receipts that prove nothing: each caught with its own reason -------------
receipt_fault() { # MODE CODE
  step "$1"
  retried "$1 receipt" 200 "receipt not verified: $2"
  check "$1: the receipt is kept, unverified, reason $2" \
    eq "$(q "SELECT verified || ':' || reason_code FROM receipts WHERE message_id='$MSG'")" "0:$2"
}
receipt_fault bad-signature bad-signature
receipt_fault other-message-id wrong-message-id
receipt_fault wrong-digest wrong-digest
receipt_fault wrong-signer sender-mismatch
receipt_fault garbage malformed

# --- permanent answers ----------------------------------------------------------
# A verified "stale" proves the partner has no copy (it answers duplicates
# before it looks at the age): the message is signed again with a fresh
# Created under the same MessageId and sent once more. The fault receiver
# says "stale" to that one too, so its clock must be wrong: failed.
step reject stale
check "400 stale: signed again and sent once more, then failed" eq "$(state "$MSG"):$(attempts "$MSG")" "failed:2"
check "400 stale: the reason says why it was not signed a third time" \
  has "$(q "SELECT reason FROM messages WHERE message_id='$MSG'")" "stale again after it was signed anew"
check "400 stale: both signed rejections are kept, verified" \
  eq "$(q "SELECT group_concat(verified || ':' || status || ':' || reason_code, ' ') FROM receipts WHERE message_id='$MSG'")" "1:rejected:stale 1:rejected:stale"
# (On this test clock the new Created equals the old one; in service days have passed.)
check "400 stale: the receiver saw the same MessageId twice" eq "$(grep -c "^$MSG " "$fr/requests.log")" 2
check "400 stale: it was signed again (event=released from the held reason)" \
  has "$(grep "event=released" "$LAB/gateway/gateway.log" | grep "msg=$MSG")" "stale at the partner"
PERMANENT_TWICE=("$MSG")
step reject bad-signature
failed_now "400 + signed rejection" 400 "rejected by receiver: bad-signature"
check "400: the signed rejection is kept, verified" \
  eq "$(q "SELECT verified || ':' || status FROM receipts WHERE message_id='$MSG'")" "1:rejected"
step conflict
failed_now "409" 409 "rejected by receiver: message-id-conflict"
step 403
failed_now "403" 403 "refused: TLS client not allowed (HTTP 403)"
step 413
failed_now "413" 413 "refused: message too large for receiver (HTTP 413)"

# --- stored bytes that no longer match their digest -------------------------------
# A message waiting for its retry whose signed bytes change in the database:
# failed before another attempt (queued -> failed, with its audit row), never
# sent again, and the run ends at once instead of offering it every second.
# corrupt MSG: its bytes changed, due now.
corrupt() {
  q "UPDATE message_bytes SET bytes = bytes || X'0a' WHERE message_id='$1';
     UPDATE messages SET next_attempt_ms = $NOW WHERE message_id='$1'"
}
step 500
mbad=$MSG
corrupt "$mbad"
sent_before=$(grep -c "^$mbad " "$fr/requests.log" || true)
t0=$(date +%s%3N)
LAB_MAX_SECONDS=20 lab_send
elapsed=$(($(date +%s%3N) - t0))
check "corrupt bytes: failed" eq "$(state "$mbad")" failed
check "corrupt bytes: the reason says why" \
  eq "$(q "SELECT reason FROM messages WHERE message_id='$mbad'")" "stored bytes do not match their digest"
check "corrupt bytes: not sent again" eq "$(grep -c "^$mbad " "$fr/requests.log" || true)" "$sent_before"
check "corrupt bytes: no attempt counted" eq "$(attempts "$mbad")" 1
check "corrupt bytes: the audit row queued -> failed" \
  eq "$(q "SELECT count(*) FROM audit WHERE event='state' AND subject='$mbad' AND from_state='queued' AND to_state='failed'")" 1
check "corrupt bytes: logged once" eq "$(grep 'event=failed' "$LAB/gateway/gateway.log" | grep -c "msg=$mbad")" 1
check "corrupt bytes: --until-idle ended at once (${elapsed} ms)" within "$elapsed" 0 10000
PERMANENT+=("$mbad")
# The store refuses to fail it (a trigger stands in for a store that says
# no): it is put off instead of being offered again at every pass.
step 500
mstuck=$MSG
corrupt "$mstuck"
q "CREATE TRIGGER test_refuse_failed BEFORE UPDATE OF state ON messages
   WHEN NEW.state = 'failed' AND OLD.message_id = '$mstuck'
   BEGIN SELECT RAISE(ABORT, 'test: refused'); END"
t0=$(date +%s%3N)
LAB_MAX_SECONDS=20 lab_send
elapsed=$(($(date +%s%3N) - t0))
check "corrupt, failing refused: still queued" eq "$(state "$mstuck")" queued
check "corrupt, failing refused: put off 15 minutes" within "$(next_in "$mstuck")" 900000 900000
check "corrupt, failing refused: the reason says so" \
  has "$(q "SELECT reason FROM messages WHERE message_id='$mstuck'")" "stored bytes do not match their digest; it could not be failed"
check "corrupt, failing refused: the refusal logged once" \
  eq "$(grep 'event=store-error' "$LAB/gateway/gateway.log" | grep -c "msg=$mstuck")" 1
check "corrupt, failing refused: --until-idle ended at once (${elapsed} ms)" within "$elapsed" 0 10000
q "DROP TRIGGER test_refuse_failed; UPDATE messages SET next_attempt_ms = $NOW WHERE message_id='$mstuck'"
lab_send
check "corrupt, looked at again: failed" eq "$(state "$mstuck")" failed
check "corrupt, looked at again: never sent again" eq "$(attempts "$mstuck")" 1
PERMANENT+=("$mstuck")

# --- down, then up ---------------------------------------------------------------
step down
retried "down" 0 "connection:"
mdown=$MSG
mode accept
clock_set "$(q "SELECT next_attempt_ms FROM messages WHERE message_id='$mdown'")"
lab_send
check "down -> up: the retry delivers" eq "$(state "$mdown")" delivered
check "down -> up: two attempts" eq "$(attempts "$mdown")" 2
check "down -> up: the receipt verified, accepted" \
  eq "$(q "SELECT verified || ':' || status FROM receipts WHERE message_id='$mdown' ORDER BY receipt_id DESC LIMIT 1")" "1:accepted"

# --- SIGTERM while a transfer hangs ----------------------------------------------
unset GW_TEST_TRANSFER_TIMEOUT_MS # the transfer must still hang when SIGTERM comes
mode hang
n=$((n + 1))
id=$(printf 'KDI-2027-99%04d' "$n")
sed "s/KDI-2027-004101/$id/" "$SRC/spool/demo/01-release-full-consent.xml" > "$LAB/$id.xml"
"$GW" send --config "$cfg" 2>>"$LAB/gateway/daemon.log" &
daemon=$!
LAB_PIDS+=("$daemon")
for _ in $(seq 1 100); do grep -q 'event=started' "$LAB/gateway/daemon.log" 2>/dev/null && break; sleep 0.05; done
hung_before=$(grep -c ' hang 0$' "$fr/requests.log" || true)
lab_drop "$LAB/$id.xml"
for _ in $(seq 1 100); do
  [ "$(grep -c ' hang 0$' "$fr/requests.log" || true)" -gt "$hung_before" ] && break
  sleep 0.05
done
mhang=$(msg_of "$id" housing)
check "the transfer hangs in 'sending'" eq "$(state "$mhang")" sending
t0=$(date +%s%3N)
kill -TERM "$daemon"
rc=0
wait "$daemon" || rc=$?
elapsed=$(($(date +%s%3N) - t0))
check "SIGTERM during a hung transfer: exit 0" eq "$rc" 0
check "SIGTERM: exit within the grace period (${elapsed} ms)" within "$elapsed" 0 12000
check "SIGTERM: the message is queued again" eq "$(state "$mhang")" queued
check "SIGTERM: the attempt is recorded as abandoned" has "$(last_error "$mhang")" "abandoned"
mode accept
lab_send
check "after SIGTERM the next run delivers" eq "$(state "$mhang")" delivered
check "the receiver saw it twice (resend after abandon)" \
  eq "$(grep -c "^$mhang " "$fr/requests.log")" 2

# --- the retry horizon -----------------------------------------------------------
mode 500
still=$(q "SELECT count(*) FROM messages WHERE endpoint='housing' AND state='queued'")
check "messages still retrying before the horizon ($still)" within "$still" 1 40
clock_set $(($(q "SELECT max(deadline_ms) FROM messages WHERE state='queued'") + 1000))
lab_send
check "past the horizon nothing is queued" \
  eq "$(q "SELECT count(*) FROM messages WHERE endpoint='housing' AND state='queued'")" 0
check "past the horizon every retrying message failed with 'retry horizon reached'" \
  eq "$(q "SELECT count(*) FROM messages WHERE endpoint='housing' AND state='failed' AND reason LIKE 'retry horizon reached: %'")" "$still"
for m in "${PERMANENT[@]}"; do
  check "permanent failure $m: never attempted again" eq "$(attempts "$m")" 1
done
for m in "${PERMANENT_TWICE[@]}"; do
  check "stale twice $m: never attempted again" eq "$(attempts "$m")" 2
done
finish
