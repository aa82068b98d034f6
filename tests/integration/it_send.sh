#!/usr/bin/env bash
# it_send: the sender's behaviour against real receivers over loopback mTLS.
#   1. a partner that is down: the attempt is recorded ("connection: ..."),
#      the message stays queued for a retry, --until-idle still exits; once
#      the partner is back the retry delivers it.
#   2. a server certificate of the wrong organisation: the handshake is
#      refused, the partner receives nothing, the attempt says why.
#   3. SIGHUP with the configuration fixed: the running daemon delivers;
#      SIGTERM then stops it with exit 0.
#   4. 403 (our organisation not allowed): failed, no retry.
. "$(dirname "$0")/common.sh"

cfg="$LAB/gateway/gateway.conf"
attempt_errors() { "$GW" show --config "$cfg" "$1" | grep '^  attempt' || true; }
state_word() { state_of "$@" | awk '{print $1}'; }
msg_of() { "$GW" list --config "$cfg" --notice "$1" | awk -v s="$2" '$4 == s {print $1}'; }

lab_receiver housing "$ORGNR_HOUSING"
lab_receiver nav "$ORGNR_NAV"
lab_receiver health "$ORGNR_HEALTH"
lab_gateway_config

# --- 1. nav is down --------------------------------------------------------
nav_port=$RECEIVER_PORT_NAV
kill "$(cat "$LAB/nav/pid")"
wait "$(cat "$LAB/nav/pid")" 2>/dev/null || true
# housing expects the wrong server organisation (nav's): see 2.
sed -i "/^\[endpoint housing\]/a server_orgnr = $ORGNR_NAV" "$cfg"
lab_drop "$SRC/spool/demo/01-release-full-consent.xml"
check "send exits when only retries later remain" lab_send
nav_msg=$(msg_of KDI-2027-004101 nav)
check "nav message queued for a retry" eq "$(state_word KDI-2027-004101 nav)" queued
check "the attempt says the connection failed" \
  bash -c "'$GW' show --config '$cfg' '$nav_msg' | grep -q 'connection:'"
check "health delivered meanwhile" eq "$(state_of KDI-2027-004101 health)" delivered

# nav comes back on the same port.
sed -i "s/^listen = .*/listen = 127.0.0.1:$nav_port/" "$LAB/nav/receiver.conf"
"$GW" receive --config "$LAB/nav/receiver.conf" 2>>"$LAB/nav/receiver.log" &
LAB_PIDS+=($!)
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$nav_port") 2>/dev/null && break
  sleep 0.05
done
sleep 1.2 # the retry falls due (retry_base 1 s)
check "second run delivers the retry" lab_send
check "nav message delivered" eq "$(state_of KDI-2027-004101 nav)" delivered
check "nav has exactly one item" eq "$(count_inbox nav)" 1
check "two attempts recorded for nav" eq "$(attempt_errors "$nav_msg" | wc -l)" 2

# --- 2. housing's server is not the organisation we expect ---------------------
housing_msg=$(msg_of KDI-2027-004101 housing)
check "housing message not delivered" eq "$(state_word KDI-2027-004101 housing)" queued
check "housing received nothing" eq "$(count_inbox housing)" 0
check "the attempt names the wrong server organisation" \
  bash -c "'$GW' show --config '$cfg' '$housing_msg' | grep -q 'wrong server organisation'"

# --- 3. SIGHUP with the fix, then SIGTERM ------------------------------------
"$GW" send --config "$cfg" 2>>"$LAB/gateway/daemon.log" &
daemon=$!
sleep 0.5
# A reload reads the trust again: a CRL that cannot be read refuses the
# whole reload, and the running configuration stays.
sed -i "s#^crl = .*#crl = $LAB/no-such.crl#" "$cfg"
kill -HUP "$daemon"
for _ in $(seq 1 50); do
  grep -q 'event=reload-failed' "$LAB/gateway/daemon.log" && break
  sleep 0.1
done
check "a reload with an unreadable CRL fails" grep -q 'event=reload-failed.*no-such.crl' "$LAB/gateway/daemon.log"
check "... and the daemon keeps running" kill -0 "$daemon"
sed -i "s#^crl = .*#crl = $PKI/ca.crl#" "$cfg"
sed -i "/^server_orgnr = $ORGNR_NAV\$/d" "$cfg"
kill -HUP "$daemon"
for _ in $(seq 1 150); do
  [ "$(state_of KDI-2027-004101 housing)" = delivered ] && break
  sleep 0.1
done
check "after SIGHUP the housing message is delivered" \
  eq "$(state_of KDI-2027-004101 housing)" delivered
check "housing has exactly one item" eq "$(count_inbox housing)" 1
check "the daemon logged the reload" grep -q 'event=reloaded' "$LAB/gateway/daemon.log"
kill -TERM "$daemon"
rc=0
wait "$daemon" || rc=$?
check "SIGTERM stops the daemon with exit 0" eq "$rc" 0

# --- 4. 403: our organisation is not allowed --------------------------------
sed -i "s/^allow = .*/allow = $ORGNR_NAV/" "$LAB/health/receiver.conf"
kill "$(cat "$LAB/health/pid")"
wait "$(cat "$LAB/health/pid")" 2>/dev/null || true
health_port=$RECEIVER_PORT_HEALTH
sed -i "s/^listen = .*/listen = 127.0.0.1:$health_port/" "$LAB/health/receiver.conf"
"$GW" receive --config "$LAB/health/receiver.conf" 2>>"$LAB/health/receiver.log" &
LAB_PIDS+=($!)
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$health_port") 2>/dev/null && break
  sleep 0.05
done
lab_drop "$SRC/spool/demo/05-community-sentence-direct.xml"
check "third run ends" lab_send
check "403 fails the message without retry" \
  bash -c "'$GW' list --config '$cfg' --notice KDI-2027-004105 | awk '\$4==\"health\"' | grep -q failed"
check "the reason names the refusal" \
  bash -c "'$GW' show --config '$cfg' '$(msg_of KDI-2027-004105 health)' | grep -q 'HTTP 403'"

nins=$(grep -ho 'nin="[0-9]*"' "$SRC"/spool/demo/01-*.xml "$SRC"/spool/demo/05-*.xml | cut -d'"' -f2)
leaked=no
for nin in $nins; do
  grep -q "$nin" "$LAB"/gateway/*.log && leaked="yes ($nin)"
done
check "no nin in the gateway's logs" eq "$leaked" no
finish
