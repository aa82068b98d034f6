#!/usr/bin/env bash
# it_receiver_encrypted: encrypted messages (SPEC section 5) end to end.
#
# Messages are encrypted with the `xmlsec1 --encrypt` command (aes256-gcm,
# the session key under rsa-oaep-mgf1p for the recipient's certificate),
# then signed with `xmlsec1 --sign`, and posted over mutual TLS. Proves:
# without decrypt_key an encrypted Body is a definite 400 malformed; with
# two keys (a rollover: [identity] key and a new key whose certificate lies
# next to it) a message for either is accepted, the inbox item is the
# plaintext Notice while the evidence is the exact encrypted bytes and
# re-verifies with `gateway inbox verify`; a message for another key, a
# ciphertext altered before signing, and a decrypted body that is not a
# valid Notice are refused with signed receipts (malformed, malformed,
# schema-invalid) and leave nothing in the store; a bad signature on an
# encrypted message is bad-signature; the configuration's key pairing
# mistakes stop the receiver at start-up with exit 2.
#
# Environment (set by CTest): GW_GATEWAY, GW_PKI_DIR, GW_SOURCE_DIR.
set -euo pipefail
# shellcheck source=receiver_common.sh
. "$(dirname "$0")/receiver_common.sh"

# The new encryption key of the rollover, issued by the development CA.
umask 077
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/enc-2027.key" 2>/dev/null
openssl req -new -key "$work/enc-2027.key" \
  -subj "/C=NO/O=Oslo kommune Bolig/organizationIdentifier=NTRNO-$ME/CN=Oslo kommune Bolig (encryption 2027)" \
  -out "$work/enc-2027.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:false\nkeyUsage=critical,keyEncipherment\n' > "$work/ext.cnf"
openssl x509 -req -in "$work/enc-2027.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" \
  -set_serial "0x$(openssl rand -hex 8)" -days 30 -sha256 -extfile "$work/ext.cnf" \
  -out "$work/enc-2027.pem" 2>/dev/null || fail "cannot issue the rollover certificate"
umask 022

# expect_nothing_stored WHAT BEFORE: the store is as it was.
expect_nothing_stored() {
  [ "$(store_state)" = "$2" ] || fail "$1: the store changed: $(store_state), was $2"
}

# ---- no decrypt_key ----------------------------------------------------------

write_config "$work/plain.ini" plain
start_receiver plain "$work/plain.ini"
id=$(new_id)
make_encrypted "$work/e0.xml" "$id" "$(now_utc)" "$ME" "$(notice_xml "Encrypted, no key.")" "$PKI/housing.pem"
grep -q "EncryptedData" "$work/e0.xml" || fail "xmlsec1 did not encrypt"
grep -q "Encrypted, no key." "$work/e0.xml" && fail "the plaintext is visible in the encrypted message"
before=$(store_state)
post "$work/e0.xml"
expect_receipt "no decrypt_key" 400 rejected malformed "$id" "$work/e0.xml"
grep -q "no decrypt_key" "$work/resp.xml" || fail "no decrypt_key: the reason does not say why"
expect_nothing_stored "no decrypt_key" "$before"
stop_receiver
ok "without decrypt_key: an encrypted Body is 400 malformed with a signed receipt; nothing stored"

# ---- two keys: a rollover ----------------------------------------------------

write_config "$work/r.ini" r "decrypt_key=$PKI/housing.key $work/enc-2027.key"
start_receiver r "$work/r.ini"

id=$(new_id)
make_encrypted "$work/e1.xml" "$id" "$(now_utc)" "$ME" "$(notice_xml "Needs a flat (old key).")" "$PKI/housing.pem"
post "$work/e1.xml"
expect_receipt "for the identity key" 200 accepted "" "$id" "$work/e1.xml"
item="$INBOX/new/$id.xml"
[ -f "$item" ] || fail "accepted: no new/$id.xml"
[ "$(xmllint --xpath 'name(/*)' "$item")" = Notice ] || fail "the item is not the plaintext Notice"
xmllint --noout --schema "$GW_SOURCE_DIR/schemas/notice.xsd" "$item" 2>/dev/null ||
  fail "the item is not a schema-valid Notice"
grep -q "Needs a flat (old key)." "$item" || fail "the item lost the notice content"
export_evidence "$work/r.ini" "$id" message "$work/e1.evidence.xml"
cmp -s "$work/e1.xml" "$work/e1.evidence.xml" || fail "the evidence is not the bytes received"
grep -q "Needs a flat" "$work/e1.evidence.xml" && fail "the evidence holds plaintext"
"$GW_GATEWAY" inbox verify "$id" --config "$work/r.ini" > "$work/iv.out" 2>&1 ||
  { cat "$work/iv.out" >&2; fail "gateway inbox verify failed on an encrypted message"; }
ok "encrypted for [identity] cert: accepted; the item is the plaintext Notice, the evidence the encrypted bytes, and it re-verifies"

post "$work/e1.xml"
expect_receipt "encrypted resend" 200 duplicate "" "$id" "$work/e1.xml"
[ "$(count_in new)" -eq 1 ] || fail "encrypted resend: $(count_in new) items"
ok "the same encrypted bytes again: 200 duplicate, one item"

id=$(new_id)
make_encrypted "$work/e2.xml" "$id" "$(now_utc)" "$ME" "$(notice_xml "Needs a flat (new key).")" "$work/enc-2027.pem"
post "$work/e2.xml"
expect_receipt "for the new key" 200 accepted "" "$id" "$work/e2.xml"
grep -q "Needs a flat (new key)." "$INBOX/new/$id.xml" || fail "new key: the item lost its content"
ok "rollover: encrypted for the second decrypt_key's certificate: accepted"

id=$(new_id)
make_encrypted "$work/e3.xml" "$id" "$(now_utc)" "$ME" "$(notice_xml "For NAV's key.")" "$PKI/nav.pem"
before=$(store_state)
post "$work/e3.xml"
expect_receipt "another key" 400 rejected malformed "$id" "$work/e3.xml"
grep -q "cannot decrypt" "$work/resp.xml" || fail "another key: the reason does not say so"
expect_nothing_stored "another key" "$before"
ok "encrypted for a key we do not hold: 400 malformed 'cannot decrypt'; nothing stored"

# The ciphertext altered (by whoever built the message), then signed: the
# signature is fine, AES-GCM's authentication is not.
id=$(new_id)
envelope "$work/tplain.xml" "$id" "$(now_utc)" "$ME" "$(notice_xml "Altered ciphertext.")"
printf '%s\n' "$ENC_TEMPLATE" > "$work/enc-tmpl.xml"
xmlsec1 --encrypt --pubkey-cert-pem "$PKI/housing.pem" --session-key aes-256 \
  --xml-data "$work/tplain.xml" --node-xpath "/*[local-name()='Message']/*[local-name()='Body']/*" \
  --output "$work/tenc.xml" "$work/enc-tmpl.xml" 2>/dev/null || fail "xmlsec1 --encrypt failed"
python3 - "$work/tenc.xml" <<'PY' || fail "cannot alter the ciphertext"
import re, sys
p = sys.argv[1]
s = open(p).read()
values = list(re.finditer(r"<xenc:CipherValue>([^<]+)</xenc:CipherValue>", s))
m = values[-1]                       # the EncryptedData's own, after the EncryptedKey's
i = m.start(1) + 20
c = s[i]
s = s[:i] + ("A" if c != "A" else "B") + s[i + 1:]
open(p, "w").write(s)
PY
sign "$work/tenc.xml" "$work/e4.xml"
before=$(store_state)
post "$work/e4.xml"
expect_receipt "altered ciphertext" 400 rejected malformed "$id" "$work/e4.xml"
expect_nothing_stored "altered ciphertext" "$before"
ok "ciphertext altered before signing: 400 malformed (authentication fails); nothing stored"

id=$(new_id)
bad_notice=$(notice_xml "Invalid inside." | sed 's#<Issued>[^<]*</Issued>##')
make_encrypted "$work/e5.xml" "$id" "$(now_utc)" "$ME" "$bad_notice" "$PKI/housing.pem"
before=$(store_state)
post "$work/e5.xml"
expect_receipt "invalid plaintext" 400 rejected schema-invalid "$id" "$work/e5.xml"
expect_nothing_stored "invalid plaintext" "$before"
id=$(new_id)
make_encrypted "$work/e6.xml" "$id" "$(now_utc)" "$ME" '<Other xmlns="urn:x-example"/>' "$PKI/housing.pem"
post "$work/e6.xml"
expect_receipt "not a Notice" 400 rejected schema-invalid "$id" "$work/e6.xml"
expect_nothing_stored "not a Notice" "$before"
ok "the decrypted Body is checked against the notice schema: 400 schema-invalid; nothing stored"

id=$(new_id)
make_encrypted "$work/e7.xml" "$id" "$(now_utc)" "$ME" "$(notice_xml "Signed, then changed.")" "$PKI/housing.pem"
sed -i "s#<NoticeRef id=\"KDI-2026-000123\" revision=\"1\"#<NoticeRef id=\"KDI-2026-000123\" revision=\"2\"#" "$work/e7.xml"
post "$work/e7.xml"
expect_receipt "encrypted, bad signature" 400 rejected bad-signature "$id" "$work/e7.xml"
expect_nothing_stored "encrypted, bad signature" "$before"
ok "an encrypted message whose signature fails: 400 bad-signature (verified before decrypting)"

if grep -Eq 'Needs a flat|01817000000|givenName|Invalid inside' "$RLOG"; then
  fail "the log holds notice content"
fi
stop_receiver
ok "no notice content in the log"

# ---- configuration mistakes ----------------------------------------------------

cp "$work/enc-2027.key" "$work/lonely.key"
write_config "$work/bad1.ini" bad1 "decrypt_key=$work/lonely.key"
status=0
timeout 20 "$GW_GATEWAY" receive --config "$work/bad1.ini" --port 0 > "$work/bad1.out" 2>&1 || status=$?
[ "$status" -eq 2 ] || fail "a decrypt_key without a certificate: exit $status, expected 2"
grep -q "no certificate next to it" "$work/bad1.out" || fail "the start-up error does not say why"
cp "$work/enc-2027.key" "$work/open.key"
cp "$work/enc-2027.pem" "$work/open.pem"
chmod 644 "$work/open.key"
write_config "$work/bad2.ini" bad2 "decrypt_key=$work/open.key"
status=0
timeout 20 "$GW_GATEWAY" receive --config "$work/bad2.ini" --port 0 > "$work/bad2.out" 2>&1 || status=$?
[ "$status" -eq 2 ] || fail "a decrypt_key readable by others: exit $status, expected 2"
cp "$PKI/nav.pem" "$work/mismatch.pem"
cp "$work/enc-2027.key" "$work/mismatch.key"
write_config "$work/bad3.ini" bad3 "decrypt_key=$work/mismatch.key"
status=0
timeout 20 "$GW_GATEWAY" receive --config "$work/bad3.ini" --port 0 > "$work/bad3.out" 2>&1 || status=$?
[ "$status" -eq 2 ] || fail "a decrypt_key whose certificate is another key's: exit $status, expected 2"
ok "decrypt_key without its certificate, readable by others, or not matching it: exit 2 at start-up"

echo "it_receiver_encrypted: all $passed checks passed"
