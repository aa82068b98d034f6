#!/usr/bin/env bash
# it_encryption: SPEC section 5 encryption end to end over loopback mTLS.
# The gateway's housing endpoint has encrypt_cert; nav's has none.
#
#   1  housing.pem: the bytes housing received (its evidence) hold
#      xenc:EncryptedData (aes256-gcm, rsa-oaep-mgf1p, housing's
#      X509Certificate) and no Need text in clear; the signature over the
#      encrypted form verifies with xmlsec1; `xmlsec1 --decrypt --privkey-pem
#      housing.key` opens it into the filtered Notice; the receiver (decrypt_key
#      housing.key) verified, decrypted and put the plaintext Notice with only
#      the granted Need into its inbox. nav's copy travels in clear.
#   2  rollover at the gateway: two certificates (housing.pem and a new one
#      of housing's organisation, enc-new.pem, issued here by the development
#      CA): two EncryptedKeys, either key alone decrypts, and the receiver
#      holding old and new keys takes it.
#   3  an expired certificate only (enc-expired.pem, housing's organisation,
#      issued here): housing's message is held with "encryption certificate
#      unusable: ... has expired", nothing reaches its inbox, nav is not
#      affected. Then a certificate of another organisation (nav.pem): held,
#      "... belongs to organisation <nav>, not the endpoint's <housing>".
#      Fixing the certificate and running again delivers both (the sender
#      releases held messages at start).
# Privacy: no nin or name in any log, reason file or operator output.
. "$(dirname "$0")/common.sh"

DATA="$SRC/tests/data/intake/encryption"
lab_receiver housing "$ORGNR_HOUSING"
lab_receiver nav "$ORGNR_NAV"
lab_gateway_config
cfg="$LAB/gateway/gateway.conf"
spool="$LAB/gateway/spool"

# restart_with NAME LINE...: restart a receiver on its port with these decrypt_key lines.
restart_with() {
  local name=$1 dir="$LAB/$1" port_var port i
  shift
  port_var="RECEIVER_PORT_${name^^}"
  port=${!port_var}
  kill "$(cat "$dir/pid")"
  wait "$(cat "$dir/pid")" 2>/dev/null || true
  sed -i -e "s/^listen = .*/listen = 127.0.0.1:$port/" -e '/^decrypt_key = /d' "$dir/receiver.conf"
  printf '%s\n' "$@" >> "$dir/receiver.conf" # [receiver] is the last section
  rm -f "$dir/port"
  "$GW" receive --config "$dir/receiver.conf" --port-file "$dir/port" 2>>"$dir/receiver.log" &
  LAB_PIDS+=($!)
  echo $! > "$dir/pid"
  for i in $(seq 1 100); do
    [ -s "$dir/port" ] && return 0
    sleep 0.05
  done
  return 1
}
# encrypt_for CERT...: set the gateway's housing endpoint's encrypt_cert lines.
encrypt_for() {
  local c lines=""
  for c in "$@"; do lines="${lines}encrypt_cert = $c\n"; done
  sed -i '/^encrypt_cert = /d' "$cfg"
  sed -i "/^\[endpoint housing\]/a $lines" "$cfg"
  sed -i '/^$/N;/^\n$/D' "$cfg"
}
# item PARTNER NOTICE: the inbox item of NOTICE; evidence PARTNER NOTICE: the received bytes.
item() { grep -l "id=\"$2\"" "$LAB/$1"/inbox/new/*.xml 2>/dev/null | head -n1; }
msg_of() { "$GW" list --config "$cfg" --notice "$1" | awk -v s="$2" '$4 == s { print $1 }'; }
evidence() {
  local id out
  id=$(msg_of "$2" "$1")
  out="$LAB/evidence.$1.$2.xml"
  [ -n "$id" ] &&
    "$GW" inbox export "$id" --message --config "$LAB/$1/receiver.conf" > "$out" 2>/dev/null &&
    echo "$out"
}
state() { "$GW" list --config "$cfg" --notice "$1" | awk -v s="$2" '$4 == s { print $6 }'; }
cert_b64() { openssl x509 -in "$1" -outform DER | base64 -w0; }
squeeze() { tr -d ' \r\n\t' < "$1"; }
xmlsec_decrypt() { xmlsec1 --decrypt --privkey-pem "$1" "$2" 2>/dev/null; }

# issue_housing NAME [START END]: $LAB/NAME.pem and NAME.key, an RSA-2048
# certificate of housing's organisation from the development CA (openssl ca:
# it takes the dates of an expired one).
issue_housing() {
  local name=$1 start=${2:-} end=${3:-} ca="$LAB/enc-ca" dates=(-days 30)
  mkdir -p "$ca"
  : > "$ca/index.txt"
  openssl rand -hex 8 > "$ca/serial"
  printf '%s\n' '[ca]' 'default_ca = dev' '[dev]' "database = $ca/index.txt" \
    "new_certs_dir = $ca" "serial = $ca/serial" 'default_md = sha256' 'policy = any' \
    'unique_subject = no' '[any]' 'countryName = optional' 'organizationName = optional' \
    'organizationIdentifier = optional' 'commonName = supplied' > "$ca/ca.cnf"
  if [ -n "$start" ]; then dates=(-startdate "$start" -enddate "$end"); fi
  (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out "$LAB/$name.key" 2>/dev/null) &&
    openssl req -new -key "$LAB/$name.key" -out "$ca/$name.csr" \
      -subj "/C=NO/O=Oslo kommune Bolig/organizationIdentifier=NTRNO-$ORGNR_HOUSING/CN=Oslo kommune Bolig ($name)" &&
    openssl ca -batch -notext -config "$ca/ca.cnf" -cert "$PKI/ca.pem" -keyfile "$PKI/ca.key" \
      -in "$ca/$name.csr" -out "$LAB/$name.pem" "${dates[@]}" 2>/dev/null
}
check "a new encryption certificate of housing's organisation issued" issue_housing enc-new
check "an expired one issued" issue_housing enc-expired \
  "$(date -u -d '-366 days' +%Y%m%d%H%M%SZ)" "$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)"

check "housing receiver restarted with decrypt_key housing.key" \
  restart_with housing "decrypt_key = $PKI/housing.key"
encrypt_for "$PKI/housing.pem"

# ---- 1: one certificate ----
n=ENCRYPT-2027-000001
lab_drop "$DATA/e1-release.xml"
check "run 1 until idle" lab_send
check "housing delivered" eq "$(state $n housing)" delivered
check "nav delivered" eq "$(state $n nav)" delivered
ev=$(evidence housing $n)
check "housing's evidence (the bytes received) exists" test -n "$ev"
if [ -n "$ev" ]; then
  check "wire bytes hold xenc:EncryptedData" grep -q '<xenc:EncryptedData' "$ev"
  check "content: aes256-gcm" grep -q 'Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"' "$ev"
  check "key transport: rsa-oaep-mgf1p" \
    grep -q 'Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"' "$ev"
  check "the EncryptedKey names housing's certificate" \
    bash -c "squeeze() { tr -d ' \r\n\t' < \"\$1\"; }; squeeze '$ev' | grep -qF '$(cert_b64 "$PKI/housing.pem")'"
  check "one EncryptedKey" eq "$(grep -o '<xenc:EncryptedKey' "$ev" | wc -l)" 1
  check "no Need text in clear on the wire" bash -c "! grep -q 'E1 housing' '$ev'"
  check "no Notice in clear on the wire" bash -c "! grep -q '<Notice ' '$ev'"
  check "the signature over the encrypted form verifies (xmlsec1)" \
    bash -c "xmlsec1 --verify --trusted-pem '$PKI/ca.pem' --enabled-reference-uris empty \
      --enabled-key-data x509 '$ev' >/dev/null 2>&1"
  xmlsec_decrypt "$PKI/housing.key" "$ev" > "$LAB/e1-plain.xml" || true
  check "xmlsec1 --decrypt with housing.key opens it" grep -q '<Notice ' "$LAB/e1-plain.xml"
  check "the decrypted Notice holds the granted Need" grep -q 'E1 housing' "$LAB/e1-plain.xml"
  check "the decrypted Notice lacks the others" bash -c "! grep -qE 'E1 (income|health)' '$LAB/e1-plain.xml'"
  check "xmlsec1 with nav.key cannot open it" bash -c "! xmlsec1 --decrypt --privkey-pem '$PKI/nav.key' '$ev' >/dev/null 2>&1"
fi
it=$(item housing $n)
check "housing's inbox item is the plaintext Notice" bash -c "[ -n '$it' ] && grep -q '<Notice ' '$it'"
check "housing's item holds the housing Need only" \
  bash -c "grep -q 'category=\"housing\"' '$it' && ! grep -qE 'category=\"(income|health)\"' '$it'"
check "housing's item holds no EncryptedData, Recipients or Consent" \
  bash -c "! grep -qE 'EncryptedData|<Recipients|<Consent' '$it'"
ev_nav=$(evidence nav $n)
check "nav's copy travels in clear (no encrypt_cert)" \
  bash -c "[ -n '$ev_nav' ] && ! grep -q EncryptedData '$ev_nav' && grep -q 'E1 income' '$ev_nav'"

# ---- 2: rollover, two certificates at the gateway, two keys at the receiver ----
n=ENCRYPT-2027-000002
encrypt_for "$PKI/housing.pem" "$LAB/enc-new.pem"
check "housing receiver holds old and new keys" \
  restart_with housing "decrypt_key = $LAB/enc-new.key $PKI/housing.key"
lab_drop "$DATA/e2-release.xml"
check "run 2 until idle" lab_send
check "rollover: housing delivered" eq "$(state $n housing)" delivered
ev=$(evidence housing $n)
check "rollover: two EncryptedKeys" eq "$(grep -o '<xenc:EncryptedKey' "$ev" 2>/dev/null | wc -l)" 2
xmlsec_decrypt "$PKI/housing.key" "$ev" > "$LAB/e2-old.xml" || true
xmlsec_decrypt "$LAB/enc-new.key" "$ev" > "$LAB/e2-new.xml" || true
check "rollover: the old key alone decrypts" grep -q 'E2 housing' "$LAB/e2-old.xml"
check "rollover: the new key alone decrypts" grep -q 'E2 housing' "$LAB/e2-new.xml"
check "rollover: the inbox item is the plaintext Notice" grep -q 'E2 housing' "$(item housing $n)"

# ---- 3: an unusable certificate holds, visibly ----
n=ENCRYPT-2027-000003
encrypt_for "$LAB/enc-expired.pem"
before=$(count_inbox housing)
lab_drop "$DATA/e3-release.xml"
check "run 3 until idle" lab_send
check "expired certificate: housing held with the reason" \
  eq "$(state_of $n housing)" "held: encryption certificate unusable: endpoint housing certificate 1 (enc-expired.pem) has expired"
check "expired certificate: nothing new in housing's inbox" eq "$(count_inbox housing)" "$before"
check "expired certificate: nav still delivered" eq "$(state $n nav)" delivered
check "the hold is in the gateway log" \
  grep -q 'event=held .*encryption certificate unusable' "$LAB/gateway/gateway.log"

n4=ENCRYPT-2027-000004
encrypt_for "$PKI/nav.pem"
sed "s/ENCRYPT-2027-000003/$n4/" "$DATA/e3-release.xml" > "$LAB/e4-release.xml"
lab_drop "$LAB/e4-release.xml"
check "run 3b until idle" lab_send
check "another organisation's certificate: housing held with the reason" \
  eq "$(state_of $n4 housing)" "held: encryption certificate unusable: endpoint housing certificate 1 (nav.pem) belongs to organisation $ORGNR_NAV, not the endpoint's $ORGNR_HOUSING"
check "another organisation's certificate: nothing new in housing's inbox" \
  eq "$(count_inbox housing)" "$before"
check "another organisation's certificate: nav still delivered" eq "$(state $n4 nav)" delivered

encrypt_for "$PKI/housing.pem"
check "run 4 (certificate fixed) until idle" lab_send
check "fixed certificate: the held message is delivered" eq "$(state $n housing)" delivered
check "fixed certificate: housing's item arrived" grep -q 'E3 housing' "$(item housing $n)"
check "fixed certificate: the other held message is delivered" eq "$(state $n4 housing)" delivered

# ---- privacy ----
ops="$LAB/operator"
mkdir -p "$ops"
"$GW" status --config "$cfg" > "$ops/status.out" 2>&1 || true
"$GW" list --config "$cfg" > "$ops/list.out" 2>&1 || true
for id in $(awk '{print $2; print $1}' "$ops/list.out" | sort -u); do
  "$GW" show --config "$cfg" "$id" > "$ops/show-$id.out" 2>&1 || true
done
secrets=$(grep -hoE '(nin|givenName|familyName)="[^"]*"' "$DATA"/*.xml |
  sed 's/^[a-zA-Z]*="\(.*\)"$/\1/' | sort -u)
leak=""
while IFS= read -r s; do
  [ -n "$s" ] || continue
  if grep -rqsF -- "$s" "$LAB"/*/*.log "$spool/rejected" "$ops"; then leak="$leak $s"; fi
done <<< "$secrets"
check "no nin or person's name in any log, reason file or operator output" eq "$leak" ""

finish
