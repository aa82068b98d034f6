# shellcheck shell=bash
# faultrecv_common.sh: set-up shared by the tests against the fault receiver
# (it_send_*.sh, tests/faultrecv). Sourced instead of common.sh, not run:
# finds the fault receiver (GW_FAULTRECV, or bin/faultrecv in the build
# tree; fails at once without one), sources common.sh and names the
# gateway's configuration and database (cfg, db), the fault receiver's state
# directory (fr) and q, a query on the gateway's database.
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
