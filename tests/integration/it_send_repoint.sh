#!/usr/bin/env bash
# it_send_repoint: an endpoint name pointed at another organisation while a
# message addressed through it still waits. The message (signed for its
# recipient, carrying personal data) must not reach the new organisation:
# it is held, the log says why, and once another endpoint of its recipient
# is configured it is built and signed again for that endpoint (its
# encryption, its consent rule: the old bytes must not simply move) under
# the same MessageId, and delivered.
#   1. nav is down: the release's nav copy stays queued.
#   2. [endpoint nav] now names health's organisation at health's receiver
#      (its TLS certificate matches, so nothing else would stop the POST):
#      the copy is held "no endpoint: 'nav' now names organisation ...",
#      health receives nothing more.
#   3. [endpoint nav-office] for NAV's organisation, with encryption, nav
#      back up (with the key): the copy is built again for nav-office,
#      encrypted this time, and delivered to NAV, once.
. "$(dirname "$0")/common.sh"

cfg="$LAB/gateway/gateway.conf"
db="$LAB/gateway/gateway.db"
msg_of() { "$GW" list --config "$cfg" --notice "$1" | awk -v s="$2" '$4 == s {print $1}'; }
field() { sqlite3 "$db" "SELECT $2 FROM messages WHERE message_id = '$1'"; }

lab_receiver housing "$ORGNR_HOUSING"
lab_receiver nav "$ORGNR_NAV"
lab_receiver health "$ORGNR_HEALTH"
lab_gateway_config
nav_port=$RECEIVER_PORT_NAV
kill "$(cat "$LAB/nav/pid")"
wait "$(cat "$LAB/nav/pid")" 2>/dev/null || true

# --- 1. the nav copy waits ---------------------------------------------------------
lab_drop "$SRC/spool/demo/01-release-full-consent.xml"
check "first run ends" lab_send
nav_msg=$(msg_of KDI-2027-004101 nav)
check "the nav copy is queued" eq "$(field "$nav_msg" state)" queued
check "... addressed to NAV" eq "$(field "$nav_msg" recipient_orgnr)" "$ORGNR_NAV"
health_items=$(count_inbox health)
attempts_before=$(sqlite3 "$db" "SELECT count(*) FROM attempts WHERE message_id = '$nav_msg'")

# --- 2. the name now points at another organisation --------------------------------
python3 - "$cfg" "$ORGNR_HEALTH" "$RECEIVER_PORT_HEALTH" <<'PY'
import re, sys
path, org, port = sys.argv[1:]
text = open(path).read()
head, sep, rest = text.partition("[endpoint nav]")
section, nxt, tail = rest.partition("\n[")
section = re.sub(r"(?m)^orgnr = .*$", "orgnr = " + org, section)
section = re.sub(r"(?m)^url = .*$", "url = https://127.0.0.1:%s/notices" % port, section)
open(path, "w").write(head + sep + section + nxt + tail)
PY
sqlite3 "$db" "UPDATE messages SET next_attempt_ms = 0 WHERE message_id = '$nav_msg'"
check "second run ends" lab_send
check "the nav copy is held, not sent" eq "$(field "$nav_msg" state)" held
check "... as a recipient without an endpoint (no attempt reached NAV)" \
  eq "$(field "$nav_msg" reason)" "no endpoint"
check "... and the log says why" grep -q "event=held msg=$nav_msg endpoint=nav reason=\"no endpoint: 'nav' now names organisation $ORGNR_HEALTH, not the recipient $ORGNR_NAV\"" "$LAB/gateway/gateway.log"
check "health received nothing more" eq "$(count_inbox health)" "$health_items"
check "no attempt was made: nothing went to health" \
  eq "$(sqlite3 "$db" "SELECT count(*) FROM attempts WHERE message_id = '$nav_msg'")" "$attempts_before"
check "... whose receiver never saw that MessageId" bash -c "! grep -q '$nav_msg' '$LAB/health/receiver.log'"

# --- 3. NAV configured under another name ------------------------------------------
cat >> "$cfg" <<CONF

[endpoint nav-office]
orgnr = $ORGNR_NAV
services = nav
url = https://127.0.0.1:$nav_port/notices
encrypt_cert = $PKI/nav.pem
CONF
sed -i "s/^listen = .*/listen = 127.0.0.1:$nav_port/" "$LAB/nav/receiver.conf"
echo "decrypt_key = $PKI/nav.key" >> "$LAB/nav/receiver.conf"
"$GW" receive --config "$LAB/nav/receiver.conf" 2>>"$LAB/nav/receiver.log" &
LAB_PIDS+=($!)
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$nav_port") 2>/dev/null && break
  sleep 0.05
done
check "third run ends" lab_send
check "the copy went through nav-office" eq "$(field "$nav_msg" endpoint)" nav-office
check "... built again for it: encrypted now" \
  bash -c "sqlite3 '$db' \"SELECT bytes FROM message_bytes WHERE message_id = '$nav_msg'\" | grep -q EncryptedData"
check "... and was delivered" eq "$(field "$nav_msg" state)" delivered
check "NAV has it once" eq "$(count_inbox nav)" 1
check "health still received nothing more" eq "$(count_inbox health)" "$health_items"
check "the audit trail records the move" \
  bash -c "sqlite3 '$db' \"SELECT detail FROM audit WHERE subject = '$nav_msg' AND event = 'released'\" | grep -q 'endpoint=nav-office'"
check "audit verify: intact" "$GW" audit verify --config "$cfg"
finish
