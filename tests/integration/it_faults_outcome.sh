#!/usr/bin/env bash
# it_faults_outcome: the outcome of an attempt cannot be written. The
# gateway's database disk is full (tests/faults/failfs.c, ENOSPC on the
# database and its WAL) at the moment an attempt ends (the fault receiver
# holds the POST until the transfer times out). The attempt's outcome is
# lost with its transaction, so the message is still 'sending' with no
# transfer behind it; the daemon logs that, and once the disk has room
# again it queues the message again by itself, within about 5 s and without
# a restart, and delivers it. Exactly one delivery, the audit chain intact.
# shellcheck source=faultrecv_common.sh
. "$(dirname "$0")/faultrecv_common.sh"
# shellcheck source=faults_common.sh
. "$(dirname "$0")/faults_common.sh"

# --- the fault receiver (housing's certificate), holding every request ------
faultrecv_start hang

# --- the gateway, under the shim, one endpoint (housing) --------------------
LAB_RETRY_BASE=1 LAB_RETRY_CAP=2 lab_gateway_config
log="$LAB/gateway/gateway.log"
export GW_TEST_TRANSFER_TIMEOUT_MS=2000
fault_shim_build
daemon_start

id=KDI-2027-990001
sed "s/KDI-2027-004101/$id/" "$SRC/spool/demo/01-release-full-consent.xml" > "$LAB/$id.xml"
lab_drop "$LAB/$id.xml"
check "the POST reached the fault receiver, which holds it" \
  wait_for 15 grep -q . "$fr/requests.log"
msg=$(q "SELECT message_id FROM messages WHERE notice_id = '$id' AND endpoint = 'housing'")
check "the message is sending" eq "$(q "SELECT state FROM messages WHERE message_id = '$msg'")" sending

# The database's disk fills up before the transfer times out.
fault_set "ENOSPC $db"
check "the outcome could not be written, and the log says what happens next" \
  wait_for 15 grep -q "event=store-error msg=$msg .*queued again once the store takes it" "$log"
check "the shim refused the database's writes" fault_fired "$db"
check "still sending, no transfer behind it" \
  eq "$(q "SELECT state FROM messages WHERE message_id = '$msg'")" sending
check "no attempt row was written" eq "$(q "SELECT count(*) FROM attempts WHERE message_id = '$msg'")" 0

# Room again, and the partner answers now: no restart.
mode accept
fault_clear
check "queued again by the running daemon" wait_for 15 grep -q "event=requeued msg=$msg" "$log"
check "then delivered" \
  wait_for 15 bash -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$db' \"SELECT state FROM messages WHERE message_id = '$msg'\")\" = delivered ]"
daemon_stop
check "delivered once: one accepted attempt" \
  eq "$(q "SELECT count(*) FROM attempts WHERE message_id = '$msg' AND outcome = 'delivered'")" 1
check "the fault receiver accepted it once" eq "$(grep -c "^$msg accept " "$fr/requests.log")" 1
check "the audit chain is intact" "$GW_REAL" audit verify --config "$cfg"
check "the daemon was never restarted" eq "$(grep -c 'event=started' "$log")" 1
finish
