#!/usr/bin/env bash
# it_receiver_matrix: the receiver's negative matrix (issue 5, item 7), one
# check per row. Every row asserts the HTTP status, the signed rejection
# receipt where SPEC section 6 gives one (Status rejected, the Reason code,
# RefToMessageId, the digest of the bytes sent, our Receiver, and a
# signature that `xmlsec1 --verify --trusted-pem ca.pem` accepts), and that
# nothing appeared in the store: no file in new/, tmp/ or cur/,
# no database row.
#
# Rows: TLS without a client certificate, with one from an untrusted CA,
# expired, revoked; an organisation not allowed (403); TLS 1.1 offered;
# 413; and 400 for each SPEC reason code: malformed, schema-invalid,
# bad-signature, untrusted-signer (rogue CA, expired and revoked signing
# certificates), sender-mismatch (signer is not From; From and signer are
# not the TLS client), wrong-recipient, stale (old and future); 409
# message-id-conflict; and three signature-wrapping attempts (a valid signed
# Message hidden in the Signature's ds:Object, in an xenc wrapper in the
# Body, or as the Body itself, under an altered envelope).
#
# Environment (set by CTest): GW_GATEWAY, GW_PKI_DIR, GW_SOURCE_DIR.
set -euo pipefail
# shellcheck source=receiver_common.sh
. "$(dirname "$0")/receiver_common.sh"

write_config "$work/r.ini" r "allow=$SENDER"
start_receiver r "$work/r.ini"

# One accepted message first: the 409 row needs it, and every other row
# must leave the store exactly as this leaves it.
first=$(new_id)
make_message "$work/first.xml" "$first" "$(now_utc)" "$ME" "The one accepted message."
post "$work/first.xml"
expect_receipt "the accepted message" 200 accepted "" "$first" "$work/first.xml"
baseline=$(store_state)
[ "$baseline" = "new=1 tmp=0 cur=0 rows=1" ] || fail "baseline store: $baseline"
ok "baseline: one message accepted ($baseline)"

unchanged() {
  [ "$(store_state)" = "$baseline" ] || fail "$1: the store changed: $(store_state), was $baseline"
}

# row_receipt WHAT FILE HTTP REASON [CLIENT] [EXPECTED-ID]: post and check.
row_receipt() {
  local what=$1 file=$2 http=$3 reason=$4 client=${5:-gateway}
  local id=${6-$(xml_text "$file" MessageId)}
  post "$file" "$client"
  expect_receipt "$what" "$http" rejected "$reason" "$id" "$file"
  unchanged "$what"
  grep -q "event=rejected reason=$reason msg=$id" "$RLOG" || fail "$what: not logged with its reason"
  ok "$what: $http $reason, signed receipt verifies, nothing stored"
}

# A fresh, valid message for the rows that break only the TLS layer.
fresh=$(new_id)
make_message "$work/fresh.xml" "$fresh" "$(now_utc)" "$ME" "Sent by the wrong client."

# ---- TLS and HTTP rows (no receipt) -------------------------------------------

for client in none untrusted expired revoked; do
  post "$work/fresh.xml" "$client"
  [ "$code" = 000 ] || fail "client certificate '$client': HTTP $code, expected the handshake refused"
  [ ! -s "$work/resp.xml" ] || fail "client certificate '$client': a response body came back"
  unchanged "client certificate '$client'"
  case $client in
    none) what="no client certificate" ;;
    untrusted) what="a client certificate from an untrusted CA" ;;
    expired) what="an expired client certificate" ;;
    *) what="a revoked client certificate" ;;
  esac
  ok "$what: TLS handshake refused, no answer, nothing stored"
done

post "$work/fresh.xml" nav
[ "$code" = 403 ] || fail "organisation not allowed: HTTP $code, expected 403"
[ ! -s "$work/resp.xml" ] || fail "organisation not allowed: a body came back"
unchanged "organisation not allowed"
grep -q "event=rejected reason=not-allowed peer_org=$OTHER" "$RLOG" || fail "the 403 was not logged"
ok "a verified client of an organisation not allowed: 403 without a body, nothing stored"

# TLS 1.1 offered: OpenSSL 3 needs security level 0 to offer it at all; the
# receiver must answer with a protocol_version alert, not a handshake.
timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' \
  -CAfile "$PKI/ca.pem" -cert "$PKI/gateway.pem" -key "$PKI/gateway.key" \
  < /dev/null > "$work/tls11.out" 2>&1 || true
grep -qi "alert protocol version" "$work/tls11.out" ||
  { cat "$work/tls11.out" >&2; fail "TLS 1.1: no protocol_version alert from the receiver"; }
grep -q "^New, TLSv1" "$work/tls11.out" && fail "TLS 1.1: a session was established"
unchanged "TLS 1.1"
ok "TLS 1.1 offered: the receiver answers protocol_version, no session, nothing stored"

head -c 70000 /dev/zero | tr '\0' 'x' > "$work/big.xml"
post "$work/big.xml"
[ "$code" = 413 ] || fail "oversized: HTTP $code, expected 413"
grep -q "Receipt" "$work/resp.xml" 2>/dev/null && fail "oversized: a receipt came back"
unchanged "413"
ok "a body over max_body: 413 without a receipt, nothing stored"

# ---- 400 rows, one per SPEC reason code ----------------------------------------

printf '<Message xmlns="urn:x-notice-gateway:envelope:1"><Header>' > "$work/malformed.xml"
row_receipt "malformed XML" "$work/malformed.xml" 400 malformed gateway "$NIL_ID"

printf '<?xml version="1.0"?>\n<!DOCTYPE Message [<!ENTITY x "y">]>\n<Message xmlns="urn:x-notice-gateway:envelope:1"/>\n' \
  > "$work/doctype.xml"
row_receipt "a DOCTYPE" "$work/doctype.xml" 400 malformed gateway "$NIL_ID"

id=$(new_id)
envelope "$work/tmpl.xml" "$id" "$(now_utc)" "$ME" "$(notice_xml "No NoticeRef.")"
sed -i '/<NoticeRef /d' "$work/tmpl.xml"
sign "$work/tmpl.xml" "$work/schema.xml"
row_receipt "a signed message without NoticeRef" "$work/schema.xml" 400 schema-invalid

id=$(new_id)
make_message "$work/tampered.xml" "$id" "$(now_utc)" "$ME" "Before."
sed -i 's/Before\./After./' "$work/tampered.xml"
row_receipt "content changed after signing" "$work/tampered.xml" 400 bad-signature

for signer in untrusted expired revoked; do
  id=$(new_id)
  make_message "$work/signer-$signer.xml" "$id" "$(now_utc)" "$ME" "Signed with $signer." "$signer"
  row_receipt "signed with the sender organisation's certificate that is $signer (TLS client valid)" \
    "$work/signer-$signer.xml" 400 untrusted-signer
done

id=$(new_id)
make_message "$work/mismatch1.xml" "$id" "$(now_utc)" "$ME" "Signed by housing." housing
row_receipt "From is the sender, the signer another organisation" "$work/mismatch1.xml" 400 sender-mismatch

id=$(new_id)
make_message "$work/mismatch2.xml" "$id" "$(now_utc)" "$ME" "From NAV, signed by NAV." nav "$OTHER"
row_receipt "From and signer agree (NAV) but the TLS client is the gateway" "$work/mismatch2.xml" 400 sender-mismatch

id=$(new_id)
make_message "$work/recipient.xml" "$id" "$(now_utc)" "$OTHER" "Meant for NAV."
row_receipt "To names another organisation" "$work/recipient.xml" 400 wrong-recipient

id=$(new_id)
make_message "$work/old.xml" "$id" "$(date -u -d '-8 days' +%Y-%m-%dT%H:%M:%SZ)" "$ME" "Old."
row_receipt "Created 8 days ago (window 7)" "$work/old.xml" 400 stale
id=$(new_id)
make_message "$work/future.xml" "$id" "$(date -u -d '+10 minutes' +%Y-%m-%dT%H:%M:%SZ)" "$ME" "Future."
row_receipt "Created 10 minutes ahead" "$work/future.xml" 400 stale

# ---- 409 -------------------------------------------------------------------------

make_message "$work/conflict.xml" "$first" "$(now_utc)" "$ME" "Other content, same MessageId."
row_receipt "the accepted MessageId with other bytes" "$work/conflict.xml" 409 message-id-conflict
export_evidence "$work/r.ini" "$first" message "$work/first.evidence.xml"
cmp -s "$work/first.xml" "$work/first.evidence.xml" || fail "409: the evidence was replaced"

# ---- signature wrapping ----------------------------------------------------------

# A valid signed message (never sent), and an altered envelope that carries
# it along: the same MessageId, other content, and the original signature.
wid=$(new_id)
make_message "$work/inner.xml" "$wid" "$(now_utc)" "$ME" "The signed original."
wrap() { # wrap WHERE OUT
  python3 - "$work/inner.xml" "$1" "$2" <<'PY'
import re, sys
inner = open(sys.argv[1]).read()
inner = re.sub(r"^<\?xml[^>]*\?>\s*", "", inner)
sig = re.search(r"<ds:Signature.*</ds:Signature>", inner, re.S).group(0)
altered = inner.replace("The signed original.", "Altered by an attacker.")
altered = altered.replace(sig, "")
where = sys.argv[2]
if where == "object":      # the original inside the signature's ds:Object
    wrapped_sig = sig.replace("</ds:Signature>", "<ds:Object>" + inner + "</ds:Object></ds:Signature>")
    out = altered.replace("</Message>", wrapped_sig + "</Message>")
elif where == "xenc":      # the original inside an xenc element as the Body
    body = '<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">' + inner + "</xenc:EncryptedData>"
    out = re.sub(r"<Body>.*</Body>", lambda m: "<Body>" + body + "</Body>", altered, flags=re.S)
    out = out.replace("</Message>", sig + "</Message>")
else:                      # the original as the Body's content
    out = re.sub(r"<Body>.*</Body>", lambda m: "<Body>" + inner + "</Body>", altered, flags=re.S)
    out = out.replace("</Message>", sig + "</Message>")
open(sys.argv[3], "w").write('<?xml version="1.0" encoding="UTF-8"?>\n' + out)
PY
}
wrap object "$work/wrap-object.xml"
grep -q "Altered by an attacker." "$work/wrap-object.xml" || fail "wrapping: the envelope was not altered"
row_receipt "wrapping: altered envelope, the signed original in ds:Object" "$work/wrap-object.xml" 400 bad-signature
wrap xenc "$work/wrap-xenc.xml"
row_receipt "wrapping: the signed original in an xenc element as the Body" "$work/wrap-xenc.xml" 400 bad-signature
wrap body "$work/wrap-body.xml"
row_receipt "wrapping: the signed original as the Body" "$work/wrap-body.xml" 400 schema-invalid
[ "$(db_rows "$wid")" -eq 0 ] || fail "wrapping: a row stored for the wrapped id"

# ---- the Notice must be the one the Header names ------------------------------------

# Signed by an allowed sender, but the Body's Notice is another revision
# than the signed Header's NoticeRef says: the case system reads the Notice.
rid=$(new_id)
envelope "$work/tmpl.xml" "$rid" "$(now_utc)" "$ME" "$(notice_xml "Another revision.")"
sed -i 's/<NoticeRef id="KDI-2026-000123" revision="1"/<NoticeRef id="KDI-2026-000123" revision="2"/' "$work/tmpl.xml"
grep -q 'revision="2"' "$work/tmpl.xml" || fail "noticeref: the header was not altered"
sign "$work/tmpl.xml" "$work/noticeref.xml"
row_receipt "a Notice other than the Header's NoticeRef" "$work/noticeref.xml" 400 schema-invalid

# ---- comments: outside the signature, so never in the inbox ------------------------

# Exclusive C14N without comments leaves comments out of the digest: one
# added to a signed message after signing still verifies. It must not reach
# the case system, which would read it as signed text.
cid=$(new_id)
make_message "$work/commented.xml" "$cid" "$(now_utc)" "$ME" "Signed text."
python3 - "$work/commented.xml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
assert "Signed text." in s
s = s.replace("Signed text.", "Signed text.<!-- UNSIGNED: call this number instead -->", 1)
open(p, "w").write(s)
PY
grep -q "UNSIGNED" "$work/commented.xml" || fail "comments: the comment was not added"
post "$work/commented.xml"
expect_receipt "a comment added after signing: the signature still holds" 200 accepted "" "$cid" "$work/commented.xml"
grep -q "Signed text." "$INBOX/new/$cid.xml" || fail "comments: the item lost its signed text"
if grep -q "UNSIGNED" "$INBOX/new/$cid.xml"; then
  fail "comments: an unsigned comment reached the inbox item"
fi
ok "a comment added after signing is kept as evidence but never reaches the inbox item"

# ---- and the receiver still serves -------------------------------------------------

post "$work/inner.xml"
expect_receipt "the unwrapped original" 200 accepted "" "$wid" "$work/inner.xml"
grep -q "The signed original." "$INBOX/new/$wid.xml" || fail "the original's item lost its content"
[ "$(store_state)" = "new=3 tmp=0 cur=0 rows=3" ] || fail "final store: $(store_state)"
stop_receiver
ok "the signed original, sent as itself, is accepted: after the refusals the store holds exactly three messages"

echo "it_receiver_matrix: all $passed checks passed"
