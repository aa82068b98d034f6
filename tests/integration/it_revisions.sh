#!/usr/bin/env bash
# it_revisions: SPEC section 4's revision and withdrawal rules, each checked
# by the messages that actually go out (what the partners' inboxes hold).
# Notices in tests/data/intake/revisions/. NAV's receiver is down at first.
#
#   run 1  A r1 (housing, nav, health) and B r1 (same recipients): housing and
#          health get them; nav's messages stay queued (its receiver is down)
#   run 2  A r2 while A r1 to nav is still queued: A r1 to nav superseded.
#          B withdrawal r2 before nav got B: nav's B cancelled, nothing will
#          go to nav; housing and health, who got B r1, get a withdrawal
#   run 3  nav comes up: it receives A r2 only (never A r1, nothing of B)
#   run 4  A r2 again with other content: rejected revision-conflict;
#          A r1 with other content: rejected stale-revision; nothing goes out
#   run 5  A withdrawal r3 after delivery: housing, nav and health, who all
#          got A, each receive a withdrawal (Notice kind="withdrawal")
# Privacy: no nin or name in any log, reason file or operator output.
. "$(dirname "$0")/common.sh"

DATA="$SRC/tests/data/intake/revisions"
A=REVISION-2027-000001
B=REVISION-2027-000002
lab_receiver housing "$ORGNR_HOUSING"
lab_receiver nav "$ORGNR_NAV"
lab_receiver health "$ORGNR_HEALTH"
lab_gateway_config
cfg="$LAB/gateway/gateway.conf"
spool="$LAB/gateway/spool"

# NAV goes down; its endpoint stays configured at the same port.
nav_port=$RECEIVER_PORT_NAV
kill "$(cat "$LAB/nav/pid")"
wait "$(cat "$LAB/nav/pid")" 2>/dev/null || true
nav_up() {
  sed -i "s/^listen = .*/listen = 127.0.0.1:$nav_port/" "$LAB/nav/receiver.conf"
  rm -f "$LAB/nav/port"
  "$GW" receive --config "$LAB/nav/receiver.conf" --port-file "$LAB/nav/port" \
    2>>"$LAB/nav/receiver.log" &
  LAB_PIDS+=($!)
  local i
  for i in $(seq 1 100); do
    [ -s "$LAB/nav/port" ] && return 0
    sleep 0.05
  done
  echo "nav receiver did not come back" >&2
  return 1
}

# items PARTNER ID [REVISION [KIND]]: that partner's inbox items of the notice.
items() {
  local f out=""
  for f in "$LAB/$1"/inbox/new/*.xml; do
    [ -f "$f" ] || continue
    grep -q "id=\"$2\"" "$f" || continue
    [ -z "${3:-}" ] || grep -q "revision=\"$3\"" "$f" || continue
    [ -z "${4:-}" ] || grep -q "kind=\"$4\"" "$f" || continue
    out="$out$f"$'\n'
  done
  printf '%s' "$out"
}
n_items() { items "$@" | grep -c . || true; }
# state NOTICE REVISION SERVICE: the state of that message (no reason)
state() {
  "$GW" list --config "$cfg" --notice "$1" | awk -v r="$2" -v s="$3" '$3 == r && $4 == s { print $6 }'
}
# send_until NOTICE REVISION SERVICE STATE: run the gateway until that message
# reaches STATE (its retry after a down period comes due), at most 30 s.
send_until() {
  local i
  for i in $(seq 1 30); do
    lab_send || return 1
    [ "$(state "$1" "$2" "$3")" = "$4" ] && return 0
    sleep 1
  done
  return 1
}

# ---- run 1: nav down ----
lab_drop "$DATA/a1-release-r1.xml" "$DATA/b1-release-r1.xml"
check "run 1 until idle" lab_send
check "A r1: housing delivered" eq "$(state $A 1 housing)" delivered
check "A r1: health delivered" eq "$(state $A 1 health)" delivered
check "A r1: nav still queued (receiver down)" eq "$(state $A 1 nav)" queued
check "B r1: nav still queued" eq "$(state $B 1 nav)" queued
check "nav's inbox is empty" eq "$(count_inbox nav)" 0

# ---- run 2: a new revision and a withdrawal before nav got anything ----
lab_drop "$DATA/a2-release-r2.xml" "$DATA/b2-withdrawal-r2.xml"
check "run 2 until idle" lab_send
check "A r1 to nav superseded" eq "$(state $A 1 nav)" superseded
check "A r1 to housing stays delivered" eq "$(state $A 1 housing)" delivered
check "A r2: housing delivered" eq "$(state $A 2 housing)" delivered
check "A r2: health delivered" eq "$(state $A 2 health)" delivered
check "B r1 to nav cancelled" eq "$(state $B 1 nav)" cancelled
check "B: a withdrawal to housing, delivered" eq "$(state $B 2 housing)" delivered
check "B: a withdrawal to health, delivered" eq "$(state $B 2 health)" delivered
check "B: no withdrawal message to nav" eq "$(state $B 2 nav)" ""
check "housing holds B's withdrawal" eq "$(n_items housing $B 2 withdrawal)" 1
check "health holds B's withdrawal" eq "$(n_items health $B 2 withdrawal)" 1
wd=$(items housing $B 2 withdrawal)
check "the withdrawal item carries no person" bash -c "! grep -q '<Person' '$wd'"
check "the withdrawal item names the reason" grep -q 'reason="release-cancelled"' "$wd"

# ---- run 3: nav comes up ----
check "nav receiver back on its port" nav_up
check "run 3 until nav's retry comes due and succeeds" send_until $A 2 nav delivered
check "A r2: nav delivered" eq "$(state $A 2 nav)" delivered
check "nav got exactly one item in all" eq "$(count_inbox nav)" 1
check "nav's item is A revision 2" eq "$(n_items nav $A 2)" 1
check "nav never got A revision 1" eq "$(n_items nav $A 1)" 0
check "nav got nothing of B" eq "$(n_items nav $B)" 0
check "nav's item has revision 2's content" grep -q "A-r2 income" "$(items nav $A 2)"
check "nav's item lacks revision 1's date" bash -c "! grep -q '2027-12-02' '$(items nav $A 2)'"
check "housing holds A r1 and A r2" eq "$(n_items housing $A 1) $(n_items housing $A 2)" "1 1"

# ---- run 4: conflict and stale, nothing goes out ----
before="$(count_inbox housing) $(count_inbox nav) $(count_inbox health)"
before_msgs=$("$GW" list --config "$cfg" | wc -l)
lab_drop "$DATA/a3-release-r2-conflict.xml" "$DATA/a4-release-r1-stale.xml"
check "run 4 until idle" lab_send
check "same revision, other content: revision-conflict" \
  eq "$(head -n1 "$spool/rejected/a3-release-r2-conflict.xml.reason")" revision-conflict
check "lower revision: stale-revision" \
  eq "$(head -n1 "$spool/rejected/a4-release-r1-stale.xml.reason")" stale-revision
check "no new message" eq "$("$GW" list --config "$cfg" | wc -l)" "$before_msgs"
check "no new inbox item" eq "$(count_inbox housing) $(count_inbox nav) $(count_inbox health)" \
  "$before"

# ---- run 5: withdrawal after delivery ----
lab_drop "$DATA/a5-withdrawal-r3.xml"
check "run 5 until idle" lab_send
for p in housing nav health; do
  check "A withdrawal to $p delivered" eq "$(state $A 3 $p)" delivered
  check "$p holds one withdrawal item of A" eq "$(n_items $p $A 3 withdrawal)" 1
done
check "one withdrawal per partner, not one per revision received" \
  eq "$("$GW" list --config "$cfg" --notice $A | awk '$3 == 3' | wc -l)" 3
check "inboxes in all: housing 5, nav 2, health 5" \
  eq "$(count_inbox housing) $(count_inbox nav) $(count_inbox health)" "5 2 5"
leaks=$(grep -lE '<(Recipients|Consent)[ >]' "$LAB"/*/inbox/new/*.xml || true)
check "no inbox item holds Recipients or Consent" eq "$leaks" ""

# ---- privacy ----
ops="$LAB/operator"
mkdir -p "$ops"
"$GW" status --config "$cfg" > "$ops/status.out" 2>&1 || true
"$GW" list --config "$cfg" > "$ops/list.out" 2>&1 || true
for id in $A $B $(awk '{print $1}' "$ops/list.out"); do
  "$GW" show --config "$cfg" "$id" > "$ops/show-$id.out" 2>&1 || true
done
secrets=$(grep -hoE '(nin|givenName|familyName)="[^"]*"' "$DATA"/*.xml |
  sed 's/^[a-zA-Z]*="\(.*\)"$/\1/' | sort -u)
leak=""
while IFS= read -r s; do
  [ -n "$s" ] || continue
  if grep -rqsF -- "$s" "$LAB"/*/*.log "$spool/rejected"/*.reason "$ops"; then leak="$leak $s"; fi
done <<< "$secrets"
check "no nin or person's name in any log, reason file or operator output" eq "$leak" ""

finish
