#!/usr/bin/env bash
# it_send_crl: a CRL read by SIGHUP applies to the very next transfer of a
# running `gateway send`, although a kept-alive connection to the partner,
# made under the old CRL, is still open; and the revoked partner receives
# nothing.
#
# The partner (the fault receiver, housing's organisation) serves a server
# certificate made here by the development CA. Two CRLs of that CA: one
# empty, one revoking that certificate. The gateway starts with the empty
# one, delivers a notice (the connection stays open), then the revoking CRL
# replaces the file under the same name and the daemon is sent SIGHUP.
# shellcheck source=faultrecv_common.sh
. "$(dirname "$0")/faultrecv_common.sh"

work="$LAB/crl"
mkdir -p "$work/ca"
: > "$work/ca/index.txt"
echo 1000 > "$work/ca/crlnumber"
cat > "$work/ca/ca.cnf" <<CNF
[ ca ]
default_ca = dev
[ dev ]
dir = $work/ca
database = \$dir/index.txt
crlnumber = \$dir/crlnumber
default_md = sha256
default_crl_days = 30
[ server ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment, keyAgreement
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
CNF
ca=(-config "$work/ca/ca.cnf" -cert "$PKI/ca.pem" -keyfile "$PKI/ca.key")

# housing's server certificate, issued now by the development CA
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/server.key" 2>/dev/null
chmod 600 "$work/server.key"
openssl req -new -key "$work/server.key" -out "$work/server.csr" \
  -subj "/C=NO/O=Oslo kommune Bolig/organizationIdentifier=NTRNO-$ORGNR_HOUSING/CN=housing (crl test)"
openssl x509 -req -in "$work/server.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" \
  -set_serial 0x7E57 -days 30 -sha256 -extfile "$work/ca/ca.cnf" -extensions server \
  -out "$work/server.pem" 2>/dev/null
openssl ca -batch -gencrl "${ca[@]}" -out "$work/empty.crl" 2>/dev/null
openssl ca -batch "${ca[@]}" -revoke "$work/server.pem" -crl_reason keyCompromise 2>/dev/null
openssl ca -batch -gencrl "${ca[@]}" -out "$work/revoking.crl" 2>/dev/null
check "the revoking CRL lists the server certificate" \
  bash -c "openssl crl -in '$work/revoking.crl' -noout -text | grep -q 7E57"

mkdir -p "$fr"
echo accept > "$fr/mode"
"$FAULTRECV" --cert "$work/server.pem" --key "$work/server.key" --trust "$PKI/ca.pem" \
  --mode-file "$fr/mode" --state-dir "$fr" 2>>"$fr/faultrecv.log" &
fr_pid=$!
LAB_PIDS+=("$fr_pid")
for _ in $(seq 1 100); do [ -s "$fr/port" ] && break; sleep 0.05; done
[ -s "$fr/port" ] || { cat "$fr/faultrecv.log" >&2; exit 1; }
RECEIVER_PORT_HOUSING=$(cat "$fr/port")

lab_gateway_config
cp "$work/empty.crl" "$work/current.crl"
sed -i "s#^crl = .*#crl = $work/current.crl#" "$cfg"

drop_notice() { # NUMBER: a fresh notice for housing
  local id
  id=$(printf 'KDI-2027-88%04d' "$1")
  sed "s/KDI-2027-004101/$id/" "$SRC/spool/demo/01-release-full-consent.xml" > "$LAB/$id.xml"
  lab_drop "$LAB/$id.xml"
  echo "$id"
}
wait_state() { # NOTICE STATE-WORD: up to 10 s
  for _ in $(seq 1 100); do
    [ "$(state_of "$1" housing | awk '{print $1}')" = "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
stat_of() { sed -n "s/^$1=//p" "$fr/stats"; }

"$GW" send --config "$cfg" 2>>"$LAB/gateway/daemon.log" &
daemon=$!
first=$(drop_notice 1)
check "under the empty CRL the notice is delivered" wait_state "$first" delivered
check "... over one connection, still open" eq "$(stat_of open)" 1

# The revoking CRL under the same file name, then a reload.
cp "$work/revoking.crl" "$work/current.crl.tmp"
mv "$work/current.crl.tmp" "$work/current.crl"
kill -HUP "$daemon"
for _ in $(seq 1 50); do
  grep -q 'event=reloaded' "$LAB/gateway/daemon.log" && break
  sleep 0.1
done
check "the daemon reloaded" grep -q 'event=reloaded' "$LAB/gateway/daemon.log"
check "... and the old connection is still open" eq "$(stat_of open)" 1

second=$(drop_notice 2)
msg=$("$GW" list --config "$cfg" --notice "$second" | awk '$4 == "housing" {print $1}')
for _ in $(seq 1 100); do
  [ "$(q "SELECT count(*) FROM attempts WHERE message_id='$msg'")" -ge 1 ] && break
  sleep 0.1
done
check "the next notice's attempt is refused at TLS" \
  bash -c "sqlite3 '$db' \"SELECT error FROM attempts WHERE message_id='$msg'\" | grep -q '^tls:.*revoked'"
check "... and it waits for a retry" eq "$(state_of "$second" housing | awk '{print $1}')" queued
check "the revoked partner received only the first notice" \
  eq "$(grep -c . "$fr/requests.log")" 1

kill -TERM "$daemon"
rc=0
wait "$daemon" || rc=$?
check "SIGTERM stops the daemon with exit 0" eq "$rc" 0
bundles() { find "$(dirname "$db")" -maxdepth 1 -name "$(basename "$db").crl-*" | wc -l; }
check "no CRL bundle left beside the database after a clean stop" eq "$(bundles)" 0
# One a killed sender left behind goes at the next start.
touch "$db.crl-AbC123"
check "a later run ends" lab_send
check "... and removed the left-over bundle" eq "$(bundles)" 0
finish
