# lab.sh: shell functions that stand up a gateway and partners' receivers on
# loopback. Sourced by scripts/demo.sh and tests/integration/*.sh so both run
# the same real processes the same way.
#
#   LAB        working directory (created)
#   GW         path to the gateway executable
#   PKI        development PKI directory (certs/mkpki.sh output)
#   SRC        source tree (schemas/)
#
# Parties and their organisation numbers come from $PKI/orgnr.env.

lab_init() {
  mkdir -p "$LAB"
  # shellcheck disable=SC1091
  . "$PKI/orgnr.env"
  LAB_PIDS=()
  trap lab_stop EXIT
}

# lab_receiver NAME ORGNR [CERTBASE]: start `gateway receive` for a partner on
# an ephemeral loopback port; sets RECEIVER_PORT_<NAME>.
lab_receiver() {
  local name=$1 orgnr=$2 base=${3:-$1} dir="$LAB/$1"
  mkdir -p "$dir"
  cat > "$dir/receiver.conf" <<CONF
[identity]
orgnr = $orgnr
key = $PKI/$base.key
cert = $PKI/$base.pem
trust = $PKI/ca.pem
crl = $PKI/ca.crl
test_nins = true
schemas = $SRC/schemas

[receiver]
listen = 127.0.0.1:0
inbox = $dir/inbox
db = $dir/receiver.db
allow = $ORGNR_GATEWAY
workers = ${LAB_WORKERS:-1}
CONF
  rm -f "$dir/port"
  "$GW" receive --config "$dir/receiver.conf" --port-file "$dir/port" \
    2>>"$dir/receiver.log" &
  LAB_PIDS+=($!)
  echo $! > "$dir/pid"
  local i
  for i in $(seq 1 100); do
    [ -s "$dir/port" ] && break
    sleep 0.05
  done
  if [ ! -s "$dir/port" ]; then
    echo "lab: receiver $name did not start; its log:" >&2
    cat "$dir/receiver.log" >&2
    return 1
  fi
  printf -v "RECEIVER_PORT_${name^^}" '%s' "$(cat "$dir/port")"
}

# lab_gateway_config: write $LAB/gateway/gateway.conf with one endpoint per
# receiver started so far (housing, nav, health in 0301; prison by orgnr).
lab_gateway_config() {
  local dir="$LAB/gateway"
  mkdir -p "$dir/spool"
  {
    cat <<CONF
[identity]
orgnr = $ORGNR_GATEWAY
key = $PKI/gateway.key
cert = $PKI/gateway.pem
trust = $PKI/ca.pem
crl = $PKI/ca.crl
test_nins = true
schemas = $SRC/schemas

[gateway]
spool = $dir/spool
db = $dir/gateway.db
pseudonym_key = $dir/pseudonym.key
retry_base = ${LAB_RETRY_BASE:-1}
retry_cap = ${LAB_RETRY_CAP:-5}
operator_listen = ${LAB_OPERATOR_LISTEN:-127.0.0.1:0}
CONF
    local name org svc port
    for name in housing nav health prison; do
      port_var="RECEIVER_PORT_${name^^}"
      port=${!port_var:-}
      [ -n "$port" ] || continue
      org_var="ORGNR_${name^^}"
      org=${!org_var}
      svc=$name
      cat <<CONF

[endpoint $name]
orgnr = $org
services = $svc
municipalities = 0301
url = https://127.0.0.1:$port/notices
CONF
      if [ "$name" = prison ]; then echo "consent = not-required"; fi
    done
  } > "$dir/gateway.conf"
}

# lab_drop FILE...: deliver notices into the spool the Maildir way.
lab_drop() {
  local spool="$LAB/gateway/spool" f
  mkdir -p "$spool/incoming/tmp" "$spool/incoming/new"
  for f in "$@"; do
    cp "$f" "$spool/incoming/tmp/$(basename "$f")"
    mv "$spool/incoming/tmp/$(basename "$f")" "$spool/incoming/new/$(basename "$f")"
  done
}

# lab_send [ARGS]: run the gateway until nothing more is due now.
lab_send() {
  "$GW" send --config "$LAB/gateway/gateway.conf" --until-idle --max-seconds "${LAB_MAX_SECONDS:-60}" "$@" \
    2>>"$LAB/gateway/gateway.log"
}

lab_stop() {
  local pid
  for pid in "${LAB_PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${LAB_PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  LAB_PIDS=()
}

# lab_export_evidence NAME: copy partner NAME's evidence out of its inbox
# database (`gateway inbox export`) into $LAB/NAME/evidence/ as
# ID.message.xml (the bytes received) and ID.receipt.xml (the receipt
# answered), for xmlsec1 and anyone else to verify.
lab_export_evidence() {
  local dir="$LAB/$1" id
  [ -f "$dir/receiver.conf" ] || return 0
  mkdir -p "$dir/evidence"
  for id in $("$GW" inbox list --config "$dir/receiver.conf" | awk 'NR > 1 { print $1 }'); do
    "$GW" inbox export "$id" --message --config "$dir/receiver.conf" > "$dir/evidence/$id.message.xml"
    "$GW" inbox export "$id" --receipt --config "$dir/receiver.conf" > "$dir/evidence/$id.receipt.xml"
  done
}
