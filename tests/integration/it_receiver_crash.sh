#!/usr/bin/env bash
# it_receiver_crash: kill the receiver with SIGKILL at every step of the
# accept path, restart, resend the same bytes, and show exactly one inbox
# item, one database row and one accepted receipt as evidence.
#
# The test-only fault points (GW_FAULT_POINT, inbox.h) kill the worker that
# reaches the named step. Two ways of dying, for every point:
#   A. the whole receiver dies (the test SIGKILLs the parent and every
#      worker, as in a power cut) and is started again: start-up recovery
#      runs, then the sender's resend arrives;
#   B. only the worker dies (GW_FAULT_ONCE: the point fires once); the
#      parent starts a new worker and the resend reaches it with no
#      recovery in between.
# The resend must be answered 200 `accepted` when the crash came before the
# commit (nothing was acknowledged, so it is stored now) and 200 `duplicate`
# after it (stored before; the duplicate path finishes the move into new/).
# Either way: new/ID.xml once, no tmp/ID.xml, one row, the evidence is the
# exact bytes sent plus an `accepted` receipt that xmlsec1 verifies with the
# CA, and `gateway inbox verify ID` passes. A second resend is a duplicate.
#
# Environment (set by CTest): GW_GATEWAY, GW_PKI_DIR, GW_SOURCE_DIR.
set -euo pipefail
# shellcheck source=receiver_common.sh
. "$(dirname "$0")/receiver_common.sh"

POINTS="after-lock after-tmp-write after-commit after-rename before-answer"
committed() { case "$1" in after-commit | after-rename | before-answer) return 0 ;; esac; return 1; }

write_config "$work/r.ini" r
messages=0

# check_one POINT ID SENT-FILE: the store holds this message exactly once.
check_one() {
  local p=$1 id=$2 sent=$3
  [ -f "$INBOX/new/$id.xml" ] || fail "$p: no new/$id.xml"
  [ ! -e "$INBOX/tmp/$id.xml" ] || fail "$p: tmp/$id.xml left behind"
  [ "$(count_in new)" -eq "$messages" ] || fail "$p: $(count_in new) items for $messages messages"
  [ "$(count_in tmp)" -eq 0 ] || fail "$p: tmp/ not empty: $(ls "$INBOX/tmp")"
  [ "$(db_rows "$id")" -eq 1 ] || fail "$p: $(db_rows "$id") rows for $id"
  [ "$(db_rows)" -eq "$messages" ] || fail "$p: $(db_rows) rows for $messages messages"
  export_evidence "$work/r.ini" "$id" message "$work/ev.message.xml"
  cmp -s "$sent" "$work/ev.message.xml" || fail "$p: evidence differs from the bytes sent"
  local rcpt="$work/ev.receipt.xml"
  export_evidence "$work/r.ini" "$id" receipt "$rcpt"
  [ "$(xml_text "$rcpt" Status)" = accepted ] || fail "$p: the stored receipt is not 'accepted'"
  [ "$(xml_text "$rcpt" RefToMessageId)" = "$id" ] || fail "$p: the stored receipt names another id"
  receipt_verifies "$p: stored receipt" "$rcpt"
  "$GW_GATEWAY" inbox verify "$id" --config "$work/r.ini" > "$work/iv.out" 2>&1 ||
    { cat "$work/iv.out" >&2; fail "$p: gateway inbox verify failed"; }
  grep -q "Needs a flat after $p" "$INBOX/new/$id.xml" || fail "$p: the item lost its content"
}

# resend_expect POINT ID FILE STATUS: resend (retrying while a worker is
# restarted: at most 5 s) and expect 200 with STATUS.
resend_expect() {
  local p=$1 id=$2 file=$3 status=$4 _
  for _ in $(seq 1 50); do
    post "$file"
    [ "$code" = 000 ] || break
    sleep 0.1
  done
  expect_receipt "$p: resend" 200 "$status" "" "$id" "$file"
}

for p in $POINTS; do
  expect=accepted
  committed "$p" && expect=duplicate

  # ---- A: the whole receiver dies at this step and is started again ----
  start_receiver r "$work/r.ini" GW_FAULT_POINT="$p"
  wait_workers 2
  id=$(new_id)
  make_message "$work/$p.A.xml" "$id" "$(now_utc)" "$ME" "Needs a flat after $p (A)."
  post "$work/$p.A.xml"
  [ "$code" = 000 ] || fail "$p (A): HTTP $code, expected the connection to die"
  grep -q "event=fault-point point=$p" "$RLOG" || fail "$p (A): the fault point was not reached"
  kill_receiver
  messages=$((messages + 1))
  start_receiver r "$work/r.ini"
  # Recovery ran before the port file appeared: nothing in tmp/, and the
  # item is visible exactly when its row was committed.
  [ ! -e "$INBOX/tmp/$id.xml" ] || fail "$p (A): tmp/$id.xml survived the restart"
  if committed "$p"; then
    [ -f "$INBOX/new/$id.xml" ] || fail "$p (A): committed, but not in new/ after recovery"
  else
    [ ! -e "$INBOX/new/$id.xml" ] || fail "$p (A): an uncommitted item reached new/"
    [ "$(db_rows "$id")" -eq 0 ] || fail "$p (A): a row survived a crash before the commit"
  fi
  resend_expect "$p (A)" "$id" "$work/$p.A.xml" "$expect"
  check_one "$p (A)" "$id" "$work/$p.A.xml"
  post "$work/$p.A.xml"
  expect_receipt "$p (A): second resend" 200 duplicate "" "$id" "$work/$p.A.xml"
  check_one "$p (A)" "$id" "$work/$p.A.xml"
  stop_receiver
  ok "killed $p, receiver restarted: resend answered $expect; one item, one row, accepted receipt verifies"

  # ---- B: only the worker dies; its replacement serves the resend ----
  rm -f "$work/once"
  start_receiver r "$work/r.ini" GW_FAULT_POINT="$p" GW_FAULT_ONCE="$work/once"
  wait_workers 2
  id=$(new_id)
  make_message "$work/$p.B.xml" "$id" "$(now_utc)" "$ME" "Needs a flat after $p (B)."
  post "$work/$p.B.xml"
  [ "$code" = 000 ] || fail "$p (B): HTTP $code, expected the connection to die"
  [ -f "$work/once" ] || fail "$p (B): the fault point did not fire"
  messages=$((messages + 1))
  resend_expect "$p (B)" "$id" "$work/$p.B.xml" "$expect"
  check_one "$p (B)" "$id" "$work/$p.B.xml"
  grep -q "event=worker-died" "$RLOG" || fail "$p (B): no worker died"
  stop_receiver
  ok "killed a worker at $p, parent kept serving: resend answered $expect; one item, one row"
done

# Every message of the run, once, and nothing half-written anywhere.
start_receiver r "$work/r.ini"
[ "$(store_state)" = "new=$messages tmp=0 cur=0 rows=$messages" ] ||
  fail "final store: $(store_state), expected $messages of each"
"$GW_GATEWAY" inbox list --config "$work/r.ini" --json > "$work/list.json"
python3 -c 'import json,sys; rows=json.load(open(sys.argv[1])); assert len(rows)==int(sys.argv[2]), len(rows)' \
  "$work/list.json" "$messages" || fail "inbox list --json does not show $messages rows"
stop_receiver
ok "after $messages crashes: $(store_state)"

echo "it_receiver_crash: all $passed checks passed"
