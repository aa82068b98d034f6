#!/usr/bin/env bash
# it_held_release: a recipient the registry does not know is shown as
# "held: no endpoint", never dropped, and is delivered once the registry
# learns it: at the next start, and in a running gateway on SIGHUP.
. "$(dirname "$0")/common.sh"

cfg="$LAB/gateway/gateway.conf"
lab_receiver housing "$ORGNR_HOUSING"
lab_receiver nav "$ORGNR_NAV"
lab_gateway_config            # no health endpoint yet
lab_drop "$SRC/spool/demo/01-release-full-consent.xml"
check "first run until idle" lab_send
check "health is held: no endpoint" eq "$(state_of KDI-2027-004101 health)" "held: no endpoint"
check "housing delivered meanwhile" eq "$(state_of KDI-2027-004101 housing)" delivered

# The registry learns the health service; the next start releases the hold.
lab_receiver health "$ORGNR_HEALTH"
lab_gateway_config
check "second run until idle" lab_send
check "health delivered after restart" eq "$(state_of KDI-2027-004101 health)" delivered
check "health inbox has the item" eq "$(count_inbox health)" 1
check "the release is logged" grep -q 'event=released-held' "$LAB/gateway/gateway.log"

# The same in a running gateway: SIGHUP after the registry changes.
kill "$(cat "$LAB/health/pid")"
unset RECEIVER_PORT_HEALTH
lab_gateway_config
lab_drop "$SRC/spool/demo/05-community-sentence-direct.xml"
"$GW" send --config "$cfg" --max-seconds 60 2>>"$LAB/gateway/gateway.log" &
sender=$!
LAB_PIDS+=("$sender")
wait_for() { # wait_for SECONDS command...: poll until the command succeeds
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
held() { [ "$(state_of KDI-2027-004105 health)" = "held: no endpoint" ]; }
check "running gateway holds health: no endpoint" wait_for 20 held
lab_receiver health "$ORGNR_HEALTH"
lab_gateway_config
kill -HUP "$sender"
delivered() { [ "$(state_of KDI-2027-004105 health)" = delivered ]; }
check "SIGHUP releases and delivers it" wait_for 20 delivered
check "the reload is in the audit trail" \
  bash -c "'$GW' audit verify --config '$cfg' >/dev/null && sqlite3 '$LAB/gateway/gateway.db' \"SELECT count(*) FROM audit WHERE event='config-reload'\" | grep -qx 1"
kill -TERM "$sender"
check "SIGTERM stops the gateway with exit 0" wait "$sender"

finish
