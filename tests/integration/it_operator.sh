#!/usr/bin/env bash
# it_operator: the operator commands on a run with mixed outcomes.
#   housing, nav      up: delivered
#   health            answers 403 (our organisation not allowed): failed;
#                     the refusal notice holds health for no consent
#   prison            not running: the transfer stays queued, retrying
#   archive           an endpoint whose trust anchor has expired: status
#                     lists the certificate
# Then every command: status, list, show, export (bytes equal to the
# partner's evidence), verify (message and receipt; a changed copy fails),
# retry (health fixed -> delivered; its horizon not before the day after the
# release date), cancel (queued -> cancelled; delivered
# refused), report timeliness, audit verify (intact, then each kind of
# tampering through the sqlite3 command is caught and the row named), the
# exit codes scripts rely on (0 ok, 1 not found/refused/failed, 2 usage),
# and texts longer than a message keeps (a cancel reason over 255 bytes is
# refused; longer texts already in the database still read, cut between
# letters, also for intake taking in a withdrawal).
. "$(dirname "$0")/common.sh"

cfg="$LAB/gateway/gateway.conf"
db="$LAB/gateway/gateway.db"
G() { "$GW" "$1" --config "$cfg" "${@:2}"; }
rc_of() { local rc=0; "$@" >/dev/null 2>&1 || rc=$?; echo "$rc"; }
msg_of() { G list --notice "$1" | awk -v s="$2" '$4 == s {print $1}'; }
has() { grep -Eq -- "$2" <<<"$1" || { echo "  no '$2' in: $1" >&2; false; }; }
hasf() { grep -Fq -- "$2" <<<"$1" || { echo "  no '$2' in: $1" >&2; false; }; }
restart_receiver() { # NAME: restart on the same port with its (edited) config
  local name=$1 port_var="RECEIVER_PORT_${1^^}" port
  port=${!port_var}
  kill "$(cat "$LAB/$name/pid")"
  wait "$(cat "$LAB/$name/pid")" 2>/dev/null || true
  sed -i "s/^listen = .*/listen = 127.0.0.1:$port/" "$LAB/$name/receiver.conf"
  "$GW" receive --config "$LAB/$name/receiver.conf" 2>>"$LAB/$name/receiver.log" &
  LAB_PIDS+=($!)
  echo $! > "$LAB/$name/pid"
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
}

lab_receiver housing "$ORGNR_HOUSING"
lab_receiver nav "$ORGNR_NAV"
lab_receiver health "$ORGNR_HEALTH"
lab_receiver prison "$ORGNR_PRISON"
lab_gateway_config
cat >> "$cfg" <<CONF

[endpoint archive]
orgnr = $ORGNR_NAV
services = school
municipalities = 0301
url = https://127.0.0.1:9/notices
trust = $PKI/expired.pem
CONF
# health refuses us (403); prison is down.
sed -i "s/^allow = .*/allow = $ORGNR_NAV/" "$LAB/health/receiver.conf"
restart_receiver health
kill "$(cat "$LAB/prison/pid")"
wait "$(cat "$LAB/prison/pid")" 2>/dev/null || true

lab_drop "$SRC"/spool/demo/*.xml
check "gateway send runs until idle" lab_send

health_failed=$(msg_of KDI-2027-004101 health)
nav_msg=$(msg_of KDI-2027-004101 nav)
prison_msg=$(msg_of KDI-2027-004103 prison)
held_msg=$(msg_of KDI-2027-004102 health)
check "mixed outcomes: health failed" eq "$(state_of KDI-2027-004101 health | awk '{print $1}')" failed
check "mixed outcomes: nav delivered" eq "$(state_of KDI-2027-004101 nav)" delivered
check "mixed outcomes: prison queued" eq "$(state_of KDI-2027-004103 prison | awk '{print $1}')" queued
check "mixed outcomes: refusal held" eq "$(state_of KDI-2027-004102 health)" "held: no consent"

# --- status -------------------------------------------------------------------
status=$(G status || true)
check "status exits 0" eq "$(rc_of G status)" 0
check "status counts failed" has "$status" '^  failed +[1-9]'
check "status: prison backlog and failures" \
  has "$status" '^  prison +backlog 1 +last success never +consecutive failures [1-9]'
check "status: nav has a last success" has "$status" '^  nav +backlog 0 +last success 20'
check "status names the expired anchor" has "$status" 'endpoint archive trust.*EXPIRED'
check "status --json parses" bash -c "G() { '$GW' \"\$1\" --config '$cfg' \"\${@:2}\"; }; G status --json | python3 -c '
import json,sys
d=json.load(sys.stdin)
assert d[\"counts\"][\"failed\"]>=1, d
p=[e for e in d[\"endpoints\"] if e[\"name\"]==\"prison\"][0]
assert p[\"queued\"]==1 and p[\"consecutive_failures\"]>=1 and p[\"last_success\"] is None, p
c=[c for c in d[\"certificates\"] if c[\"role\"]==\"endpoint archive trust\"][0]
assert c[\"days_left\"]<0, c
'"

# --- list and show ------------------------------------------------------------
check "list --state failed names the health message" bash -c "G() { '$GW' \"\$1\" --config '$cfg' \"\${@:2}\"; }; G list --state failed | grep -q '^$health_failed'"
check "list --json parses" bash -c "'$GW' list --config '$cfg' --json | python3 -c 'import json,sys; assert len(json.load(sys.stdin))==11'"
check "list --state bogus is a usage error" eq "$(rc_of G list --state bogus)" 2
show=$(G show "$nav_msg" || true)
check "show message: attempt and verified receipt" \
  has "$show" '^  attempt .* delivered'
check "show message: its verified receipt" has "$show" 'receipt   accepted, signature verified'
check "show failed message: reason names the 403" bash -c "'$GW' show --config '$cfg' '$health_failed' | grep -q '403'"
check "show notice: revisions and recipients" \
  bash -c "'$GW' show --config '$cfg' KDI-2027-004102 | grep -q '^revision  1 release' && '$GW' show --config '$cfg' KDI-2027-004102 | grep -q 'held: no consent'"
check "show --json (message) parses" bash -c "'$GW' show --config '$cfg' '$nav_msg' --json | python3 -c '
import json,sys
d=json.load(sys.stdin); assert d[\"type\"]==\"message\" and d[\"receipt\"][\"verified\"] and d[\"attempts\"], d'"
check "show --json (notice) parses" bash -c "'$GW' show --config '$cfg' KDI-2027-004101 --json | python3 -c '
import json,sys
d=json.load(sys.stdin); assert d[\"type\"]==\"notice\" and len(d[\"messages\"])==3, d'"
check "show unknown id: exit 1" eq "$(rc_of G show no-such-id)" 1

# --- export and verify --------------------------------------------------------
G export "$nav_msg" --message > "$LAB/nav.message.xml"
G export "$nav_msg" --receipt > "$LAB/nav.receipt.xml"
"$GW" inbox export "$nav_msg" --message --config "$LAB/nav/receiver.conf" > "$LAB/nav.ev.message.xml"
"$GW" inbox export "$nav_msg" --receipt --config "$LAB/nav/receiver.conf" > "$LAB/nav.ev.receipt.xml"
check "export --message equals the partner's evidence" \
  cmp -s "$LAB/nav.message.xml" "$LAB/nav.ev.message.xml"
check "export --receipt equals the receipt the partner answered" \
  cmp -s "$LAB/nav.receipt.xml" "$LAB/nav.ev.receipt.xml"
check "export needs --message or --receipt" eq "$(rc_of G export "$nav_msg")" 2
check "export of a held message: exit 1" eq "$(rc_of G export "$held_msg" --message)" 1
check "export of an unknown message: exit 1" eq "$(rc_of G export no-such --receipt)" 1
out=$(G verify "$LAB/nav.receipt.xml" || true)
check "verify receipt: exit 0" eq "$(rc_of G verify "$LAB/nav.receipt.xml")" 0
check "verify receipt names nav and the bytes sent" \
  has "$out" "signed by organisation $ORGNR_NAV, status accepted"
check "verify receipt: it acknowledges the bytes sent" has "$out" 'acknowledges exactly the bytes sent'
out=$(G verify "$LAB/nav.message.xml" || true)
check "verify message names the gateway" has "$out" "signed by organisation $ORGNR_GATEWAY"
sed 's/<\/Message>/<!-- x --><\/Message>/; s/revision="1"/revision="2"/' "$LAB/nav.message.xml" > "$LAB/changed.xml"
check "verify of a changed copy: exit 1" eq "$(rc_of G verify "$LAB/changed.xml")" 1
echo '<x/>' > "$LAB/other.xml"
check "verify of something else: exit 1" eq "$(rc_of G verify "$LAB/other.xml")" 1

# --- retry and cancel ---------------------------------------------------------
attempts_before=$(G show "$health_failed" | grep -c '^  attempt')
check "retry of a delivered message is refused" eq "$(rc_of G retry "$nav_msg")" 1
check "the refusal says why" bash -c "'$GW' retry --config '$cfg' '$nav_msg' 2>&1 | grep -q 'is delivered, not failed'"
sed -i "s/^allow = .*/allow = $ORGNR_GATEWAY/" "$LAB/health/receiver.conf"
restart_receiver health
# As if it had failed at its horizon: the retry must still run past the
# release date (2027-11-16): to the end of the next day in Oslo (SPEC 9),
# not only retry_horizon_days (14) from now.
sqlite3 "$db" "UPDATE messages SET deadline_ms = 1 WHERE message_id = '$health_failed'"
retry_out=$(G retry "$health_failed" 2>&1) && retry_rc=0 || retry_rc=$?
check "retry of the failed message: exit 0" eq "$retry_rc" 0
check "it is queued again" eq "$(state_of KDI-2027-004101 health | awk '{print $1}')" queued
after_release_day=$(( $(date -ud 2027-11-17T23:00:00Z +%s) * 1000 ))
check "its horizon runs to the end of the day after the release date" \
  eq "$(sqlite3 "$db" "SELECT deadline_ms FROM messages WHERE message_id = '$health_failed'")" "$after_release_day"
check "and the command says until when" hasf "$retry_out" "it will be retried until 2027-11-17T23:00:00Z"
check "retry after the partner is fixed delivers" lab_send
check "the retried message is delivered" eq "$(state_of KDI-2027-004101 health)" delivered
check "its earlier attempts are kept" test "$(G show "$health_failed" | grep -c '^  attempt')" -gt "$attempts_before"
check "cancel of the queued transfer: exit 0" eq "$(rc_of G cancel "$prison_msg")" 0
check "it is cancelled" eq "$(state_of KDI-2027-004103 prison | awk '{print $1}')" cancelled
check "cancel of a delivered message is refused" eq "$(rc_of G cancel "$nav_msg")" 1
check "the refusal says delivered" bash -c "'$GW' cancel --config '$cfg' '$nav_msg' 2>&1 | grep -q 'is delivered'"
check "cancel of an unknown message: exit 1" eq "$(rc_of G cancel no-such)" 1

# --- report -------------------------------------------------------------------
check "report timeliness: exit 0" eq "$(rc_of G report timeliness)" 0
check "report --json: components add up, the refusal counted" bash -c "'$GW' report timeliness --config '$cfg' --json | python3 -c '
import json,sys
rows=json.load(sys.stdin); assert rows, rows
for r in rows:
    assert r[\"recipients\"]==sum(r[k] for k in (\"reached\",\"late\",\"held_no_consent\",\"held_other\",\"failed\",\"pending\",\"cancelled\")), r
assert sum(r[\"held_no_consent\"] for r in rows)==1, rows
assert sum(r[\"notices\"] for r in rows)==4, rows
'"
check "report with a bad date: exit 2" eq "$(rc_of G report timeliness --from 2027-13-01)" 2
check "report of an empty period" bash -c "'$GW' report timeliness --config '$cfg' --from 1990-01-01 --to 1990-12-31 | grep -q 'no release notices'"

# --- usage and help -----------------------------------------------------------
for c in status list show retry cancel verify export audit report; do
  check "$c --help: exit 0" eq "$(rc_of "$GW" "$c" --help)" 0
done
check "no --config: exit 2" eq "$(rc_of "$GW" status)" 2
check "unknown option: exit 2" eq "$(rc_of G status --bogus)" 2
check "audit without verify: exit 2" eq "$(rc_of G audit)" 2
check "missing config file: exit 2" eq "$(rc_of "$GW" status --config "$LAB/none.conf")" 2
check "an extra operand: exit 2" eq "$(rc_of G status extra)" 2
check "... saying which" hasf "$(G status extra 2>&1 || true)" "gateway status: unexpected argument 'extra'"
check "show without an ID says so" hasf "$(G show 2>&1 || true)" "gateway show: ID is required"
check "audit bogus says what is known" hasf "$(G audit bogus 2>&1 || true)" "(gateway audit verify)"
check "... even without --config" hasf "$("$GW" audit bogus 2>&1 || true)" "(gateway audit verify)"
# A configuration whose database does not exist: no empty store made, exit 1.
sed "s#^db = .*#db = $LAB/nowhere/gateway.db#" "$cfg" > "$LAB/nowhere.conf"
check "status on a missing database: exit 1" eq "$(rc_of "$GW" status --config "$LAB/nowhere.conf")" 1
check "... saying so" hasf "$("$GW" list --config "$LAB/nowhere.conf" 2>&1 || true)" "no database at $LAB/nowhere/gateway.db"
check "... and nothing was created" test ! -e "$LAB/nowhere"
# The allocator the binary runs on (CMake GW_JEMALLOC; the sanitizers bring their own).
version_out=$("$GW" version)
check "version: the gateway's version" has "$version_out" '^gateway [0-9]'
if ldd "$GW" | grep -q 'libasan\.so'; then
  check "version: a sanitizer build names the C library's malloc" has "$version_out" "^allocator: the C library's malloc$"
else
  check "version: jemalloc, read from the allocator itself" has "$version_out" '^allocator: jemalloc [0-9]'
fi

# --- audit trail --------------------------------------------------------------
out=$(G audit verify || true)
check "audit verify: intact" has "$out" '^audit trail intact'
check "audit verify --json" bash -c "'$GW' audit verify --config '$cfg' --json | python3 -c '
import json,sys
d=json.load(sys.stdin); assert d[\"intact\"] and d[\"rows\"]>20 and d[\"bad_row\"] is None, d'"
last=$(sqlite3 "$db" 'SELECT max(seq) FROM audit')
head_line=$(grep -h 'event=audit-head' "$LAB"/gateway/*.log | tail -n 1)
head_arg="$(sed 's/.*seq=\([0-9]*\).*hash=\([0-9a-f]*\).*/\1:\2/' <<<"$head_line")"
logseq=${head_arg%%:*}
# The daemon logged the head of its last commit; the operator's cancel came after.
check "the log's last head is a row of the table" \
  eq "$(sqlite3 "$db" "SELECT seq || ':' || hash FROM audit WHERE seq = $logseq")" "$head_arg"
check "audit verify --head from the log: exit 0" eq "$(rc_of G audit verify --head "$head_arg")" 0
check "... and says what it does not cover" \
  has "$(G audit verify --head "$head_arg")" "^$((last - logseq)) rows after the given head"
check "the events include the operator's retry and cancel" \
  eq "$(sqlite3 "$db" "SELECT count(*) FROM audit WHERE event IN ('retry','cancel') AND detail LIKE 'by operator uid=%'")" 2
check "a plain UPDATE of the trail is refused by the database" \
  bash -c "! sqlite3 '$db' \"UPDATE audit SET detail = 'x' WHERE seq = 3\" 2>/dev/null"

cp "$db" "$LAB/orig.db"
cp "$db.audit-head" "$LAB/orig.head"
restore() { rm -f "$db-wal" "$db-shm"; cp "$LAB/orig.db" "$db"; cp "$LAB/orig.head" "$db.audit-head"; }
untrigger="DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;"
# The hash of row $2 recomputed from its columns (docs/OPERATIONS.md).
row_hash() {
  sqlite3 "$1" "SELECT prev_hash
    || length(seq) || ':' || seq || ',' || length(time_ms) || ':' || time_ms || ','
    || length(CAST(event AS BLOB)) || ':' || event || ','
    || length(CAST(subject AS BLOB)) || ':' || subject || ','
    || length(CAST(from_state AS BLOB)) || ':' || from_state || ','
    || length(CAST(to_state AS BLOB)) || ':' || to_state || ','
    || length(CAST(detail AS BLOB)) || ':' || detail || ','
    FROM audit WHERE seq = $2" | head -c -1 | sha256sum | cut -d' ' -f1
}
check "the documented recipe recomputes a row's hash" \
  eq "$(row_hash "$db" 5)" "$(sqlite3 "$db" 'SELECT hash FROM audit WHERE seq = 5')"
tampered() { # what, expected sentence part
  local out rc=0
  out=$(G audit verify 2>&1) || rc=$?
  check "$1: exit 1" eq "$rc" 1
  check "$1: named" hasf "$out" "$2"
  restore
}

sqlite3 "$db" "$untrigger UPDATE audit SET detail = 'nothing happened' WHERE seq = 5"
tampered "a changed detail" "audit row 5 was altered"

sqlite3 "$db" "$untrigger DELETE FROM audit WHERE seq = 6"
tampered "a removed middle row" "audit row 6 is missing (chain gap between 5 and 7)"

# A forged row 6 in place of the real one, hashed correctly: row 7 no longer chains.
sqlite3 "$db" "$untrigger DELETE FROM audit WHERE seq = 6;
  INSERT INTO audit SELECT 6, time_ms, 'state', subject, 'queued', 'cancelled', 'forged', hash, ''
  FROM audit WHERE seq = 5"
sqlite3 "$db" "DROP TRIGGER IF EXISTS audit_no_update; UPDATE audit SET hash = '$(row_hash "$db" 6)' WHERE seq = 6"
tampered "a forged middle row" "audit row 7 was inserted or its predecessor 6 altered"

# A forged row appended after the last, hashed correctly: it follows the recorded head.
sqlite3 "$db" "$untrigger INSERT INTO audit SELECT seq + 1, time_ms, 'retry', subject, 'failed',
  'queued', 'forged', hash, '' FROM audit WHERE seq = $last"
sqlite3 "$db" "UPDATE audit SET hash = '$(row_hash "$db" $((last + 1)))' WHERE seq = $((last + 1))"
tampered "a forged row at the end" "audit row $((last + 1)) was inserted after the head"

sqlite3 "$db" "$untrigger DELETE FROM audit WHERE seq > $((last - 2))"
tampered "the last rows removed" "audit rows $((last - 1)) to $last are missing from the end"

sqlite3 "$db" "$untrigger DELETE FROM audit WHERE seq > $((last - 2))"
rm -f "$db.audit-head"
tampered "the last rows and the head file removed" "no head is recorded"

sqlite3 "$db" "$untrigger DELETE FROM audit WHERE seq > $((logseq - 2))"
rm -f "$db.audit-head"
out=$(G audit verify --head "$head_arg" 2>&1 || true)
check "... caught against the head from the log" \
  hasf "$out" "audit rows $((logseq - 1)) to $logseq are missing from the end"
restore

check "restored: intact again" eq "$(rc_of G audit verify)" 0

# --- list --late / --weekend-release --------------------------------------------
# A release next Saturday (Oslo): inside the 14-day lead time and a weekend release.
saturday=$(TZ=Europe/Oslo date -d 'next saturday' +%F)
sed -e 's/id="KDI-2027-004101"/id="KDI-2027-009901"/' \
    -e "s/<Release date=\"[0-9-]*\"/<Release date=\"$saturday\"/" \
    "$SRC/spool/demo/01-release-full-consent.xml" > "$LAB/saturday.xml"
lab_drop "$LAB/saturday.xml"
check "the Saturday release is taken in" lab_send
late=$(G list --late)
check "list --late names the late release" hasf "$late" "KDI-2027-009901"
check "... and not the releases a year away" bash -c "! grep -q KDI-2027-0041 <<<'$late'"
check "list --late --state delivered: delivered rows only" \
  bash -c "G() { '$GW' \"\$1\" --config '$cfg' \"\${@:2}\"; }; G list --late --state delivered | awk '{print \$6}' | sort -u | grep -qx delivered"
today=$(TZ=Europe/Oslo date +%F)
want=$(sqlite3 "$db" "SELECT count(*) FROM messages m JOIN notices n USING (notice_id, revision)
  WHERE n.weekend_release = 1 AND m.event_date >= '$today'")
weekend=$(G list --weekend-release)
check "list --weekend-release: one row per message of a flagged notice still to come" \
  eq "$(grep -c . <<<"$weekend")" "$want"
check "... the Saturday release among them" hasf "$weekend" "KDI-2027-009901"
check "list --late --weekend-release together: usage error" \
  eq "$(rc_of G list --late --weekend-release)" 2

# --- texts longer than a message keeps -------------------------------------------
# cancel refuses a reason over 255 bytes (it would be cut when read back);
# a database with longer texts (an older version stored any length) still
# reads everywhere, cut between letters; a withdrawal of such a notice,
# which lists the notice's messages, is taken in.
oe=$(printf '\303\270') # a two-byte letter
long=$(head -c 280 /dev/zero | tr '\0' x)
rc=0
out=$(G cancel "$held_msg" --reason "$long" 2>&1) || rc=$?
check "cancel with a 280-byte reason: exit 2" eq "$rc" 2
check "... says how long it is and what fits" hasf "$out" "280 bytes long, but at most 255 bytes"
check "... nothing was cancelled" eq "$(state_of KDI-2027-004102 health)" "held: no consent"
r255="$(printf "$oe%.0s" $(seq 1 127))x"
check "cancel with a 255-byte reason: exit 0" eq "$(rc_of G cancel "$held_msg" --reason "$r255")" 0
check "... kept whole" eq "$(sqlite3 "$db" "SELECT reason FROM messages WHERE message_id='$held_msg'")" "$r255"
sqlite3 "$db" "UPDATE messages SET reason = replace(hex(zeroblob(140)), '00', CAST(X'C3B8' AS TEXT))
    || 'END' WHERE message_id = '$held_msg';
  UPDATE attempts SET error = 'x' || replace(hex(zeroblob(200)), '00', CAST(X'C3B8' AS TEXT))
    WHERE message_id = '$health_failed' AND outcome <> 'delivered'"
for c in list "list --json" "show $held_msg" "show $health_failed" "show KDI-2027-004102" \
  "show KDI-2027-004102 --json" status "report timeliness"; do
  # shellcheck disable=SC2086 # the words of $c are the command's arguments
  check "long texts in the database: $c exits 0" eq "$(rc_of G $c)" 0
done
check "show cuts a long reason between letters" bash -c "'$GW' show --config '$cfg' '$held_msg' | python3 -c '
import sys
text = sys.stdin.buffer.read().decode(\"utf-8\")  # strict: a letter cut in two fails
r = [l for l in text.splitlines() if l.startswith(\"reason\")][0].split(None, 1)[1]
assert r == \"\\u00f8\" * 127, (len(r.encode()), r)
'"
check "show cuts a long attempt error between letters" bash -c "'$GW' show --config '$cfg' '$health_failed' | python3 -c '
import sys
text = sys.stdin.buffer.read().decode(\"utf-8\")
assert \"x\" + \"\\u00f8\" * 127 in text, text
'"
cat > "$LAB/withdraw-004102.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<Notice xmlns="urn:x-notice-gateway:notice:1" id="KDI-2027-004102" revision="2" kind="withdrawal">
  <Issued>2026-11-21T10:00:00+01:00</Issued>
  <Sender orgnr="974760673" unit="Oslo fengsel, avdeling C"/>
  <Withdrawal reason="release-cancelled"/>
</Notice>
XML
lab_drop "$LAB/withdraw-004102.xml"
rc=0
LAB_MAX_SECONDS=30 lab_send || rc=$?
check "a withdrawal of that notice: the run ends, exit 0" eq "$rc" 0
check "... the file left incoming" eq "$(find "$LAB/gateway/spool/incoming/new" -type f | wc -l)" 0
check "... it was not rejected" eq "$(find "$LAB/gateway/spool/rejected" -name 'withdraw-*' 2>/dev/null | wc -l)" 0
withdrawn_to() { G list --notice KDI-2027-004102 | awk -v s="$1" '$3 == 2 && $4 == s {print $6}'; }
check "... nav, who had it, is told" eq "$(withdrawn_to nav)" delivered
check "... housing, who had it, is told" eq "$(withdrawn_to housing)" delivered
finish
