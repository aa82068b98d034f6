# shellcheck shell=bash
# faultrecv_common.sh: set-up shared by the tests against the fault receiver
# (it_send_*.sh, tests/faultrecv). Sourced instead of common.sh, not run:
# finds the fault receiver (GW_FAULTRECV, or bin/faultrecv in the build
# tree; fails at once without one), sources common.sh and names the
# gateway's configuration and database (cfg, db), the fault receiver's state
# directory (fr) and q, a query on the gateway's database.
#
#   faultrecv_start MODE [ARGS...]  start it with housing's certificate in
#                                   MODE (extra ARGS: --alt-cert ...); sets
#                                   fr_pid and RECEIVER_PORT_HOUSING
#   mode WORD [ARG]                 switch its mode at once (SIGHUP), waiting
#                                   for its acknowledgement
FAULTRECV=${GW_FAULTRECV:-${GW_BINARY_DIR:-}/bin/faultrecv}
if [ ! -x "$FAULTRECV" ]; then
  echo "FAIL: no fault receiver at '$FAULTRECV' (CMake target faultrecv)" >&2
  exit 1
fi
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

cfg="$LAB/gateway/gateway.conf"
db="$LAB/gateway/gateway.db"
fr="$LAB/fault"
q() { sqlite3 "$db" "$1"; }

faultrecv_start() {
  local initial=$1
  shift
  mkdir -p "$fr"
  echo "$initial" > "$fr/mode"
  "$FAULTRECV" --cert "$PKI/housing.pem" --key "$PKI/housing.key" --trust "$PKI/ca.pem" \
    "$@" --mode-file "$fr/mode" --state-dir "$fr" 2>>"$fr/faultrecv.log" &
  fr_pid=$!
  LAB_PIDS+=("$fr_pid")
  for _ in $(seq 1 100); do [ -s "$fr/port" ] && break; sleep 0.05; done
  [ -s "$fr/port" ] || { echo "faultrecv did not start" >&2; cat "$fr/faultrecv.log" >&2; exit 1; }
  RECEIVER_PORT_HOUSING=$(cat "$fr/port")
}

mode() {
  rm -f "$fr/ack"
  echo "$*" > "$fr/mode"
  kill -HUP "$fr_pid"
  for _ in $(seq 1 100); do [ -s "$fr/ack" ] && break; sleep 0.02; done
}
