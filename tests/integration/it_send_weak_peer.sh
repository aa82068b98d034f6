#!/usr/bin/env bash
# it_send_weak_peer: `gateway send` refuses a partner whose TLS server
# certificate has too weak a key (RSA-1024, from the trusted CA, naming the
# right organisation: only its strength is wrong), even on a system whose
# OpenSSL configuration allows it: the gateway raises its TLS
# contexts to security level 2 itself (pki.h). The whole test runs with an
# OpenSSL configuration at level 0, so the refusal can only be the
# gateway's own; a partner with a strong certificate is still delivered to.
# shellcheck source=faultrecv_common.sh
. "$(dirname "$0")/faultrecv_common.sh"

cat > "$LAB/seclevel0.cnf" <<'CNF'
openssl_conf = init
[init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = sys
[sys]
CipherString = DEFAULT:@SECLEVEL=0
CNF
export OPENSSL_CONF="$LAB/seclevel0.cnf"

# housing's organisation, the trusted CA, an RSA-1024 key: only its strength is wrong.
cat > "$LAB/server.ext" <<'EXT'
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
EXT
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$LAB/weak-housing.key" 2>/dev/null
chmod 600 "$LAB/weak-housing.key"
openssl req -new -key "$LAB/weak-housing.key" -out "$LAB/weak-housing.csr" \
  -subj "/C=NO/O=Oslo kommune Bolig/organizationIdentifier=NTRNO-$ORGNR_HOUSING/CN=housing (weak)"
openssl x509 -req -in "$LAB/weak-housing.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" \
  -set_serial 0x3EA1 -days 30 -sha256 -extfile "$LAB/server.ext" -out "$LAB/weak-housing.pem" 2>/dev/null
faultrecv_start untrusted --untrusted-cert "$LAB/weak-housing.pem" \
  --untrusted-key "$LAB/weak-housing.key"
lab_gateway_config
msg_of() { "$GW" list --config "$cfg" --notice "$1" | awk -v s="$2" '$4 == s {print $1}'; }

lab_drop "$SRC/spool/demo/01-release-full-consent.xml"
check "a run against the weak partner ends" lab_send
msg=$(msg_of KDI-2027-004101 housing)
error=$(q "SELECT error FROM attempts WHERE message_id='$msg' ORDER BY attempt_id DESC LIMIT 1")
check "the attempt was refused at TLS for the weak key" \
  bash -c "grep -q '^tls: .*too weak' <<<\"\$1\"" _ "$error"
check "... the message waits for a retry" eq "$(q "SELECT state FROM messages WHERE message_id='$msg'")" queued
requests() { if [ -f "$fr/requests.log" ]; then wc -l < "$fr/requests.log"; else echo 0; fi; }
check "... and the partner received no request" eq "$(requests)" 0

# The same system configuration, a strong certificate: delivered.
mode accept
q "UPDATE messages SET next_attempt_ms = 0 WHERE message_id='$msg'"
check "a run against the same partner with a strong certificate ends" lab_send
check "... and delivers" eq "$(q "SELECT state FROM messages WHERE message_id='$msg'")" delivered
finish
