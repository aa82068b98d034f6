#!/usr/bin/env bash
# it_faults_disk: full and read-only disks under a running `gateway send` and
# a receiver (issue 7, item 3; SPEC section 3: no input disappears without a
# trace). The faults come from tests/faults/failfs.c, an LD_PRELOAD shim that
# makes file calls under one directory fail with ENOSPC or EROFS while
# everything else works (no root, no mount; under an ASan build the
# sanitizer runtime is preloaded first). Each case proves the fault fired
# (the shim's trace), then what the gateway did, then recovery:
#   (a) processed/ read-only when intake moves an accepted notice: its
#       messages are committed and delivered, the file stays in incoming/new,
#       one log line names file, directory and cause; once writable, the next
#       scan (5 s later, not 60) recognises the bytes as a duplicate and
#       moves it, and no second set of messages appears;
#   (b) rejected/ full when intake rejects a bad notice: the file stays in
#       incoming/new with one clear line and no half-written reason file;
#       once there is room it is rejected properly (file + .reason);
#   (c) the database's disk full at COMMIT (SQLITE_FULL): nothing of the
#       notice is stored, the file stays, one clear line; afterwards it is
#       accepted exactly once and the audit chain verifies;
#   (d) the receiver's inbox disk full: the receiver answers 503 (temporary)
#       and stores nothing (no inbox item, no evidence, no row); the gateway
#       retries; after recovery exactly one item and one row.
# No log line of either side ever holds a notice's nin.
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/faults_common.sh"

fault_shim_build
fault_lab
line_of() { grep -- "$1" "$log" | head -n 1; }
state_is() { [ "$(state_of "$1" "$2")" = "$3" ]; }

# The scheduler's clock (GW_TEST_CLOCK_FILE): moved forward in (d) so the
# receiver's Retry-After need not be waited out.
export GW_TEST_CLOCK_FILE="$LAB/clock"
date +%s%3N > "$GW_TEST_CLOCK_FILE"
daemon_start

# --- (a) processed/ read-only -------------------------------------------------
n1=01-release-full-consent.xml
fault_set "EROFS $spool/processed/"
lab_drop "$SRC/spool/demo/$n1"
# (the first rename takes it to a staging name in processed/, to be checked there)
check "(a) the move to processed/ was refused (EROFS)" \
  wait_for 20 fault_fired "rename $spool/processed/\.taking\.$n1 EROFS"
check "(a) one log line for it" wait_for 10 log_has "event=move-failed file=$n1"
line=$(line_of "event=move-failed file=$n1")
check "(a) it names directory and cause" \
  has "$line" "cannot move $n1 from incoming/new to processed/: Read-only file system"
check "(a) it says what becomes of the file" has "$line" "it stays in incoming/new"
check "(a) the file stays in incoming/new" in_new "$n1"
check "(a) its three messages are committed" eq "$(messages_of KDI-2027-004101)" 3
check "(a) and delivered meanwhile" wait_for 20 all_delivered KDI-2027-004101 3
check "(a) a rescan is announced within 5 s" wait_for 10 log_has 'event=scan-incomplete.*next_scan_s=5'
fault_clear
check "(a) once writable, the next scan moves it" wait_for 15 not_in_new "$n1"
check "(a) it is in processed/" test -f "$spool/processed/$n1"
# The line follows the move: wait for it, not only for the move.
check "(a) recognised by its bytes" wait_for 10 log_has "event=duplicate file=$n1"
check "(a) no second set of messages" eq "$(messages_of KDI-2027-004101)" 3
check "(a) never taken as a new notice again" eq "$(count_lines "event=accepted file=$n1" "$log")" 0
for p in housing nav health; do
  check "(a) $p has exactly one item" eq "$(count_inbox $p)" 1
done

# --- (b) rejected/ full -----------------------------------------------------------
bad="bad-nin-check-digit.xml"
fault_set "ENOSPC $spool/rejected/"
lab_drop "$SRC/tests/data/notices/$bad"
check "(b) the reason file could not be created (ENOSPC)" \
  wait_for 20 fault_fired "create $spool/rejected/.*$bad.reason ENOSPC"
check "(b) one log line for it" wait_for 10 log_has "event=reject-failed file=$bad"
line=$(line_of "event=reject-failed file=$bad")
check "(b) it names directory, file and cause" \
  has "$line" "cannot write rejected/$bad.reason for $bad: No space left on device"
check "(b) it says what becomes of the file" \
  has "$line" "it stays in incoming/new and is rejected again at the next scan"
check "(b) the file stays in incoming/new" in_new "$bad"
check "(b) nothing half-written in rejected/" eq "$(find "$spool/rejected" -type f | wc -l)" 0
fault_clear
check "(b) once there is room it is rejected" wait_for 15 not_in_new "$bad"
check "(b) rejected/ holds the file" test -f "$spool/rejected/$bad"
check "(b) and its reason" eq "$(head -n 1 "$spool/rejected/$bad.reason" 2>/dev/null)" invalid-nin
check "(b) logged as rejected" wait_for 10 log_has "event=rejected file=$bad"
check "(b) once" eq "$(count_lines "event=rejected file=$bad" "$log")" 1

# --- (c) the database's disk full ------------------------------------------------
n2=02-release-health-refused.xml
fault_set "ENOSPC $db"
lab_drop "$SRC/spool/demo/$n2"
check "(c) the database's write-ahead log could not grow (ENOSPC)" \
  wait_for 20 fault_fired "pwrite $db-wal ENOSPC"
check "(c) one log line for it" wait_for 10 log_has "event=intake-failed file=$n2"
line=$(line_of "event=intake-failed file=$n2")
check "(c) it names the database and the cause" \
  has "$line" "store $db: cannot commit: the disk holding the database is full"
check "(c) it says nothing was stored and the file stays" \
  has "$line" "nothing of it was stored; it stays in incoming/new"
check "(c) the file stays in incoming/new" in_new "$n2"
check "(c) no notice row" eq "$(q "SELECT count(*) FROM notices WHERE notice_id = 'KDI-2027-004102'")" 0
check "(c) no message row" eq "$(messages_of KDI-2027-004102)" 0
fault_clear
check "(c) once there is room it is taken" wait_for 15 not_in_new "$n2"
check "(c) logged as accepted" wait_for 10 log_has "event=accepted file=$n2"
check "(c) exactly once" eq "$(count_lines "event=accepted file=$n2" "$log")" 1
check "(c) one notice row" eq "$(q "SELECT count(*) FROM notices WHERE notice_id = 'KDI-2027-004102'")" 1
check "(c) three messages (health held: no consent)" eq "$(messages_of KDI-2027-004102)" 3
check "(c) its two consented messages delivered" wait_for 20 all_delivered KDI-2027-004102 2
check "(c) the audit chain verifies" "$GW_REAL" audit verify --config "$cfg"

# --- (d) the receiver's inbox disk full -------------------------------------------
n4=04-release-friday.xml
nav_items=$(count_inbox nav)
nav_rows=$(sql "$LAB/nav/receiver.db" 'SELECT count(*) FROM received')
fault_set "ENOSPC $LAB/nav/inbox/"
lab_drop "$SRC/spool/demo/$n4"
check "(d) the receiver could not write into its inbox (ENOSPC)" \
  wait_for 20 fault_fired "$LAB/nav/inbox/.* ENOSPC"
msg=$(q "SELECT message_id FROM messages WHERE notice_id = 'KDI-2027-004104' AND service = 'nav'")
nav_503() { grep -q "event=retry msg=$msg endpoint=nav status=503" "$log"; }
check "(d) the gateway saw a temporary 503 and will retry" wait_for 20 nav_503
check "(d) the message is queued, not failed" eq "$(state_of KDI-2027-004104 nav | awk '{print $1}')" queued
# The receiver may write its line just after its answer reached the gateway.
check "(d) the receiver says why" \
  wait_for 10 grep -q "status=503.*No space left on device" "$LAB/nav/receiver.log"
check "(d) no inbox item" eq "$(count_inbox nav)" "$nav_items"
check "(d) nothing of it anywhere in the inbox" eq "$(find "$LAB/nav/inbox" -name "*$msg*" | wc -l)" 0
check "(d) nothing left in inbox/tmp" eq "$(find "$LAB/nav/inbox/tmp" -type f | wc -l)" 0
check "(d) no row" eq "$(sql "$LAB/nav/receiver.db" 'SELECT count(*) FROM received')" "$nav_rows"
check "(d) housing got its copy meanwhile" wait_for 20 state_is KDI-2027-004104 housing delivered
fault_clear
echo $(($(cat "$GW_TEST_CLOCK_FILE") + 120000)) > "$GW_TEST_CLOCK_FILE"
kill -USR1 "$DAEMON_PID"
check "(d) after recovery the retry delivers" wait_for 20 state_is KDI-2027-004104 nav delivered
check "(d) exactly one more inbox item" eq "$(count_inbox nav)" $((nav_items + 1))
check "(d) it is this message's" test -f "$LAB/nav/inbox/new/$msg.xml"
check "(d) exactly one more row" eq "$(sql "$LAB/nav/receiver.db" 'SELECT count(*) FROM received')" $((nav_rows + 1))

daemon_stop
check "the gateway stopped cleanly" log_has 'event=stopped'
for f in "$SRC/spool/demo/$n1" "$SRC/spool/demo/$n2" "$SRC/spool/demo/$n4" \
  "$SRC/tests/data/notices/$bad"; do
  nin=$(grep -o 'nin="[0-9]*"' "$f" | head -n 1 | tr -dc 0-9)
  check "no log holds the nin of $(basename "$f")" no_nin "$nin" "$LAB"/*/*.log
done
finish
