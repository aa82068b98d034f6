# mixed_run.sh: a gateway store with mixed outcomes from a real run, and the
# operator port serving it. Sourced (after tests/integration/common.sh) by
# tests/integration/it_web.sh and tests/web/browser_test.sh.
#
#   web_build_serve      sets SERVE: opweb_serve from the build tree, or built
#                        here against libgwcore.a when there is no target yet
#   web_mixed_run        receivers + `gateway send --until-idle` over the demo
#                        notices and one late release; outcomes: delivered,
#                        held: no consent, failed (health answers 403: we are
#                        not on its allow-list), late (release in 3 days)
#   web_serve NAME ARGS  start opweb_serve on 127.0.0.1; sets SERVE_PORT, SERVE_PID

web_build_serve() {
  SERVE="${GW_BINARY_DIR}/bin/opweb_serve"
  if [ -x "$SERVE" ] && [ "$SERVE" -nt "$SRC/tests/web/opweb_serve.c" ] &&
     [ "$SERVE" -nt "${GW_BINARY_DIR}/libgwcore.a" ]; then
    return 0
  fi
  SERVE="$LAB/opweb_serve"
  local pkgs="openssl libcurl libxml-2.0 xmlsec1-openssl sqlite3 libevent libevent_openssl inih"
  local san=""
  if grep -q '^GW_SANITIZE:BOOL=ON' "${GW_BINARY_DIR}/CMakeCache.txt" 2>/dev/null; then
    san="-fsanitize=address,undefined -fno-omit-frame-pointer"
  fi
  # shellcheck disable=SC2046,SC2086
  cc -std=c11 $san -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I"$SRC/gateway" \
    $(pkg-config --cflags $pkgs) "$SRC/tests/web/opweb_serve.c" \
    "${GW_BINARY_DIR}/libgwcore.a" $(pkg-config --libs $pkgs) -lpthread -lm -o "$SERVE"
}

web_mixed_run() {
  lab_receiver housing "$ORGNR_HOUSING"
  lab_receiver nav "$ORGNR_NAV"
  lab_receiver health "$ORGNR_HEALTH"
  lab_receiver prison "$ORGNR_PRISON"
  # health does not allow us: 403, failed without retry.
  local health_port=$RECEIVER_PORT_HEALTH
  kill "$(cat "$LAB/health/pid")"
  wait "$(cat "$LAB/health/pid")" 2>/dev/null || true
  sed -i "s/^allow = .*/allow = $ORGNR_NAV/; s/^listen = .*/listen = 127.0.0.1:$health_port/" \
    "$LAB/health/receiver.conf"
  "$GW" receive --config "$LAB/health/receiver.conf" 2>>"$LAB/health/receiver.log" &
  LAB_PIDS+=($!)
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$health_port") 2>/dev/null && break
    sleep 0.05
  done
  lab_gateway_config
  # A release three days from now (Oslo): inside the lead time, so late.
  local soon
  soon=$(TZ=Europe/Oslo date -d '+3 days' +%F)
  sed -e 's/id="KDI-2027-004101"/id="KDI-2027-009901"/' \
      -e "s/<Release date=\"[0-9-]*\"/<Release date=\"$soon\"/" \
      "$SRC/spool/demo/01-release-full-consent.xml" > "$LAB/late.xml"
  lab_drop "$SRC"/spool/demo/*.xml "$LAB/late.xml"
  lab_send
}

web_serve() { # web_serve NAME ARGS...
  local name=$1
  shift
  rm -f "$LAB/$name.port"
  "$SERVE" --config "$LAB/gateway/gateway.conf" --port-file "$LAB/$name.port" \
    --max-seconds 300 "$@" 2>>"$LAB/gateway/$name.log" &
  SERVE_PID=$!
  LAB_PIDS+=($!)
  for _ in $(seq 1 100); do
    [ -s "$LAB/$name.port" ] && break
    sleep 0.05
  done
  SERVE_PORT=$(cat "$LAB/$name.port")
}
