#!/usr/bin/env bash
# mkpki.sh OUTDIR: make a development PKI with the openssl command.
#
# Everything goes into OUTDIR (git-ignored under build/). Private keys are
# mode 0600. Certificates carry the organisation as organizationIdentifier
# NTRNO-<orgnr> (SEID 2), are valid for signing and for TLS client and
# server use, and name localhost/127.0.0.1 so loopback tests can check the
# host name. Made:
#   ca.pem ca.key ca.crl          the development CA and its CRL
#   ca-empty.crl                  the same CA's CRL before the revocation
#   NAME-rsa.{pem,key}            RSA-2048, for each party below
#   NAME-ec.{pem,key}             ECDSA P-256, for each party below
#   NAME.{pem,key}                the RSA pair again under a short name
#   expired.{pem,key}             gateway organisation, expired yesterday
#   revoked.{pem,key}             gateway organisation, listed in ca.crl
#   weak.{pem,key}                gateway organisation, RSA-1024 (refused: too weak)
#   untrusted-ca.pem              a CA nobody trusts
#   untrusted.{pem,key}           gateway organisation, issued by untrusted-ca
#   orgnr.env                     the organisation numbers, for scripts
# Parties (organisation numbers with valid mod-11 check digits):
#   gateway  974760673  correctional service (sender)
#   housing  958935420  municipality housing, Oslo (0301)
#   nav      889960221  NAV office, Oslo
#   health   987654325  health service, Oslo
#   prison   922222223  another prison (transfers)
# Re-running is cheap: an existing complete PKI is kept (one made before a
# file was added to this list is made again).
set -euo pipefail

out=${1:?usage: mkpki.sh OUTDIR}
if [ -f "$out/.complete" ] && [ -f "$out/ca-empty.crl" ] && [ -f "$out/weak.pem" ]; then
  exit 0
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

declare -A ORG=(
  [gateway]=974760673 [housing]=958935420 [nav]=889960221
  [health]=987654325 [prison]=922222223
)
declare -A NAME=(
  [gateway]="Kriminalomsorgen Region Sor" [housing]="Oslo kommune Bolig"
  [nav]="NAV Grunerlokka" [health]="Oslo universitetssykehus"
  [prison]="Ila fengsel"
)

ca_conf() { # $1 = CA dir
  cat <<CONF
[ ca ]
default_ca = dev
[ dev ]
dir = $1
database = $1/index.txt
serial = $1/serial
crlnumber = $1/crlnumber
new_certs_dir = $1/newcerts
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
default_crl_days = 3650
[ anything ]
organizationName = optional
organizationIdentifier = optional
commonName = supplied
countryName = optional
serialNumber = optional
[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ v3_party ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment, keyAgreement
extendedKeyUsage = clientAuth, serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CONF
}

make_ca() { # $1 = dir, $2 = CN
  mkdir -p "$1/newcerts"
  : > "$1/index.txt"
  echo 1000 > "$1/serial"
  echo 1000 > "$1/crlnumber"
  ca_conf "$1" > "$1/ca.cnf"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1/ca.key" 2>/dev/null
  openssl req -new -x509 -key "$1/ca.key" -out "$1/ca.pem" -days 3650 -sha256 \
    -subj "/C=NO/O=Notice Gateway Development/CN=$2" -config "$1/ca.cnf" -extensions v3_ca
}

# issue CA_DIR OUT_BASE KEYTYPE ORGNR ORGNAME [START END]
issue() {
  local ca=$1 base=$2 type=$3 orgnr=$4 org=$5 start=${6:-} end=${7:-}
  if [ "$type" = rsa ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$base.key" 2>/dev/null
  elif [ "$type" = rsa1024 ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$base.key" 2>/dev/null
  else
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$base.key" 2>/dev/null
  fi
  openssl req -new -key "$base.key" -out "$work/req.csr" \
    -subj "/C=NO/O=$org/organizationIdentifier=NTRNO-$orgnr/CN=$org ($type)"
  local dates=(-days 825)
  if [ -n "$start" ]; then dates=(-startdate "$start" -enddate "$end"); fi
  openssl ca -batch -notext -config "$ca/ca.cnf" -extensions v3_party -cert "$ca/ca.pem" \
    -keyfile "$ca/ca.key" -in "$work/req.csr" -out "$base.pem" "${dates[@]}" 2>/dev/null
  chmod 600 "$base.key"
  chmod 644 "$base.pem"
}

make_ca "$work/ca" "Notice Gateway Development CA"
for party in "${!ORG[@]}"; do
  for type in rsa ec; do
    issue "$work/ca" "$out/$party-$type" "$type" "${ORG[$party]}" "${NAME[$party]}"
  done
  cp -p "$out/$party-rsa.pem" "$out/$party.pem"
  cp -p "$out/$party-rsa.key" "$out/$party.key"
done

# Expired yesterday, valid for a year before that.
issue "$work/ca" "$out/expired" rsa "${ORG[gateway]}" "${NAME[gateway]}" \
  "$(date -u -d '-366 days' +%Y%m%d%H%M%SZ)" "$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)"
# Revoked, and the CRL that says so (and the one from before: a CRL renewed).
issue "$work/ca" "$out/revoked" rsa "${ORG[gateway]}" "${NAME[gateway]}"
openssl ca -batch -gencrl -config "$work/ca/ca.cnf" -cert "$work/ca/ca.pem" \
  -keyfile "$work/ca/ca.key" -out "$out/ca-empty.crl" 2>/dev/null
openssl ca -batch -config "$work/ca/ca.cnf" -cert "$work/ca/ca.pem" -keyfile "$work/ca/ca.key" \
  -revoke "$out/revoked.pem" -crl_reason keyCompromise 2>/dev/null
openssl ca -batch -gencrl -config "$work/ca/ca.cnf" -cert "$work/ca/ca.pem" \
  -keyfile "$work/ca/ca.key" -out "$out/ca.crl" 2>/dev/null

# Too weak a key (RSA 1024, below security level 2), issued by the trusted CA.
issue "$work/ca" "$out/weak" rsa1024 "${ORG[gateway]}" "${NAME[gateway]}"

# A CA nobody trusts, issuing a certificate that claims the gateway's name.
make_ca "$work/rogue" "Untrusted Rogue CA"
issue "$work/rogue" "$out/untrusted" rsa "${ORG[gateway]}" "${NAME[gateway]}"
cp "$work/rogue/ca.pem" "$out/untrusted-ca.pem"

cp "$work/ca/ca.pem" "$out/ca.pem"
cp "$work/ca/ca.key" "$out/ca.key"
chmod 600 "$out/ca.key"
chmod 644 "$out"/*.pem "$out/ca.crl" "$out/ca-empty.crl"
{
  for party in "${!ORG[@]}"; do echo "ORGNR_${party^^}=${ORG[$party]}"; done
} > "$out/orgnr.env"
chmod 644 "$out/orgnr.env"
touch "$out/.complete"
