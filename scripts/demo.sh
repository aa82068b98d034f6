#!/usr/bin/env bash
# demo.sh BUILD_DIR: the whole road on loopback. Makes a development PKI,
# starts four partners' receivers (housing, NAV, health, another prison) and
# the gateway, drops the demo notices, waits for verified receipts, prints
# who got what, stops everything, and leaves build/demo/ for inspection:
#   build/demo/pki/ca.pem                   the CA to verify with
#   build/demo/<partner>/inbox/new/*.xml    what each partner's system gets
#   build/demo/<partner>/inbox/evidence/*.message.xml, *.receipt.xml
set -euo pipefail

build=${1:-build}
SRC=$(cd "$(dirname "$0")/.." && pwd)
GW="$SRC/$build/bin/gateway"
LAB="$SRC/$build/demo"
PKI="$LAB/pki"
rm -rf "$LAB"
mkdir -p "$LAB"
"$SRC/certs/mkpki.sh" "$PKI"
# shellcheck source=lab.sh
. "$SRC/scripts/lab.sh"
lab_init

echo "== starting receivers (housing, nav, health, prison) on 127.0.0.1"
lab_receiver housing "$ORGNR_HOUSING"
lab_receiver nav "$ORGNR_NAV"
lab_receiver health "$ORGNR_HEALTH"
lab_receiver prison "$ORGNR_PRISON"
lab_gateway_config

echo "== dropping $(ls "$SRC"/spool/demo/*.xml | wc -l) notices into the spool"
lab_drop "$SRC"/spool/demo/*.xml
echo "== running the gateway until every due message has an answer"
lab_send
lab_stop
for partner in housing nav health prison; do
  lab_export_evidence "$partner"
done

echo
printf '%-20s %-9s %-10s %-20s %s\n' NOTICE SERVICE RECIPIENT STATE "RECEIPT VERIFIED"
"$GW" list --config "$LAB/gateway/gateway.conf" | while read -r msg notice rev service recipient state rest; do
  label=$state
  [ "$state" = "held:" ] && label="held: $rest"
  verified="-"
  if [ "$state" = delivered ]; then
    verified="no"
    for partner in housing nav health prison; do
      r="$LAB/$partner/evidence/$msg.receipt.xml"
      [ -f "$r" ] || continue
      if "$GW" show --config "$LAB/gateway/gateway.conf" "$msg" | grep -q 'signature verified' &&
         xmlsec1 --verify --trusted-pem "$PKI/ca.pem" --enabled-reference-uris empty "$r" >/dev/null 2>&1 &&
         xmlsec1 --verify --trusted-pem "$PKI/ca.pem" --enabled-reference-uris empty \
           "$LAB/$partner/evidence/$msg.message.xml" >/dev/null 2>&1; then
        verified="yes (xmlsec1 too)"
      fi
    done
  fi
  printf '%-20s %-9s %-10s %-20s %s\n' "$notice" "$service" "$recipient" "$label" "$verified"
done

echo
echo "== partners' inboxes"
for partner in housing nav health prison; do
  printf '  %-8s %s item(s) in %s\n' "$partner" \
    "$(find "$LAB/$partner/inbox/new" -name '*.xml' 2>/dev/null | wc -l)" "$LAB/$partner/inbox/new"
done
echo
echo "Each partner's evidence (the bytes it received and the receipt it answered) is kept"
echo "in its inbox database; the demo exported it with 'gateway inbox export'. Verify it yourself:"
echo "  xmlsec1 --verify --trusted-pem $build/demo/pki/ca.pem --enabled-reference-uris empty $build/demo/nav/evidence/*.receipt.xml"

undelivered=$("$GW" list --config "$LAB/gateway/gateway.conf" | awk '$6 != "delivered" && $6 != "held:"' | wc -l)
if [ "$undelivered" -ne 0 ]; then
  echo "demo: $undelivered consented recipient(s) were not delivered; see $build/demo/gateway/gateway.log" >&2
  exit 1
fi
echo "demo: every consented recipient delivered with a verified receipt."
