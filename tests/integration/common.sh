# common.sh: set-up shared by the integration tests. Sourced, not run.
# CTest provides GW_GATEWAY, GW_PKI_DIR, GW_SOURCE_DIR and GW_BINARY_DIR.
set -euo pipefail
SRC=${GW_SOURCE_DIR:?}
GW=${GW_GATEWAY:?}
PKI=${GW_PKI_DIR:?}
LAB="${GW_BINARY_DIR:?}/tmp/$(basename "$0" .sh).$$"
rm -rf "$LAB"
# shellcheck source=../../scripts/lab.sh
. "$SRC/scripts/lab.sh"
lab_init

FAILS=0
PASSES=0
check() { # check "what" command...
  local what=$1
  shift
  if "$@"; then
    PASSES=$((PASSES + 1))
    echo "ok: $what"
  else
    FAILS=$((FAILS + 1))
    echo "FAIL: $what" >&2
  fi
}
eq() { [ "$1" = "$2" ] || { echo "  expected '$2', got '$1'" >&2; return 1; }; }
finish() {
  echo "$PASSES passed, $FAILS failed"
  if [ "$FAILS" -ne 0 ]; then
    echo "--- logs under $LAB" >&2
    tail -n 20 "$LAB"/*/*.log >&2 || true
    exit 1
  fi
  lab_stop
  rm -rf "$LAB"
}
# state_of NOTICE SERVICE: the state label of that recipient's message
state_of() {
  "$GW" list --config "$LAB/gateway/gateway.conf" --notice "$1" |
    awk -v s="$2" '$4 == s { $1=$2=$3=$4=$5=""; sub(/^ +/, ""); print }'
}
count_inbox() { find "$LAB/$1/inbox/new" -name '*.xml' 2>/dev/null | wc -l; }
