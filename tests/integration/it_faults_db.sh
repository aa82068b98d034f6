#!/usr/bin/env bash
# it_faults_db: the gateway's database locked by another process, or damaged
# (issue 7, item 3). A clear error naming the file and what to do, never a
# silent loss, and the spool untouched until the database is usable:
#   (a) locked while `gateway send` runs: another process (a sqlite3 shell)
#       holds the write lock longer than the busy timeout (10 s); intake of a
#       new notice fails with one line naming the database, the lock and what
#       becomes of the file (it stays in incoming/new); once the lock is gone
#       the next scan (5 s later) accepts it exactly once and delivers it;
#   (b) operator commands against the locked database: a read (status) still
#       works; a change (retry) waits the busy timeout, then exits 1 with a
#       sentence naming the database and the lock;
#   (c) locked at start-up: `gateway send` exits 1 with that sentence and
#       has not touched the spool; started again after the release, it works;
#   (d) damaged header (bytes 0-15 overwritten while stopped): `gateway send`
#       and `gateway status` exit 1 with "the database file is damaged; stop
#       the gateway and restore the last backup (docs/OPERATIONS.md ...)";
#       the notice waiting in incoming/new and processed/, rejected/ are
#       untouched;
#   (e) a damaged page in the middle (the messages table's root page
#       overwritten): the start-up PRAGMA quick_check refuses to start with
#       the same advice; the spool is untouched;
#   (f) restoring the backup copy, as docs/OPERATIONS.md says: the gateway
#       starts, takes the waiting notice once and delivers it.
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/faults_common.sh"

fault_lab
# Every file in the spool with its SHA-256: proves "untouched".
spool_listing() { (cd "$spool" && find . -type f -exec sha256sum {} + | sort -k 2); }
LOCKED="the database's write lock longer than the busy timeout (10 s)"
DAMAGED="stop the gateway and restore the last backup (docs/OPERATIONS.md"

# lock_for SECONDS: a sqlite3 shell holds the write lock (BEGIN EXCLUSIVE)
# that long; returns once the lock is held.
LOCKER_PID=
lock_for() {
  rm -f "$LAB/locked"
  { printf 'BEGIN EXCLUSIVE;\n.system touch %s/locked\n' "$LAB"; sleep "$1"; echo 'ROLLBACK;'; } |
    sqlite3 "$db" >"$LAB/locker.out" 2>&1 &
  LOCKER_PID=$!
  LAB_PIDS+=("$LOCKER_PID")
  wait_for 10 test -f "$LAB/locked"
}

# A first notice through, so the store has messages and a backup is taken.
lab_drop "$SRC/spool/demo/01-release-full-consent.xml"
check "a first notice is delivered" lab_send
check "its three messages delivered" all_delivered KDI-2027-004101 3
delivered=$(q "SELECT message_id FROM messages WHERE state = 'delivered' LIMIT 1")

# --- (a) locked while running ----------------------------------------------------
n2=02-release-health-refused.xml
started=$(count_lines 'event=started' "$log")
more_started() { [ "$(count_lines 'event=started' "$log")" -gt "$started" ]; }
daemon_start
check "(a) the daemon started" wait_for 10 more_started
check "(a) another process holds the write lock" lock_for 14
t0=$(date +%s)
lab_drop "$SRC/spool/demo/$n2"

# --- (b) operator commands meanwhile --------------------------------------------
status_to() { "$GW" status --config "$cfg" >"$1" 2>&1; }
check "(b) status still reads the locked database" status_to "$LAB/status.out"
set +e
"$GW" retry --config "$cfg" "$delivered" >"$LAB/retry.out" 2>&1
rc=$?
set -e
check "(b) retry exits 1" eq "$rc" 1
check "(b) and names the database and the lock" \
  has "$(cat "$LAB/retry.out")" "gateway retry: store $db: cannot begin a transaction: another process has held $LOCKED"

check "(a) intake gave up after the busy timeout" wait_for 15 log_has "event=intake-failed file=$n2"
line=$(grep "event=intake-failed file=$n2" "$log" | head -n 1 || true)
check "(a) one line names the database and the lock" has "$line" "store $db: cannot begin a transaction: another process has held $LOCKED"
check "(a) and says what becomes of the file" has "$line" "nothing of it was stored; it stays in incoming/new"
check "(a) the file is still in incoming/new" in_new "$n2"
check "(a) nothing of the notice is stored" eq "$(messages_of KDI-2027-004102)" 0
check "(a) once the lock is gone, the next scan takes it" wait_for 20 not_in_new "$n2"
check "(a) within the lock (14 s) plus one rescan (5 s) and a little" \
  test $(($(date +%s) - t0)) -le 25
check "(a) logged as accepted" wait_for 10 log_has "event=accepted file=$n2"
check "(a) exactly once" eq "$(count_lines "event=accepted file=$n2" "$log")" 1
check "(a) its consented messages are delivered" wait_for 20 all_delivered KDI-2027-004102 2
daemon_stop
wait "$LOCKER_PID" 2>/dev/null || true

# --- (c) locked at start-up ---------------------------------------------------------
n4=04-release-friday.xml
lab_drop "$SRC/spool/demo/$n4"
check "(c) another process holds the write lock" lock_for 12
before=$(spool_listing)
set +e
"$GW" send --config "$cfg" --until-idle --max-seconds 30 >"$LAB/start.out" 2>&1
rc=$?
set -e
check "(c) gateway send exits 1" eq "$rc" 1
check "(c) naming the database and the lock" has "$(cat "$LAB/start.out")" "store $db: .*$LOCKED"
check "(c) the spool is untouched" eq "$(spool_listing)" "$before"
wait "$LOCKER_PID" 2>/dev/null || true
check "(c) after the release it starts and takes the notice" lab_send
check "(c) the notice was taken once" eq "$(count_lines "event=accepted file=$n4" "$log")" 1
check "(c) and delivered" all_delivered KDI-2027-004104 2
check "(c) the audit chain verifies" "$GW" audit verify --config "$cfg"

# --- (d) a damaged header -------------------------------------------------------
check "(d) stopped: no write-ahead log is left over" test ! -s "$db-wal"
cp "$db" "$LAB/backup.db"
n5=05-community-sentence-direct.xml
lab_drop "$SRC/spool/demo/$n5"
before=$(spool_listing)
printf 'this is no db!!!' | dd of="$db" bs=1 seek=0 conv=notrunc status=none
set +e
"$GW" send --config "$cfg" --until-idle --max-seconds 30 >"$LAB/start.out" 2>&1
rc=$?
"$GW" status --config "$cfg" >"$LAB/status.out" 2>&1
src=$?
set -e
check "(d) gateway send refuses to start (exit 1)" eq "$rc" 1
check "(d) naming the file and what to do" \
  has "$(cat "$LAB/start.out")" "store $db: cannot open: the database file is damaged; $DAMAGED"
check "(d) gateway status exits 1" eq "$src" 1
check "(d) with the same sentence" \
  has "$(cat "$LAB/status.out")" "store $db: cannot open: the database file is damaged; $DAMAGED"
check "(d) the spool is untouched" eq "$(spool_listing)" "$before"

# --- (e) a damaged page in the middle ------------------------------------------
cp "$LAB/backup.db" "$db"
page_size=$(sql "$db" 'PRAGMA page_size')
root=$(sql "$db" "SELECT rootpage FROM sqlite_master WHERE name = 'messages'")
pages=$(sql "$db" 'PRAGMA page_count')
check "(e) the page is inside the file, not the header" test "$root" -gt 1 -a "$root" -lt "$pages"
head -c "$page_size" /dev/zero | tr '\0' '\377' | dd of="$db" bs="$page_size" seek=$((root - 1)) conv=notrunc status=none
set +e
"$GW" send --config "$cfg" --until-idle --max-seconds 30 >"$LAB/start.out" 2>&1
rc=$?
set -e
check "(e) gateway send refuses to start (exit 1)" eq "$rc" 1
check "(e) the start-up check names the file, the damage and what to do" \
  has "$(cat "$LAB/start.out")" "gateway send: store $db.* damaged.*; $DAMAGED"
check "(e) the spool is untouched" eq "$(spool_listing)" "$before"

# --- (f) restore the backup -------------------------------------------------------
cp "$LAB/backup.db" "$db"
check "(f) restored, it starts and works" lab_send
check "(f) the start-up check passed" log_has "event=store-checked db=$db"
check "(f) the waiting notice was taken once" eq "$(count_lines "event=accepted file=$n5" "$log")" 1
check "(f) and delivered" all_delivered KDI-2027-004105 2
check "(f) incoming/new is empty" eq "$(find "$spool/incoming/new" -type f | wc -l)" 0
check "(f) the audit chain verifies" "$GW" audit verify --config "$cfg"

for f in 01-release-full-consent.xml "$n2" "$n4" "$n5"; do
  nin=$(grep -o 'nin="[0-9]*"' "$SRC/spool/demo/$f" | head -n 1 | tr -dc 0-9)
  check "no log or message holds the nin of $f" no_nin "$nin" "$LAB"/*/*.log "$LAB"/*.out
done
finish
