# receiver_common.sh: helpers for the it_receiver_*.sh tests. Sourced, not
# run (CTest runs only it_*.sh). Starts `gateway receive` processes on
# loopback with the development PKI, builds messages and signs them with the
# xmlsec1 command (optionally encrypting the Notice with `xmlsec1 --encrypt`
# first), posts them with curl over mutual TLS, and checks receipts with
# xmlsec1 against the CA alone.
#
# Environment (set by CTest): GW_GATEWAY, GW_PKI_DIR, GW_SOURCE_DIR.
# Every process started here is killed on exit; every wait is bounded.
set -euo pipefail

: "${GW_GATEWAY:?GW_GATEWAY must name the gateway executable}"
: "${GW_PKI_DIR:?GW_PKI_DIR must name the development PKI}"
: "${GW_SOURCE_DIR:?GW_SOURCE_DIR must name the source tree}"
PKI=$GW_PKI_DIR
SENDER=974760673 # gateway
ME=958935420     # housing
OTHER=889960221  # nav
NIL_ID=00000000-0000-4000-8000-000000000000

work=$(mktemp -d "${TMPDIR:-/tmp}/$(basename "$0" .sh).XXXXXX")
passed=0
started_pids=() # every receiver parent started; its workers die with it
extra_pids=()   # helper processes (slow clients) to kill on exit

rc_cleanup() {
  local p
  for p in "${extra_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${started_pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      pkill -KILL -P "$p" 2>/dev/null || true
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
  rm -rf "$work"
}
trap rc_cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  local log
  for log in "$work"/*.log; do
    [ -f "$log" ] || continue
    echo "--- $log (last 25 lines)" >&2
    tail -n 25 "$log" >&2
  done
  if [ -f "$work/resp.xml" ]; then
    echo "--- last response body" >&2
    head -c 1500 "$work/resp.xml" >&2
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
xml_text() { xmllint --xpath "string(//*[local-name()='$2'])" "$1" 2>/dev/null || true; }
xml_attr() { xmllint --xpath "string(//*[local-name()='$2']/@$3)" "$1" 2>/dev/null || true; }

# ---- receivers -------------------------------------------------------------

# write_config FILE NAME [KEY=VALUE ...]: a receiver configuration whose inbox
# and database are $work/NAME.inbox and $work/NAME.db; KEY=VALUE pairs are
# appended to [receiver] (keys may repeat; the last occurrence of a number wins).
write_config() {
  local file=$1 name=$2
  shift 2
  cat > "$file" <<EOF
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
inbox = $work/$name.inbox
db = $work/$name.db
allow = $SENDER
window_days = 7
max_body = 65536
read_timeout = 3
max_connections = 16
workers = 2
EOF
  local kv
  for kv in "$@"; do
    sed -i "/^${kv%%=*} = /d" "$file"
    echo "${kv%%=*} = ${kv#*=}" >> "$file"
  done
}

# start_receiver NAME CONFIG [VAR=VALUE ...]: start `gateway receive` with
# those extra environment variables; sets RPID, PORT, URL, INBOX, DB, RLOG.
# The log is appended to, so one NAME can be restarted and keep its history.
start_receiver() {
  local name=$1 config=$2
  shift 2
  rm -f "$work/$name.port"
  RLOG="$work/$name.log"
  env "$@" "$GW_GATEWAY" receive --config "$config" --port 0 --port-file "$work/$name.port" \
    >> "$RLOG" 2>&1 &
  RPID=$!
  started_pids+=("$RPID")
  local _
  for _ in $(seq 1 100); do
    [ -s "$work/$name.port" ] && break
    kill -0 "$RPID" 2>/dev/null || fail "receiver $name exited at start-up"
    sleep 0.1
  done
  [ -s "$work/$name.port" ] || fail "receiver $name wrote no port file within 10 s"
  PORT=$(tr -d '\n' < "$work/$name.port")
  URL="https://127.0.0.1:$PORT/notices"
  INBOX=$work/$name.inbox
  DB=$work/$name.db
}

# Both workers up (they start right after the port file is written).
wait_workers() {
  local n=${1:-2} _
  for _ in $(seq 1 50); do
    [ "$(pgrep -P "$RPID" | wc -l)" -ge "$n" ] && return 0
    sleep 0.1
  done
  fail "receiver $RPID has fewer than $n workers"
}

# The whole receiver dies at once, as in a power cut: SIGKILL to the parent
# and to every worker.
kill_receiver() {
  local kids _
  kids=$(pgrep -P "$RPID" || true)
  kill -KILL "$RPID" 2>/dev/null || true
  # shellcheck disable=SC2086
  [ -z "$kids" ] || kill -KILL $kids 2>/dev/null || true
  wait "$RPID" 2>/dev/null || true
  for _ in $(seq 1 50); do
    # shellcheck disable=SC2086
    { [ -z "$kids" ] || ! kill -0 $kids 2>/dev/null; } && return 0
    sleep 0.1
  done
  fail "workers of $RPID still alive after SIGKILL"
}

stop_receiver() {
  kill -TERM "$RPID" 2>/dev/null || true
  local status=0 _
  for _ in $(seq 1 100); do kill -0 "$RPID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$RPID" 2>/dev/null && fail "receiver $RPID did not stop within 10 s of SIGTERM"
  wait "$RPID" || status=$?
  [ "$status" -eq 0 ] || fail "receiver exited $status after SIGTERM"
}

# ---- messages --------------------------------------------------------------

# notice_xml NEED-TEXT: a schema-valid Notice element on one line.
notice_xml() {
  printf '%s' "<Notice xmlns=\"urn:x-notice-gateway:notice:1\" id=\"KDI-2026-000123\" revision=\"1\" kind=\"release\"><Issued>2026-11-20T10:15:00+01:00</Issued><Sender orgnr=\"$SENDER\" unit=\"Oslo fengsel\"/><Contact name=\"Saksbehandler\" phone=\"+47 22000000\" email=\"post@example.org\"/><Person nin=\"01817000000\" givenName=\"Test\" familyName=\"Person\"/><Release date=\"2026-12-04\" time=\"09:00\" type=\"full-term\" municipality=\"0301\"/><Needs><Need category=\"housing\">$1</Need></Needs><FollowUp individualPlan=\"false\" coordinator=\"\" responsibilityGroup=\"false\"/></Notice>"
}

SIGNATURE_TEMPLATE='<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI=""><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo></ds:Signature>'

# envelope OUT ID CREATED TO BODY-XML [FROM] [SIGNATURE-XML]: an unsigned
# Message with a signature template (or the given Signature element).
envelope() {
  local out=$1 id=$2 created=$3 to=$4 body=$5 from=${6:-$SENDER} sig=${7:-$SIGNATURE_TEMPLATE}
  cat > "$out" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Message xmlns="urn:x-notice-gateway:envelope:1">
  <Header>
    <MessageId>$id</MessageId>
    <Created>$created</Created>
    <From orgnr="$from"/>
    <To orgnr="$to" service="housing"/>
    <NoticeRef id="KDI-2026-000123" revision="1" kind="release"/>
  </Header>
  <Body>$body</Body>
  $sig
</Message>
EOF
}

# sign TEMPLATE OUT [SIGNER]: xmlsec1 fills the signature with SIGNER's key.
sign() {
  local signer=${3:-gateway}
  xmlsec1 --sign --privkey-pem "$PKI/$signer.key,$PKI/$signer.pem" --output "$2" "$1" \
    2> "$work/xmlsec.err" || { cat "$work/xmlsec.err" >&2; fail "xmlsec1 --sign failed"; }
}

# make_message OUT ID CREATED TO NEED-TEXT [SIGNER] [FROM]
make_message() {
  envelope "$work/tmpl.xml" "$2" "$3" "$4" "$(notice_xml "$5")" "${7:-$SENDER}"
  sign "$work/tmpl.xml" "$1" "${6:-gateway}"
}

# encrypt_template: SPEC section 5's EncryptedData (aes256-gcm, the session
# key under rsa-oaep-mgf1p, the recipient's certificate in the EncryptedKey).
ENC_TEMPLATE='<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element"><xenc:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/><ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo><xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>'

# make_encrypted OUT ID CREATED TO BODY-ELEMENT-XML RECIPIENT-CERT [SIGNER]:
# the Body's element encrypted for RECIPIENT-CERT with `xmlsec1 --encrypt`,
# then the message signed (encrypt, then sign).
make_encrypted() {
  local out=$1 id=$2 created=$3 to=$4 body=$5 cert=$6 signer=${7:-gateway}
  envelope "$work/plain.xml" "$id" "$created" "$to" "$body"
  printf '%s\n' "$ENC_TEMPLATE" > "$work/enc-tmpl.xml"
  xmlsec1 --encrypt --pubkey-cert-pem "$cert" --session-key aes-256 \
    --xml-data "$work/plain.xml" --node-xpath "/*[local-name()='Message']/*[local-name()='Body']/*" \
    --output "$work/enc.xml" "$work/enc-tmpl.xml" 2> "$work/xmlsec.err" ||
    { cat "$work/xmlsec.err" >&2; fail "xmlsec1 --encrypt failed"; }
  sign "$work/enc.xml" "$out" "$signer"
}

# ---- sending and checking --------------------------------------------------

# post FILE [CLIENT] [URL] [METHOD]: sets $code ("000" when TLS or the
# connection failed); the body lands in $work/resp.xml. METHOD is POST unless
# given.
post() {
  local file=$1 client=${2:-gateway} target=${3:-$URL} method=${4:-POST}
  local auth=(--cert "$PKI/$client.pem" --key "$PKI/$client.key")
  [ "$client" = none ] && auth=()
  rm -f "$work/resp.xml"
  code=$(curl -sS --max-time 15 --cacert "$PKI/ca.pem" "${auth[@]}" -X "$method" \
    -H 'Content-Type: application/xml' --data-binary @"$file" \
    -o "$work/resp.xml" -w '%{http_code}' "$target" 2> "$work/curl.err") || code=000
}

receipt_verifies() {
  xmlsec1 --verify --trusted-pem "$PKI/ca.pem" --enabled-reference-uris empty \
    --enabled-key-data x509 "${2:-$work/resp.xml}" > "$work/verify.out" 2>&1 ||
    { cat "$work/verify.out" >&2; fail "xmlsec1 does not verify the receipt ($1)"; }
}

# expect_receipt WHAT HTTP STATUS [REASON] [MESSAGE-ID] [SENT-FILE]
expect_receipt() {
  local what=$1 http=$2 status=$3 reason=${4:-} id=${5:-} sent=${6:-}
  [ "$code" = "$http" ] || fail "$what: HTTP $code, expected $http"
  [ "$(xml_text "$work/resp.xml" Status)" = "$status" ] ||
    fail "$what: Status '$(xml_text "$work/resp.xml" Status)', expected $status"
  [ -z "$reason" ] || [ "$(xml_attr "$work/resp.xml" Reason code)" = "$reason" ] ||
    fail "$what: Reason '$(xml_attr "$work/resp.xml" Reason code)', expected $reason"
  [ -z "$id" ] || [ "$(xml_text "$work/resp.xml" RefToMessageId)" = "$id" ] ||
    fail "$what: RefToMessageId '$(xml_text "$work/resp.xml" RefToMessageId)', expected $id"
  [ -z "$sent" ] || [ "$(xml_text "$work/resp.xml" MessageDigest)" = "$(digest_of "$sent")" ] ||
    fail "$what: MessageDigest does not match the bytes sent"
  [ "$(xml_attr "$work/resp.xml" Receiver orgnr)" = "$ME" ] || fail "$what: wrong Receiver"
  receipt_verifies "$what"
}

# Rows in the receiver's database (python3's sqlite3; read-only).
db_rows() {
  [ -f "$DB" ] || { echo 0; return; }
  python3 - "$DB" "${1:-}" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=30)
if sys.argv[2]:
    n = db.execute("SELECT count(*) FROM received WHERE message_id = ?", (sys.argv[2],)).fetchone()[0]
else:
    n = db.execute("SELECT count(*) FROM received").fetchone()[0]
print(n)
PY
}

count_in() { find "$INBOX/$1" -maxdepth 1 -type f 2>/dev/null | wc -l; }

# store_state: one line describing everything the store holds.
store_state() {
  echo "new=$(count_in new) tmp=$(count_in tmp) cur=$(count_in cur) rows=$(db_rows)"
}

# export_evidence CONFIG ID message|receipt OUT: the evidence as stored.
export_evidence() {
  "$GW_GATEWAY" inbox export "$2" --"$3" --config "$1" > "$4" ||
    fail "gateway inbox export $2 --$3 failed"
}
