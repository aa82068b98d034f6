#!/usr/bin/env bash
# it_receiver: `gateway receive` end to end over real mutual TLS on loopback.
#
# The receiver runs as housing (958935420) and allows only the gateway
# (974760673). Messages are signed with the xmlsec1 command, sent with curl,
# and every signed receipt that comes back is verified with xmlsec1 against
# the development CA. Proves: accepted with one inbox item, duplicate with
# still one item and the first receipt kept as evidence, MessageId conflict,
# the TLS gate (no certificate, an organisation not allowed, expired, revoked,
# untrusted and too weak (RSA-1024) certificates), the size bound, malformed, tampered,
# wrong-signer, wrong-recipient and stale messages, 404/405, the header
# bound, the read timeout, the connection cap (refusal past it, eviction of
# connections without a handshake), a concurrent resend over two
# workers, one client's connections spread over both workers, a worker
# restart,
# `gateway inbox list|show|verify`, and a clean exit on SIGTERM.
#
# Environment (set by CTest): GW_GATEWAY, GW_PKI_DIR, GW_SOURCE_DIR.
# shellcheck source=receiver_common.sh
. "$(dirname "$0")/receiver_common.sh"

# Items in the main receiver's inbox/new (only the .xml ones count).
count_items() { find "$inbox/new" -maxdepth 1 -type f -name '*.xml' | wc -l; }

# ---- configuration and start -----------------------------------------------

write_config "$work/receiver.ini" receiver
start_receiver receiver "$work/receiver.ini"
pid=$RPID port=$PORT url=$URL inbox=$INBOX
ok "receiver listening on port $port"

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
item="$inbox/new/$id.xml"
[ -f "$item" ] || fail "accepted: no inbox/new/$id.xml"
xmllint --noout "$item" || fail "accepted: the inbox item is not well-formed"
[ "$(xmllint --xpath "name(/*)" "$item")" = Notice ] || fail "accepted: the item is not a Notice"
grep -q "Needs a flat." "$item" || fail "accepted: the item lost the notice content"
export_evidence "$work/receiver.ini" "$id" message "$work/ev1.message.xml"
cmp -s "$work/m1.xml" "$work/ev1.message.xml" ||
  fail "accepted: evidence differs from the bytes sent"
export_evidence "$work/receiver.ini" "$id" receipt "$work/ev1.receipt.xml"
cmp -s "$work/receipt1.xml" "$work/ev1.receipt.xml" ||
  fail "accepted: the stored receipt differs from the one answered"
ok "a signed message is accepted: one inbox item, evidence kept, receipt verifies with xmlsec1"

post "$work/m1.xml"
expect_receipt duplicate 200 duplicate "" "$id" "$work/m1.xml"
[ "$(count_items)" -eq 1 ] || fail "duplicate: expected one inbox item, found $(count_items)"
export_evidence "$work/receiver.ini" "$id" receipt "$work/ev2.receipt.xml"
cmp -s "$work/receipt1.xml" "$work/ev2.receipt.xml" ||
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

for bad in expired:"certificate has expired" revoked:"certificate revoked" \
  untrusted:"unable to get local issuer"; do
  reason=${bad#*:} bad=${bad%%:*}
  post "$work/m1.xml" "$bad"
  [ "$code" = 000 ] || fail "$bad client certificate: HTTP $code, expected a TLS failure"
  grep -q "event=tls-refused.*$reason" "$RLOG" || fail "$bad: no tls-refused line with '$reason'"
  ok "$bad client certificate: TLS handshake refused"
done

# RSA-1024 from the trusted CA: below security level 2. The client's own
# OpenSSL runs at level 0 so that the refusal can only be the receiver's.
cat > "$work/seclevel0.cnf" <<'CNF'
openssl_conf = init
[init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = sys
[sys]
CipherString = DEFAULT:@SECLEVEL=0
CNF
weak_post() {
  code=$(OPENSSL_CONF="$work/seclevel0.cnf" curl -sS --max-time 10 --cacert "$PKI/ca.pem" \
    --cert "$PKI/$1.pem" --key "$PKI/$1.key" -o /dev/null -w '%{http_code}' \
    --data-binary @"$work/m1.xml" "$url" 2> "$work/curl.err") || code=000
}
weak_post gateway
[ "$code" = 200 ] || fail "a strong certificate at client SECLEVEL=0: HTTP $code"
weak_post weak
[ "$code" = 000 ] || fail "RSA-1024 client certificate: HTTP $code, expected a TLS failure"
grep -q "event=tls-refused peer_org=974760673 detail=\"client certificate refused: EE certificate key too weak" "$RLOG" ||
  fail "RSA-1024 client certificate: no tls-refused line naming the weak key in the receiver's log"
ok "RSA-1024 client certificate from the trusted CA: TLS handshake refused by the receiver, logged why"

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

# ---- one client's connections are spread over the workers -------------------

# Each worker listens on a socket of its own (SO_REUSEPORT): the kernel
# spreads connections by address, so sixteen from one client all landing
# on one worker has a chance of 2^-15. Raw TCP is enough: the split happens
# at accept; the read_timeout (3 s) closes them afterwards.
fds=()
for _ in $(seq 1 16); do
  exec {fd}<>"/dev/tcp/127.0.0.1/$port"
  fds+=("$fd")
done
sleep 0.3
ss -Htnp state established "( sport = :$port )" > "$work/spread.txt"
for fd in "${fds[@]}"; do exec {fd}<&-; done
workers_seen=$(grep -o 'pid=[0-9]*' "$work/spread.txt" | sort -u | wc -l)
[ "$workers_seen" -eq 2 ] ||
  fail "16 connections from one client were served by $workers_seen worker(s), expected 2: $(cat "$work/spread.txt")"
ok "one client's connections are spread over both workers"

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

write_config "$work/receiver2.ini" receiver2 max_connections=2 workers=1
start_receiver receiver2 "$work/receiver2.ini"
port2=$PORT url2=$URL
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
[ "$code" = 000 ] || fail "a third connection past max_connections=2: HTTP $code"
grep -q "event=connection-refused" "$work/receiver2.log" || fail "the refusal was not logged"
start=$(date +%s)
for _ in $(seq 1 80); do
  post "$work/m9.xml" gateway "$url2"
  [ "$code" = 200 ] && break
  sleep 0.1
done
elapsed=$(( $(date +%s) - start ))
[ "$code" = 200 ] || fail "not served again after the held connections' deadline: HTTP $code"
[ "$elapsed" -le 5 ] || fail "served again only after $elapsed s (read_timeout 3)"
ok "max_connections: past the cap of verified connections a newcomer is refused; served again within read_timeout (${elapsed}s)"

# Connections without a TLS handshake make room for a newcomer at the cap.
exec 4<>"/dev/tcp/127.0.0.1/$port2"
exec 5<>"/dev/tcp/127.0.0.1/$port2"
sleep 0.3
post "$work/m9.xml" gateway "$url2"
exec 4<&- 5<&-
[ "$code" = 200 ] || fail "half-open connections at the cap locked a sender out: HTTP $code"
grep -q "event=connection-evicted" "$work/receiver2.log" || fail "the eviction was not logged"
stop_receiver # the second one (RPID=$pid2): exits 0 within 10 s of SIGTERM
RPID=$pid URL=$url INBOX=$inbox DB=$work/receiver.db RLOG=$work/receiver.log
ok "max_connections: two half-open connections at the cap are evicted for a sender, who is served"

# ---- SIGHUP: a renewed CRL applies without a restart ----------------------------

# A third receiver reads its CRL from a file we replace: at first the CA's
# CRL from before the revocation, then the one that lists revoked.pem.
cp "$PKI/ca-empty.crl" "$work/current.crl"
write_config "$work/receiver3.ini" receiver3
sed -i "s#^crl = .*#crl = $work/current.crl#" "$work/receiver3.ini"
start_receiver receiver3 "$work/receiver3.ini"
wait_workers 2
idr=$(new_id)
make_message "$work/mr.xml" "$idr" "$(now_utc)" "$ME" "Before the CRL was renewed."
post "$work/mr.xml" revoked
[ "$code" = 200 ] || fail "before the renewal the (not yet revoked) client was refused: HTTP $code"
# One kept-alive connection of the (not yet revoked) client: a request
# before the reload, one after it on the same connection.
make_message "$work/mk1.xml" "$(new_id)" "$(now_utc)" "$ME" "Kept alive, before."
make_message "$work/mk2.xml" "$(new_id)" "$(now_utc)" "$ME" "Kept alive, after."
rm -f "$work/keep.ready" "$work/keep.go"
timeout 30 python3 - "${URL#https://}" "$PKI" "$work" > "$work/keep.out" 2>&1 <<'PY' &
import http.client, os, ssl, sys, time
hostport, pki, work = sys.argv[1:]
host, rest = hostport.split(":", 1)
port, path = rest.split("/", 1)
ctx = ssl.create_default_context(cafile=pki + "/ca.pem")
ctx.load_cert_chain(pki + "/revoked.pem", pki + "/revoked.key")
conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=15)
def post(name):
    conn.request("POST", "/" + path, open(work + "/" + name, "rb").read(),
                 {"Content-Type": "application/xml"})
    r = conn.getresponse()
    r.read()
    return r.status
print("first", post("mk1.xml"), flush=True)
open(work + "/keep.ready", "w").close()
for _ in range(200):
    if os.path.exists(work + "/keep.go"):
        break
    time.sleep(0.05)
try:
    print("second", post("mk2.xml"), flush=True)
except Exception as e:
    print("second closed", type(e).__name__, flush=True)
PY
keep=$!
for _ in $(seq 1 100); do [ -e "$work/keep.ready" ] && break; sleep 0.05; done
cp "$PKI/ca.crl" "$work/current.crl"
kill -HUP "$RPID"
for _ in $(seq 1 50); do
  [ "$(grep -c 'event=trust-reloaded' "$RLOG")" -ge 3 ] && break
  sleep 0.1
done
[ "$(grep -c 'event=trust-reloaded' "$RLOG")" -eq 3 ] ||
  fail "SIGHUP: expected the parent and both workers to log trust-reloaded: $(grep -c 'event=trust-reloaded' "$RLOG")"
touch "$work/keep.go"
wait "$keep" || fail "the kept-alive client failed: $(cat "$work/keep.out")"
grep -qx "first 200" "$work/keep.out" || fail "kept-alive, before the reload: $(cat "$work/keep.out")"
grep -qx "second 403" "$work/keep.out" ||
  fail "kept-alive, after the reload revoked its certificate: $(cat "$work/keep.out")"
grep -q "event=tls-refused .*after the trust was reloaded.*certificate revoked" "$RLOG" ||
  fail "no tls-refused line for the kept-alive revoked client"
for _ in 1 2 3 4; do # new connections, whichever worker takes them
  idr=$(new_id)
  make_message "$work/mr.xml" "$idr" "$(now_utc)" "$ME" "After the CRL was renewed."
  post "$work/mr.xml" revoked
  [ "$code" = 000 ] || fail "after SIGHUP the revoked client still got HTTP $code"
done
post "$work/mr.xml" gateway
[ "$code" = 200 ] || fail "after SIGHUP a valid client got HTTP $code"
# A CRL file that cannot be read: the reload is refused, the trust stays.
rm "$work/current.crl"
kill -HUP "$RPID"
for _ in $(seq 1 50); do grep -q 'event=reload-failed' "$RLOG" && break; sleep 0.1; done
grep -q 'event=reload-failed.*current.crl' "$RLOG" || fail "an unreadable CRL was not refused on SIGHUP"
kill -0 "$RPID" || fail "the receiver stopped after a failed reload"
idr=$(new_id)
make_message "$work/mr.xml" "$idr" "$(now_utc)" "$ME" "After a failed reload."
post "$work/mr.xml" revoked
[ "$code" = 000 ] || fail "after a failed reload the revoked client got HTTP $code"
stop_receiver
RPID=$pid URL=$url INBOX=$inbox DB=$work/receiver.db RLOG=$work/receiver.log
ok "SIGHUP reads the CRLs again in the parent and every worker (a connection made before proves its certificate again: 403); an unreadable one is refused"

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
grep -q "^evidence: *message [0-9]* bytes, receipt [0-9]* bytes" "$work/show.txt" ||
  fail "inbox show does not describe the evidence"
ok "gateway inbox list, list --json and show"

"$GW_GATEWAY" inbox verify "$id" --config "$work/receiver.ini" > "$work/verify.txt" 2>&1 ||
  { cat "$work/verify.txt" >&2; fail "gateway inbox verify failed on intact evidence"; }
ok "gateway inbox verify: the stored message and receipt verify"

# evidence_edit COLUMN alter|restore: change one byte of the stored bytes in
# the database (the intact copy kept in a file), or put the intact ones back.
evidence_edit() {
  python3 - "$DB" "$id" "$1" "$2" "$work/intact.$1" <<'PY'
import sqlite3, sys
db_path, msg_id, col, action, keep = sys.argv[1:6]
assert col in ("message", "receipt")
db = sqlite3.connect(db_path, timeout=30)
if action == "restore":
    b = open(keep, "rb").read()
else:
    b = bytearray(db.execute("SELECT %s FROM received WHERE message_id = ?" % col, (msg_id,)).fetchone()[0])
    open(keep, "wb").write(bytes(b))
    i = b.index(b"<", len(b) // 2)
    b[i + 1] ^= 0x01  # one letter of an element name in the signed part
db.execute("UPDATE received SET %s = ? WHERE message_id = ?" % col, (bytes(b), msg_id))
db.commit()
PY
}
for what in message receipt; do
  evidence_edit "$what" alter
  if "$GW_GATEWAY" inbox verify "$id" --config "$work/receiver.ini" > "$work/verify.txt" 2>&1; then
    fail "gateway inbox verify accepted an altered $what"
  fi
  grep -q "^$what: NOT verified" "$work/verify.txt" || fail "inbox verify did not say the $what failed"
  evidence_edit "$what" restore
done
"$GW_GATEWAY" inbox verify "$id" --config "$work/receiver.ini" > "$work/verify.txt" 2>&1 ||
  { cat "$work/verify.txt" >&2; fail "gateway inbox verify failed after the evidence was restored"; }
ok "gateway inbox verify exits 1 on altered evidence (message bytes, receipt) and says which"

# ---- SIGTERM -----------------------------------------------------------------

stop_receiver
ok "SIGTERM: the receiver and its workers exit 0"

echo "it_receiver: all $passed checks passed"
