#!/usr/bin/env bash
# it_delivery: the whole road with real processes over loopback mutual TLS.
# The demo notices go in; each consented recipient must get exactly one inbox
# item with only what it may see, the gateway must hold a verified receipt for
# each, the refusal must show as "held: no consent", and the received messages
# and receipts must verify with the xmlsec1 command. No nin in any log.
. "$(dirname "$0")/common.sh"

lab_receiver housing "$ORGNR_HOUSING"
lab_receiver nav "$ORGNR_NAV"
lab_receiver health "$ORGNR_HEALTH"
lab_receiver prison "$ORGNR_PRISON"
lab_gateway_config
lab_drop "$SRC"/spool/demo/*.xml
cp "$SRC/tests/data/notices/bad-nin-check-digit.xml" "$LAB/bad.xml"
lab_drop "$LAB/bad.xml"
check "gateway send runs until idle" lab_send

cfg="$LAB/gateway/gateway.conf"
check "full consent: housing delivered" eq "$(state_of KDI-2027-004101 housing)" delivered
check "full consent: nav delivered" eq "$(state_of KDI-2027-004101 nav)" delivered
check "full consent: health delivered" eq "$(state_of KDI-2027-004101 health)" delivered
check "refusal: health held, no consent" eq "$(state_of KDI-2027-004102 health)" "held: no consent"
check "refusal: nav still delivered" eq "$(state_of KDI-2027-004102 nav)" delivered
check "transfer: prison delivered" eq "$(state_of KDI-2027-004103 prison)" delivered
check "direct orgnr: health delivered" eq "$(state_of KDI-2027-004105 health)" delivered
check "ten delivered in all" eq "$("$GW" list --config "$cfg" --state delivered | wc -l)" 10

check "housing inbox has 3 items" eq "$(count_inbox housing)" 3
check "nav inbox has 4 items" eq "$(count_inbox nav)" 4
check "health inbox has 2 items (the refusal held)" eq "$(count_inbox health)" 2
check "prison inbox has 1 item" eq "$(count_inbox prison)" 1

# What NAV saw of the refusal notice: granted Needs only, nothing about others.
nav_item=$(grep -l 'KDI-2027-004102' "$LAB"/nav/inbox/new/*.xml)
check "nav copy keeps its granted need" grep -q 'category="employment"' "$nav_item"
check "nav copy lacks the substance-use need" bash -c "! grep -q 'substance-use' '$nav_item'"
check "nav copy lacks Recipients and Consent" bash -c "! grep -qE '<(Recipients|Consent)' '$nav_item'"

# Every delivered message has a receipt the gateway verified and stored.
verified_all=yes
for msg in $("$GW" list --config "$cfg" --state delivered | awk '{print $1}'); do
  "$GW" show --config "$cfg" "$msg" | grep -q 'receipt   accepted, signature verified' ||
    verified_all="no ($msg)"
done
check "every delivered message holds a verified accepted receipt" eq "$verified_all" yes

# The evidence verifies with the xmlsec1 command against the CA.
xmlsec_all=yes
for partner in housing nav health prison; do
  lab_export_evidence "$partner"
done
for f in "$LAB"/*/evidence/*.xml; do
  [ -f "$f" ] || continue
  xmlsec1 --verify --trusted-pem "$PKI/ca.pem" --enabled-reference-uris empty \
    --enabled-key-data x509 "$f" >/dev/null 2>&1 || xmlsec_all="no ($f)"
done
check "received messages and receipts verify with xmlsec1" eq "$xmlsec_all" yes
check "evidence exists" test "$(find "$LAB" -path '*/evidence/*' -name '*.receipt.xml' | wc -l)" -ge 10

# The spool: accepted files in processed/, the bad one rejected with a reason.
spool="$LAB/gateway/spool"
check "incoming/new is empty" eq "$(find "$spool/incoming/new" -type f | wc -l)" 0
check "five notices processed" eq "$(find "$spool/processed" -type f | wc -l)" 5
check "bad notice kept in rejected/" test -f "$spool/rejected/bad.xml"
check "reason file names the code" eq "$(head -n1 "$spool/rejected/bad.xml.reason")" invalid-nin

# Dropping the same bytes again is harmless.
cp "$SRC/spool/demo/01-release-full-consent.xml" "$LAB/again.xml"
lab_drop "$LAB/again.xml"
check "second run until idle" lab_send
check "duplicate bytes make no new message" eq "$("$GW" list --config "$cfg" | wc -l)" 11
check "housing inbox still 3" eq "$(count_inbox housing)" 3

# No nin, in any log or reason file.
nins=$(grep -ho 'nin="[0-9]*"' "$SRC"/spool/demo/*.xml "$SRC/tests/data/notices/bad-nin-check-digit.xml" | tr -dc '0-9\n')
leak=no
for n in $nins; do
  if grep -rqs "$n" "$LAB"/*/*.log "$spool/rejected"/*.reason; then leak="yes"; fi
done
check "no nin in any log or reason file" eq "$leak" no

finish
