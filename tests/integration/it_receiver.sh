#!/usr/bin/env bash
# it_receiver: `gateway receive` end to end over real mutual TLS on loopback.
#
# The receiver runs as housing (958935420) and allows only the gateway
# (974760673). Messages are signed with the xmlsec1 command, sent with curl,
# and every signed receipt that comes back is verified with xmlsec1 against
# the development CA. Proves: accepted with one inbox item, duplicate with
# still one item and the first receipt kept as evidence, MessageId conflict,
# the TLS gate (no certificate, an organisation not allowed, expired, revoked
# and untrusted certificates), the size bound, malformed, tampered,
# wrong-signer, wrong-recipient and stale messages, 404/405, the header
# bound, the read timeout, the connection cap (refusal past it, eviction of
# connections without a handshake), a concurrent resend over two
# workers, a worker restart,
# `gateway inbox list|show|verify`, and a clean exit on SIGTERM.
#
# Environment (set by CTest): GW_GATEWAY, GW_PKI_DIR, GW_SOURCE_DIR.
set -euo pipefail

: "${GW_GATEWAY:?GW_GATEWAY must name the gateway executable}"
: "${GW_PKI_DIR:?GW_PKI_DIR must name the development PKI}"
: "${GW_SOURCE_DIR:?GW_SOURCE_DIR must name the source tree}"
PKI=$GW_PKI_DIR
SENDER=974760673
ME=958935420
OTHER=889960221
NIL_ID=00000000-0000-4000-8000-000000000000

work=$(mktemp -d "${TMPDIR:-/tmp}/it_receiver.XXXXXX")
pid=""
passed=0

cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    sleep 0.5
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  if [ -f "$work/receiver.log" ]; then
    echo "--- receiver log (last 40 lines)" >&2
    tail -n 40 "$work/receiver.log" >&2
  fi
  if [ -f "$work/resp.xml" ]; then
    echo "--- last response body" >&2
    head -c 2000 "$work/resp.xml" >&2
    echo >&2
  fi
  exit 1
}

ok() {
  passed=$((passed + 1))
  echo "ok $passed - $*"
}

new_id() { tr -d '\n' < /proc/sys/kernel/random/uuid; }
now_utc() { date -u +%Y-%m-%dT%H:%M:%SZ; }
digest_of() { openssl dgst -sha256 -binary "$1" | base64; }
count_items() { find "$work/inbox/new" -maxdepth 1 -type f -name '*.xml' | wc -l; }

# The text of the first element with this local name in an XML file.
xml_text() { xmllint --xpath "string(//*[local-name()='$2'])" "$1" 2>/dev/null || true; }
xml_attr() { xmllint --xpath "string(//*[local-name()='$2']/@$3)" "$1" 2>/dev/null || true; }

# ---- configuration and start -----------------------------------------------

cat > "$work/receiver.ini" <<EOF
[identity]
orgnr = $ME
key = $PKI/housing.key
cert = $PKI/housing.pem
trust = $PKI/ca.pem
crl = $PKI/ca.crl
schemas = $GW_SOURCE_DIR/schemas
log_level = info

[receiver]
listen = 127.0.0.1:8443
inbox = $work/inbox
db = $work/receiver.db
allow = $SENDER
window_days = 7
max_body = 65536
read_timeout = 3
max_connections = 16
workers = 2
EOF

"$GW_GATEWAY" receive --config "$work/receiver.ini" --port 0 --port-file "$work/port" \
  > "$work/receiver.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  [ -s "$work/port" ] && break
  kill -0 "$pid" 2>/dev/null || fail "the receiver exited at start-up"
  sleep 0.1
done
[ -s "$work/port" ] || fail "the receiver wrote no port file within 10 s"
port=$(tr -d '\n' < "$work/port")
url="https://127.0.0.1:$port/notices"
ok "receiver listening on port $port"

# ---- building and sending messages -------------------------------------------

# make_message OUT ID CREATED TO NEED-TEXT [SIGNER]
make_message() {
  local out=$1 id=$2 created=$3 to=$4 need=$5 signer=${6:-gateway}
  cat > "$work/tmpl.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Message xmlns="urn:x-notice-gateway:envelope:1">
  <Header>
    <MessageId>$id</MessageId>
    <Created>$created</Created>
    <From orgnr="$SENDER"/>
    <To orgnr="$to" service="housing"/>
    <NoticeRef id="KDI-2026-000123" revision="1" kind="release"/>
  </Header>
  <Body><Notice xmlns="urn:x-notice-gateway:notice:1" id="KDI-2026-000123" revision="1" kind="release">
      <Issued>2026-11-20T10:15:00+01:00</Issued>
      <Sender orgnr="$SENDER" unit="Oslo fengsel"/>
      <Contact name="Saksbehandler" phone="+47 22000000" email="post@example.org"/>
      <Person nin="01817000000" givenName="Test" familyName="Person"/>
      <Release date="2026-12-04" time="09:00" type="full-term" municipality="0301"/>
      <Needs><Need category="housing">$need</Need></Needs>
      <FollowUp individualPlan="false" coordinator="" responsibilityGroup="false"/>
    </Notice></Body>
  <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
    <ds:SignedInfo>
      <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
      <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
      <ds:Reference URI="">
        <ds:Transforms>
          <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
          <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
        </ds:Transforms>
        <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
        <ds:DigestValue/>
      </ds:Reference>
    </ds:SignedInfo>
    <ds:SignatureValue/>
    <ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo>
  </ds:Signature>
</Message>
EOF
  xmlsec1 --sign --privkey-pem "$PKI/$signer.key,$PKI/$signer.pem" --output "$out" \
    "$work/tmpl.xml" 2> "$work/xmlsec.err" || { cat "$work/xmlsec.err" >&2; fail "xmlsec1 --sign failed"; }
}

# post FILE [CLIENT] [URL] [METHOD]: sets $code ("000" when TLS or the
# connection failed); the body lands in $work/resp.xml.
post() {
  local file=$1 client=${2:-gateway} target=${3:-$url} method=${4:-POST}
  local auth=(--cert "$PKI/$client.pem" --key "$PKI/$client.key")
  [ "$client" = none ] && auth=()
  rm -f "$work/resp.xml"
  code=$(curl -sS --max-time 15 --cacert "$PKI/ca.pem" "${auth[@]}" -X "$method" \
    -H 'Content-Type: application/xml' --data-binary @"$file" \
    -o "$work/resp.xml" -w '%{http_code}' "$target" 2> "$work/curl.err") || code=000
}

# The response is a receipt signed by us that verifies with the CA alone.
receipt_verifies() {
  xmlsec1 --verify --trusted-pem "$PKI/ca.pem" --enabled-reference-uris empty \
    --enabled-key-data x509 "$work/resp.xml" > "$work/verify.out" 2>&1 ||
    { cat "$work/verify.out" >&2; fail "xmlsec1 does not verify the receipt ($1)"; }
}

# expect_receipt WHAT HTTP STATUS [REASON] [MESSAGE-ID] [SENT-FILE]
expect_receipt() {
  local what=$1 http=$2 status=$3 reason=${4:-} id=${5:-} sent=${6:-}
  [ "$code" = "$http" ] || fail "$what: HTTP $code, expected $http"
  [ "$(xml_text "$work/resp.xml" Status)" = "$status" ] ||
    fail "$what: Status '$(xml_text "$work/resp.xml" Status)', expected $status"
  if [ -n "$reason" ]; then
    [ "$(xml_attr "$work/resp.xml" Reason code)" = "$reason" ] ||
      fail "$what: Reason '$(xml_attr "$work/resp.xml" Reason code)', expected $reason"
  fi
  [ -z "$id" ] || [ "$(xml_text "$work/resp.xml" RefToMessageId)" = "$id" ] ||
    fail "$what: RefToMessageId '$(xml_text "$work/resp.xml" RefToMessageId)', expected $id"
  [ -z "$sent" ] || [ "$(xml_text "$work/resp.xml" MessageDigest)" = "$(digest_of "$sent")" ] ||
    fail "$what: MessageDigest does not match the bytes sent"
  [ "$(xml_attr "$work/resp.xml" Receiver orgnr)" = "$ME" ] || fail "$what: wrong Receiver"
  receipt_verifies "$what"
}

expect_no_body() {
  local what=$1 http=$2
  [ "$code" = "$http" ] || fail "$what: HTTP $code, expected $http"
  [ ! -s "$work/resp.xml" ] || fail "$what: expected no body"
}

# ---- accepted, duplicate, conflict -------------------------------------------

id=$(new_id)
make_message "$work/m1.xml" "$id" "$(now_utc)" "$ME" "Needs a flat."
post "$work/m1.xml"
expect_receipt accepted 200 accepted "" "$id" "$work/m1.xml"
cp "$work/resp.xml" "$work/receipt1.xml"
[ "$(count_items)" -eq 1 ] || fail "accepted: expected one inbox item, found $(count_items)"
item="$work/inbox/new/$id.xml"
[ -f "$item" ] || fail "accepted: no inbox/new/$id.xml"
xmllint --noout "$item" || fail "accepted: the inbox item is not well-formed"
[ "$(xmllint --xpath "name(/*)" "$item")" = Notice ] || fail "accepted: the item is not a Notice"
grep -q "Needs a flat." "$item" || fail "accepted: the item lost the notice content"
cmp -s "$work/m1.xml" "$work/inbox/evidence/$id.message.xml" ||
  fail "accepted: evidence differs from the bytes sent"
cmp -s "$work/receipt1.xml" "$work/inbox/evidence/$id.receipt.xml" ||
  fail "accepted: the stored receipt differs from the one answered"
ok "a signed message is accepted: one inbox item, evidence kept, receipt verifies with xmlsec1"

post "$work/m1.xml"
expect_receipt duplicate 200 duplicate "" "$id" "$work/m1.xml"
[ "$(count_items)" -eq 1 ] || fail "duplicate: expected one inbox item, found $(count_items)"
cmp -s "$work/receipt1.xml" "$work/inbox/evidence/$id.receipt.xml" ||
  fail "duplicate: the original receipt was replaced"
ok "the same bytes again: 200 duplicate with a new signed receipt, still one item"

make_message "$work/m1b.xml" "$id" "$(now_utc)" "$ME" "Other content."
post "$work/m1b.xml"
expect_receipt conflict 409 rejected message-id-conflict "$id" "$work/m1b.xml"
[ "$(count_items)" -eq 1 ] || fail "conflict: expected one inbox item"
ok "other bytes under the same MessageId: 409 message-id-conflict"

# ---- the TLS gate ------------------------------------------------------------

post "$work/m1.xml" none
[ "$code" = 000 ] || [ "$code" = 403 ] || fail "no client certificate: HTTP $code"
ok "no client certificate: refused (HTTP $code)"

post "$work/m1.xml" nav
expect_no_body "organisation not allowed" 403
ok "a client of an organisation not allowed: 403 without a body"

for bad in expired revoked untrusted; do
  post "$work/m1.xml" "$bad"
  [ "$code" = 000 ] || fail "$bad client certificate: HTTP $code, expected a TLS failure"
  ok "$bad client certificate: TLS handshake refused"
done

code=$(curl -sS --max-time 10 --tls-max 1.1 --cacert "$PKI/ca.pem" --cert "$PKI/gateway.pem" \
  --key "$PKI/gateway.key" -o /dev/null -w '%{http_code}' --data-binary @"$work/m1.xml" \
  "$url" 2>/dev/null) || code=000
[ "$code" = 000 ] || fail "TLS 1.1: HTTP $code, expected a refused handshake"
ok "TLS below 1.2: refused"

# ---- bounds and HTTP ---------------------------------------------------------

head -c 70000 /dev/zero | tr '\0' 'x' > "$work/big.xml"
post "$work/big.xml"
[ "$code" = 413 ] || fail "oversized: HTTP $code, expected 413"
ok "a body over max_body: 413"

post "$work/m1.xml" gateway "https://127.0.0.1:$port/other"
expect_no_body "unknown path" 404
post "$work/m1.xml" gateway "https://127.0.0.1:$port/" GET
expect_no_body "GET" 405
ok "unknown path 404, GET 405; POST on / is served as well:"
id2=$(new_id)
make_message "$work/m2.xml" "$id2" "$(now_utc)" "$ME" "Posted to the root path."
post "$work/m2.xml" gateway "https://127.0.0.1:$port/"
expect_receipt "root path" 200 accepted "" "$id2" "$work/m2.xml"
ok "POST / accepted"

start=$(date +%s)
exec 3<>"/dev/tcp/127.0.0.1/$port"
read -r -t 15 -u 3 _ || true
exec 3<&-
elapsed=$(( $(date +%s) - start ))
[ "$elapsed" -le 8 ] || fail "a silent connection was kept for $elapsed s (read_timeout 3)"
ok "a connection that sends nothing is closed after the read timeout (${elapsed}s)"

big_header=$(head -c 20000 /dev/zero | tr '\0' 'h')
code=$(curl -sS --max-time 10 --cacert "$PKI/ca.pem" --cert "$PKI/gateway.pem" --key "$PKI/gateway.key" \
  -H "X-Padding: $big_header" --data-binary @"$work/m1.xml" -o /dev/null -w '%{http_code}' \
  "$url" 2>/dev/null) || code=000
case "$code" in 4??) ;; *) fail "20 kB of headers: HTTP $code, expected a 4xx refusal" ;; esac
ok "headers over the header bound: refused with $code"

# ---- rejections with signed receipts -----------------------------------------

printf '<Message xmlns="urn:x-notice-gateway:envelope:1"><Header>' > "$work/bad.xml"
post "$work/bad.xml"
expect_receipt malformed 400 rejected malformed "$NIL_ID" "$work/bad.xml"
ok "malformed XML: 400 malformed, signed receipt naming the nil MessageId"

id3=$(new_id)
sed "s/Needs a flat./Tampered after signing./" "$work/m1.xml" |
  sed "s/$id/$id3/" > "$work/tampered.xml"
post "$work/tampered.xml"
expect_receipt tampered 400 rejected bad-signature "$id3" "$work/tampered.xml"
ok "bytes changed after signing: 400 bad-signature"

id4=$(new_id)
make_message "$work/m4.xml" "$id4" "$(now_utc)" "$ME" "Signed by someone else." housing
post "$work/m4.xml"
expect_receipt "other signer" 400 rejected sender-mismatch "$id4" "$work/m4.xml"
ok "signed by another organisation than From: 400 sender-mismatch"

id5=$(new_id)
make_message "$work/m5.xml" "$id5" "$(now_utc)" "$OTHER" "Meant for NAV."
post "$work/m5.xml"
expect_receipt "wrong recipient" 400 rejected wrong-recipient "$id5" "$work/m5.xml"
ok "To names another organisation: 400 wrong-recipient"

id6=$(new_id)
make_message "$work/m6.xml" "$id6" "$(date -u -d '-8 days' +%Y-%m-%dT%H:%M:%SZ)" "$ME" "Old."
post "$work/m6.xml"
expect_receipt stale 400 rejected stale "$id6" "$work/m6.xml"
id7=$(new_id)
make_message "$work/m7.xml" "$id7" "$(date -u -d '+10 minutes' +%Y-%m-%dT%H:%M:%SZ)" "$ME" "Future."
post "$work/m7.xml"
expect_receipt future 400 rejected stale "$id7" "$work/m7.xml"
ok "Created 8 days old or 10 minutes ahead: 400 stale"
[ "$(count_items)" -eq 2 ] || fail "rejections left inbox items: $(count_items)"

grep -q 'event=rejected reason=bad-signature' "$work/receiver.log" ||
  fail "rejections are not logged with their reason"
if grep -Eq '01817000000|givenName|familyName|Test Person' "$work/receiver.log"; then
  fail "the log holds personal data"
fi
ok "rejections are logged with reason and peer organisation, no personal data"

# ---- two workers, the same new message at once -------------------------------

id8=$(new_id)
make_message "$work/m8.xml" "$id8" "$(now_utc)" "$ME" "Sent twice at once."
curl_par() {
  curl -sS --max-time 15 --cacert "$PKI/ca.pem" --cert "$PKI/gateway.pem" --key "$PKI/gateway.key" \
    -H 'Content-Type: application/xml' --data-binary @"$work/m8.xml" -o "$1" -w '%{http_code}' "$url"
}
for n in 1 2 3 4; do curl_par "$work/par$n.xml" > "$work/par$n.code" & done
wait_ok=1
for job in $(jobs -p); do [ "$job" = "$pid" ] && continue; wait "$job" || wait_ok=0; done
[ "$wait_ok" = 1 ] || fail "a parallel resend failed"
accepted=0
for n in 1 2 3 4; do
  [ "$(cat "$work/par$n.code")" = 200 ] || fail "parallel resend $n: HTTP $(cat "$work/par$n.code")"
  s=$(xml_text "$work/par$n.xml" Status)
  [ "$s" = accepted ] && accepted=$((accepted + 1))
  [ "$s" = accepted ] || [ "$s" = duplicate ] || fail "parallel resend $n: status $s"
done
[ "$accepted" -eq 1 ] || fail "parallel resends: $accepted accepted, expected exactly 1"
[ "$(count_items)" -eq 3 ] || fail "parallel resends: expected 3 items, found $(count_items)"
ok "four concurrent sends of one new message: one accepted, three duplicates, one item"

# ---- a worker dies: the parent starts another --------------------------------

worker=$(pgrep -P "$pid" | head -n 1 || true)
[ -n "$worker" ] || fail "no worker processes under the receiver"
kill -KILL "$worker"
for _ in $(seq 1 50); do
  sleep 0.1
  [ "$(pgrep -P "$pid" | wc -l)" -eq 2 ] && ! kill -0 "$worker" 2>/dev/null && break
done
[ "$(pgrep -P "$pid" | wc -l)" -eq 2 ] || fail "the dead worker was not replaced"
post "$work/m1.xml"
expect_receipt "after restart" 200 duplicate "" "$id" "$work/m1.xml"
ok "a killed worker is replaced and service continues"

# ---- the connection cap (a second receiver: one worker, two connections) ----

sed -e "s/^max_connections = .*/max_connections = 2/" -e "s/^workers = .*/workers = 1/" \
  -e "s#^inbox = .*#inbox = $work/inbox2#" -e "s#^db = .*#db = $work/receiver2.db#" \
  "$work/receiver.ini" > "$work/receiver2.ini"
"$GW_GATEWAY" receive --config "$work/receiver2.ini" --port 0 --port-file "$work/port2" \
  > "$work/receiver2.log" 2>&1 &
pid2=$!
for _ in $(seq 1 100); do [ -s "$work/port2" ] && break; sleep 0.1; done
[ -s "$work/port2" ] || fail "the second receiver did not start"
port2=$(tr -d '\n' < "$work/port2")
url2="https://127.0.0.1:$port2/notices"
# Two connections that completed their TLS handshake (a verified client
# certificate) hold both places until their deadline (read_timeout 3 s).
hold() {
  (sleep 6) | timeout 8 openssl s_client -connect "127.0.0.1:$port2" -CAfile "$PKI/ca.pem" \
    -cert "$PKI/gateway.pem" -key "$PKI/gateway.key" > "$work/hold$1.out" 2>&1 &
}
hold 1
hold 2
for _ in $(seq 1 50); do
  grep -q '^Verify return code' "$work/hold1.out" 2>/dev/null &&
    grep -q '^Verify return code' "$work/hold2.out" 2>/dev/null && break
  sleep 0.05
done
sleep 0.2
id9=$(new_id)
make_message "$work/m9.xml" "$id9" "$(now_utc)" "$ME" "Past the connection cap."
post "$work/m9.xml" gateway "$url2"
[ "$code" = 000 ] || { kill "$pid2"; fail "a third connection past max_connections=2: HTTP $code"; }
grep -q "event=connection-refused" "$work/receiver2.log" || { kill "$pid2"; fail "the refusal was not logged"; }
start=$(date +%s)
for _ in $(seq 1 80); do
  post "$work/m9.xml" gateway "$url2"
  [ "$code" = 200 ] && break
  sleep 0.1
done
elapsed=$(( $(date +%s) - start ))
[ "$code" = 200 ] || { kill "$pid2"; fail "not served again after the held connections' deadline: HTTP $code"; }
[ "$elapsed" -le 5 ] || { kill "$pid2"; fail "served again only after $elapsed s (read_timeout 3)"; }
ok "max_connections: past the cap of verified connections a newcomer is refused; served again within read_timeout (${elapsed}s)"

# Connections without a TLS handshake make room for a newcomer at the cap.
exec 4<>"/dev/tcp/127.0.0.1/$port2"
exec 5<>"/dev/tcp/127.0.0.1/$port2"
sleep 0.3
post "$work/m9.xml" gateway "$url2"
exec 4<&- 5<&-
[ "$code" = 200 ] || { kill "$pid2"; fail "half-open connections at the cap locked a sender out: HTTP $code"; }
grep -q "event=connection-evicted" "$work/receiver2.log" || { kill "$pid2"; fail "the eviction was not logged"; }
kill -TERM "$pid2"
wait "$pid2" || fail "the second receiver exited $? after SIGTERM"
ok "max_connections: two half-open connections at the cap are evicted for a sender, who is served"

# ---- gateway inbox -----------------------------------------------------------

"$GW_GATEWAY" inbox list --config "$work/receiver.ini" > "$work/list.txt" ||
  fail "gateway inbox list failed"
grep -q "$id" "$work/list.txt" || fail "inbox list does not show $id"
"$GW_GATEWAY" inbox list --config "$work/receiver.ini" --json > "$work/list.json" ||
  fail "gateway inbox list --json failed"
python3 -c 'import json,sys; rows=json.load(open(sys.argv[1])); assert len(rows)==3, rows' \
  "$work/list.json" || fail "inbox list --json is not the three rows"
"$GW_GATEWAY" inbox show "$id" --config "$work/receiver.ini" > "$work/show.txt" ||
  fail "gateway inbox show failed"
grep -q "evidence/$id.message.xml" "$work/show.txt" || fail "inbox show does not name the evidence"
ok "gateway inbox list, list --json and show"

"$GW_GATEWAY" inbox verify "$id" --config "$work/receiver.ini" > "$work/verify.txt" 2>&1 ||
  { cat "$work/verify.txt" >&2; fail "gateway inbox verify failed on intact evidence"; }
ok "gateway inbox verify: the stored message and receipt verify"

printf ' ' >> "$work/inbox/evidence/$id.message.xml"
if "$GW_GATEWAY" inbox verify "$id" --config "$work/receiver.ini" > "$work/verify.txt" 2>&1; then
  fail "gateway inbox verify accepted altered evidence"
fi
grep -q "NOT verified" "$work/verify.txt" || fail "inbox verify did not say what failed"
ok "gateway inbox verify exits 1 on altered evidence"

# ---- SIGTERM -----------------------------------------------------------------

kill -TERM "$pid"
status=0
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "the receiver did not stop within 10 s of SIGTERM"
wait "$pid" || status=$?
pid=""
[ "$status" -eq 0 ] || fail "the receiver exited $status after SIGTERM"
ok "SIGTERM: the receiver and its workers exit 0"

echo "it_receiver: all $passed checks passed"
