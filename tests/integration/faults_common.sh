# shellcheck shell=bash
# faults_common.sh: what the fault suite (it_faults_*.sh) shares. Sourced
# after common.sh, not run.
#
#   fault_shim_build     compile tests/faults/failfs.c into the build tree and
#                        point GW at a wrapper that runs the real gateway
#                        under it (GW_REAL stays the plain binary); under an
#                        ASan build the sanitizer runtime is preloaded first
#   fault_set RULE...    replace the rules ("ENOSPC PREFIX", "EROFS PREFIX");
#   fault_clear          no rule: everything works again
#   fault_fired PATTERN  the shim refused a call whose trace line matches
#   daemon_start / daemon_stop    `gateway send` in the background
#   wait_for SECONDS CMD...       poll until CMD succeeds
#   no_nin NIN FILE...            no file holds those digits
#   sql DB QUERY                  a read-only query that waits out locks

GW_REAL=$GW
FAULT_CTL="$LAB/failfs.rules"
FAULT_TRACE="$LAB/failfs.trace"

fault_shim_build() {
  local so="$GW_BINARY_DIR/tmp/failfs.so" preload
  mkdir -p "$GW_BINARY_DIR/tmp"
  if [ ! -f "$so" ] || [ "$SRC/tests/faults/failfs.c" -nt "$so" ]; then
    gcc -shared -fPIC -O2 -Wall -Wextra -Werror -o "$so.$$" "$SRC/tests/faults/failfs.c" -ldl
    mv -f "$so.$$" "$so"
  fi
  preload=$so
  # Read all of ldd's output first: with pipefail, grep -q quitting early
  # could SIGPIPE ldd and make a sanitizer build look like a plain one.
  local libs
  libs=$(ldd "$GW_REAL")
  if grep -q 'libasan\.so' <<<"$libs"; then
    preload="$(gcc -print-file-name=libasan.so) $so"
  fi
  : > "$FAULT_CTL"
  : > "$FAULT_TRACE"
  cat > "$LAB/gateway-faulty" <<SH
#!/bin/sh
LD_PRELOAD="$preload" FAILFS_CONTROL="$FAULT_CTL" FAILFS_TRACE="$FAULT_TRACE" exec "$GW_REAL" "\$@"
SH
  chmod 0755 "$LAB/gateway-faulty"
  GW="$LAB/gateway-faulty"
}

fault_set() {
  printf '%s\n' "$@" > "$FAULT_CTL.new"
  mv -f "$FAULT_CTL.new" "$FAULT_CTL"
}
fault_clear() { : > "$FAULT_CTL"; }
fault_fired() { grep -q -- "$1" "$FAULT_TRACE"; }

DAEMON_PID=
daemon_start() {
  "$GW" send --config "$LAB/gateway/gateway.conf" --max-seconds 170 "$@" \
    2>>"$LAB/gateway/gateway.log" &
  DAEMON_PID=$!
  LAB_PIDS+=("$DAEMON_PID")
}
daemon_stop() {
  [ -n "$DAEMON_PID" ] || return 0
  kill -TERM "$DAEMON_PID" 2>/dev/null || true
  wait "$DAEMON_PID" 2>/dev/null || true
  DAEMON_PID=
}

wait_for() {
  local limit=$1 i
  shift
  for ((i = 0; i < limit * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  echo "  gave up after $limit s waiting for: $*" >&2
  return 1
}

no_nin() {
  local nin=$1
  shift
  ! grep -l -- "$nin" "$@"
}

# sql DB QUERY: read-only, waiting out a moment's lock (a checkpoint) instead
# of failing the check with SQLITE_BUSY.
sql() { sqlite3 -cmd '.timeout 5000' "file:$1?mode=ro" "$2"; }

in_new() { [ -f "$LAB/gateway/spool/incoming/new/$1" ]; }
not_in_new() { [ ! -e "$LAB/gateway/spool/incoming/new/$1" ]; }
log_has() { grep -q -- "$1" "$LAB/gateway/gateway.log"; }
# count_lines PATTERN FILE: matching lines (0 when none)
count_lines() { grep -c -- "$1" "$2" || true; }

# fault_lab: the three receivers and the gateway's configuration, with the
# names both fault tests use: cfg, db, spool, log, and the helpers q,
# messages_of, delivered_of, all_delivered and has. Call fault_shim_build
# first when the processes should run under the shim.
fault_lab() {
  lab_receiver housing "$ORGNR_HOUSING"
  lab_receiver nav "$ORGNR_NAV"
  lab_receiver health "$ORGNR_HEALTH"
  lab_gateway_config
  cfg="$LAB/gateway/gateway.conf"
  db="$LAB/gateway/gateway.db"
  spool="$LAB/gateway/spool"
  log="$LAB/gateway/gateway.log"
}
q() { sql "$db" "$1"; }
messages_of() { q "SELECT count(*) FROM messages WHERE notice_id = '$1'"; }
delivered_of() { q "SELECT count(*) FROM messages WHERE notice_id = '$1' AND state = 'delivered'"; }
all_delivered() { [ "$(delivered_of "$1")" = "$2" ]; }
has() { grep -q -- "$2" <<<"$1" || { echo "  '$2' not in: $1" >&2; return 1; }; }
