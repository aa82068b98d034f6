#!/usr/bin/env bash
# run.sh BUILD_DIR: `make bench`. Measures the gateway on this machine and
# prints ONE table, every row measured in this run, for RSA-2048 and ECDSA
# P-256, each figure next to its baseline or limit and the target of issue 4.
#
#   signing      bench_sign (notice -> filtered copy -> Message -> signed bytes,
#                one core) vs `openssl speed -seconds 3` signs/s, one core
#   end to end   N notices with one recipient each (1 message per notice)
#                dropped into the spool, `gateway send --until-idle` timed from
#                start to exit (every message delivered with a verified
#                receipt) against one local receiver (workers 2), vs
#                  - the shell baseline: per message `xmlsec1 --sign`, `curl`
#                    with the client certificate to the same receiver,
#                    `xmlsec1 --verify` of the receipt;
#                  - the crypto ceiling from openssl speed: a message costs two
#                    signatures and two verifications, so per core
#                    1 / (2/sign + 2/verify), times the number of cores
#                BENCH_RUNS runs of it and of the shell baseline, alternating;
#                the median of each is reported (the runs are listed below
#                the table)
#   latency      the daemon (`gateway send`), one file at a time: rename into
#                incoming/new -> its event=delivered log line; p50, p99
#   memory       peak resident set: sender (wait4 ru_maxrss of the end-to-end
#                run; VmHWM of the latency daemon), receiver (VmHWM of its
#                parent and workers after all of the above)
#   scheduling   bench_sched on 10,000 and 1,000,000 queued messages:
#                messages_due(limit 1) + next_due_ms, all due and none due;
#                restart (open + recover_sending + next_due_ms); and the real
#                daemon started on the 1,000,000-message store: time to its
#                "event=started" line, VmHWM
#
# Knobs (environment): BENCH_NOTICES (500), BENCH_BASELINE (30), BENCH_RUNS (3),
# BENCH_LATENCY (200), BENCH_QUEUE (1000000), BENCH_KEYS ("rsa ec").
# BENCH_SCHED=0 skips the scheduling rows (signing, end to end, latency and
# memory only: the quick form to use while changing the delivery path).
# BENCH_RECEIVER_NODELAY=1 is an experiment, not the product: the receivers
# run with tests/bench/nodelay_shim.c preloaded (TCP_NODELAY on accepted
# sockets) and the table header says WHAT-IF.
# Work files and logs: BUILD_DIR/bench/. Everything runs on 127.0.0.1 and is
# stopped on exit. Exit 0 when every measurement ran (a missed target is
# reported in the table, not as a failure); 1 when a measurement failed.
set -euo pipefail

build=${1:-build}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
case $build in /*) B=$build ;; *) B=$SRC/$build ;; esac
GW=$B/bin/gateway
PKI=$B/pki
OUT=$B/bench
N=${BENCH_NOTICES:-500}
BASE_N=${BENCH_BASELINE:-30}
RUNS=${BENCH_RUNS:-3}
LAT_N=${BENCH_LATENCY:-200}
BIG=${BENCH_QUEUE:-1000000}
SMALL=10000
KEYS=${BENCH_KEYS:-rsa ec}
CORES=$(nproc)
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
WHATIF=

[ -x "$GW" ] || { echo "bench: $GW not found; build first (make build)" >&2; exit 1; }
for tool in openssl xmlsec1 curl gcc pkg-config; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done

rm -rf "$OUT"
mkdir -p "$OUT/bin"
say() { printf '[bench %3ds] %s\n' $(($(date +%s) - T_START)) "$*" >&2; }

# ---- the small C programs (same flags as the project; warnings are errors)
PKGS="openssl libcurl libxml-2.0 xmlsec1-openssl sqlite3 libevent libevent_openssl inih"
CFLAGS_BENCH=(-std=c11 -O2 -Wall -Wextra -Wpedantic -Wshadow -Wformat=2 -Wno-unused-parameter
  -Werror -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I"$SRC/gateway")
say "compiling tests/bench/*.c against $B/libgwcore.a"
# shellcheck disable=SC2046
for prog in bench_sign bench_sched; do
  gcc "${CFLAGS_BENCH[@]}" $(pkg-config --cflags $PKGS) "$SRC/tests/bench/$prog.c" \
    "$B/libgwcore.a" $(pkg-config --libs $PKGS) -lpthread -lm -o "$OUT/bin/$prog"
done
gcc "${CFLAGS_BENCH[@]}" "$SRC/tests/bench/bench_daemon.c" -o "$OUT/bin/bench_daemon"
BD=$OUT/bin/bench_daemon
if [ "${BENCH_RECEIVER_NODELAY:-0}" = 1 ]; then
  gcc -std=gnu11 -O2 -Wall -Wextra -Werror -shared -fPIC "$SRC/tests/bench/nodelay_shim.c" \
    -o "$OUT/bin/nodelay_shim.so" -ldl
  cat > "$OUT/bin/gateway" <<WRAP
#!/bin/sh
if [ "\$1" = receive ]; then LD_PRELOAD=$OUT/bin/nodelay_shim.so exec "$GW" "\$@"; fi
exec "$GW" "\$@"
WRAP
  chmod +x "$OUT/bin/gateway"
  GW=$OUT/bin/gateway
  WHATIF="WHAT-IF (not the product): receivers run with TCP_NODELAY on accepted sockets (LD_PRELOAD tests/bench/nodelay_shim.c)"
fi

"$SRC/certs/mkpki.sh" "$PKI"
# shellcheck source=../../scripts/lab.sh
. "$SRC/scripts/lab.sh"
# shellcheck source=notices.sh
. "$SRC/tests/bench/notices.sh"

declare -A R # results by name

kv() { # kv LINE KEY: the value of KEY=VALUE in LINE
  local w
  for w in $1; do
    case $w in "$2="*) echo "${w#*=}"; return 0 ;; esac
  done
  echo "?"
}
calc() { awk "BEGIN { printf \"%s\", $* }"; }
fmt() { awk -v v="$1" -v d="${2:-1}" 'BEGIN { if (v == "?" || v == "") print "?"; else printf "%.*f", d, v }'; }

# ---- openssl speed: the limit for one core
speed() { # speed ALG: "sign verify" per second, one core
  local line
  line=$(openssl speed -seconds 3 "$1" 2>/dev/null | awk '/^rsa 2048 bits|^ *256 bits ecdsa/ { print $(NF-1), $NF }' | tail -1)
  [ -n "$line" ] || { echo "bench: cannot read openssl speed $1" >&2; exit 1; }
  echo "$line"
}
say "openssl speed rsa2048, ecdsap256 (3 s each way)"
read -r R[rsa_sign] R[rsa_verify] <<<"$(speed rsa2048)"
read -r R[ec_sign] R[ec_verify] <<<"$(speed ecdsap256)"

receiver_hwm() { # receiver_hwm PID: "largest_kb sum_kb nprocs" of it and its children
  local pid=$1 kids p kb max=0 sum=0 n=0
  kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
  for p in $pid $kids; do
    kb=$(awk '/^VmHWM:/ { print $2 }' /proc/"$p"/status 2>/dev/null || echo 0)
    [ -n "$kb" ] || kb=0
    sum=$((sum + kb)); n=$((n + 1))
    [ "$kb" -gt "$max" ] && max=$kb
  done
  echo "$max $sum $n"
}

median() { # median X...: the middle value (the lower middle of an even count)
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

delivered_count() {
  "$GW" status --config "$LAB/gateway/gateway.conf" | awk 'NF == 2 && $1 == "delivered" { print $2 }'
}

# The shell baseline: one message at a time, three commands each.
baseline() { # baseline KT
  local kt=$1 alg=rsa-sha256 d=$LAB/baseline msg content prefix sig tpl t mid now code ok=0 i t0 t1
  [ "$kt" = ec ] && alg=ecdsa-sha256
  mkdir -p "$d"
  msg=$("$GW" inbox list --config "$LAB/housing/receiver.conf" | awk 'NR == 2 { print $1 }')
  "$GW" inbox export "$msg" --message --config "$LAB/housing/receiver.conf" > "$d/sample.xml"
  content=$(<"$d/sample.xml")
  prefix=${content%%<ds:Signature*}
  sig='<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#'$alg'"/><ds:Reference URI=""><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature></Message>'
  tpl="$prefix$sig"
  tpl=${tpl/<MessageId>*<\/MessageId>/<MessageId>@MID@<\/MessageId>}
  tpl=${tpl/<Created>*<\/Created>/<Created>@NOW@<\/Created>}
  t0=$(date +%s%N)
  for ((i = 0; i < BASE_N; i++)); do
    mid=$(</proc/sys/kernel/random/uuid)
    TZ=UTC printf -v now '%(%Y-%m-%dT%H:%M:%SZ)T' -1
    t=${tpl/@MID@/$mid}
    t=${t/@NOW@/$now}
    printf '%s' "$t" > "$d/template.xml"
    xmlsec1 --sign --privkey-pem "$PKI/gateway-$kt.key,$PKI/gateway-$kt.pem" \
      --output "$d/signed.xml" "$d/template.xml" 2>>"$d/xmlsec1.log"
    code=$(curl -sS --max-time 30 -o "$d/receipt.xml" -w '%{http_code}' \
      --cert "$PKI/gateway-$kt.pem" --key "$PKI/gateway-$kt.key" --cacert "$PKI/ca.pem" \
      -H 'Content-Type: application/xml' --data-binary @"$d/signed.xml" \
      "https://127.0.0.1:$RECEIVER_PORT_HOUSING/notices" 2>>"$d/curl.log" || true)
    if [ "$code" = 200 ] &&
       xmlsec1 --verify --trusted-pem "$PKI/ca.pem" --enabled-reference-uris empty \
         "$d/receipt.xml" >/dev/null 2>>"$d/xmlsec1.log" &&
       [[ $(<"$d/receipt.xml") == *'<Status>accepted</Status>'* ]]; then
      ok=$((ok + 1))
    fi
  done
  t1=$(date +%s%N)
  if [ "$ok" -ne "$BASE_N" ]; then
    echo "bench: shell baseline: only $ok of $BASE_N messages accepted with a verified receipt (see $d)" >&2
    exit 1
  fi
  calc "$BASE_N / (($t1 - $t0) / 1e9)"
}

for kt in $KEYS; do
  LAB=$OUT/$kt
  say "$kt: signing (bench_sign, 3 s, one core)"
  line=$("$OUT/bin/bench_sign" "$SRC" "$PKI/gateway-$kt.key" "$PKI/gateway-$kt.pem" 3)
  R[${kt}_ours_sign]=$(kv "$line" signed_per_s)

  lab_init
  trap lab_stop EXIT
  LAB_WORKERS=2 lab_receiver housing "$ORGNR_HOUSING" "housing-$kt"
  lab_gateway_config
  sed -i "s#^key = .*#key = $PKI/gateway-$kt.key#; s#^cert = .*#cert = $PKI/gateway-$kt.pem#" \
    "$LAB/gateway/gateway.conf"

  # End to end and the shell baseline: RUNS of each, alternating, the
  # median reported (this virtual machine's speed drifts from one second to
  # the next; one run of each is noise). Each end-to-end run has a fresh
  # gateway (store, spool) against the same receiver.
  e2e=() shell=()
  for ((run = 1; run <= RUNS; run++)); do
    if [ "$run" -gt 1 ]; then
      mv "$LAB/gateway" "$LAB/gateway.run$((run - 1))"
      lab_gateway_config
      sed -i "s#^key = .*#key = $PKI/gateway-$kt.key#; s#^cert = .*#cert = $PKI/gateway-$kt.pem#" \
        "$LAB/gateway/gateway.conf"
    fi
    say "$kt: end to end $run/$RUNS, $N notices -> $N messages -> verified receipts"
    gen_notices "$LAB/gen" "$N" 1 housing
    mkdir -p "$LAB/gateway/spool/incoming/tmp" "$LAB/gateway/spool/incoming/new"
    # Into the spool the Maildir way, before the gateway starts.
    for f in "$LAB"/gen/*.xml; do mv "$f" "$LAB/gateway/spool/incoming/new/"; done
    line=$(timeout 600 "$BD" run "$LAB/gateway/gateway.log" -- \
      "$GW" send --config "$LAB/gateway/gateway.conf" --until-idle --max-seconds 500)
    got=$(delivered_count)
    if [ "$got" != "$N" ]; then
      echo "bench: $kt end to end: $got of $N delivered (see $LAB/gateway/gateway.log)" >&2
      exit 1
    fi
    e2e+=("$(calc "$N / ($(kv "$line" wall_ms) / 1000)")")
    rss=$(kv "$line" maxrss_kb)
    [ "$run" -eq 1 ] || [ "$rss" -gt "${R[${kt}_send_rss_e2e]}" ] && R[${kt}_send_rss_e2e]=$rss
    say "$kt: shell baseline $run/$RUNS, $BASE_N messages (xmlsec1 --sign, curl, xmlsec1 --verify)"
    shell+=("$(baseline "$kt")")
  done
  R[${kt}_e2e]=$(median "${e2e[@]}")
  R[${kt}_shell]=$(median "${shell[@]}")
  R[${kt}_e2e_runs]="${e2e[*]}"
  R[${kt}_shell_runs]="${shell[*]}"

  say "$kt: latency, $LAT_N single drops into the running daemon"
  gen_notices "$LAB/lat" "$LAT_N" 100001 housing
  line=$(timeout 600 "$BD" latency "$LAB/gateway/daemon.log" "$LAB/gateway/spool" "$LAB/lat" "$LAT_N" -- \
    "$GW" send --config "$LAB/gateway/gateway.conf") || {
    echo "bench: $kt latency run failed (see $LAB/gateway/daemon.log)" >&2
    exit 1
  }
  R[${kt}_p50]=$(kv "$line" p50_ms)
  R[${kt}_p99]=$(kv "$line" p99_ms)
  R[${kt}_send_rss_daemon]=$(kv "$line" vmhwm_kb)
  read -r R[${kt}_recv_rss_max] R[${kt}_recv_rss_sum] R[${kt}_recv_nprocs] \
    <<<"$(receiver_hwm "$(cat "$LAB/housing/pid")")"
  lab_stop
done
trap - EXIT

# ---- scheduling
SCHED=${BENCH_SCHED:-1}
SCH=$OUT/sched
if [ "$SCHED" = 1 ]; then
mkdir -p "$SCH/spool"
say "scheduling: filling $SMALL and $BIG queued messages (store API, 10k per transaction)"
line=$("$OUT/bin/bench_sched" fill "$SCH/small.db" "$SMALL" 2>>"$SCH/bench_sched.log")
line=$(timeout 900 "$OUT/bin/bench_sched" fill "$SCH/big.db" "$BIG" 2>>"$SCH/bench_sched.log")
R[fill_s]=$(kv "$line" fill_s)
say "scheduling: timing (filled $BIG in ${R[fill_s]} s)"
small=$("$OUT/bin/bench_sched" time "$SCH/small.db" 2>>"$SCH/bench_sched.log")
big=$("$OUT/bin/bench_sched" time "$SCH/big.db" 2>>"$SCH/bench_sched.log")
for k in due_all_us due_none_us window_us restart_ms rss_kb; do
  R[small_$k]=$(kv "$small" "$k")
  R[big_$k]=$(kv "$big" "$k")
done
say "scheduling: gateway send started on the $BIG-message store"
first_kt=${KEYS%% *}
sed -e "s#^db = .*#db = $SCH/big.db#" -e "s#^spool = .*#spool = $SCH/spool#" \
  "$OUT/$first_kt/gateway/gateway.conf" > "$SCH/gateway.conf"
line=$(timeout 300 "$BD" start "$SCH/daemon.log" 3 -- "$GW" send --config "$SCH/gateway.conf") || {
  echo "bench: the daemon did not start on the big store (see $SCH/daemon.log)" >&2
  exit 1
}
R[daemon_start_ms]=$(kv "$line" startup_ms)
R[daemon_rss_kb]=$(kv "$line" vmhwm_kb)
fi

# ---- the table
yes_no() { awk "BEGIN { print ($*) ? \"yes\" : \"NO\" }"; }
name() { case $1 in rsa) echo RSA-2048 ;; ec) echo P-256 ;; esac; }
mib() { fmt "$(calc "$1 / 1024")" 1; }
fmt_list() { local v out=(); for v in "$@"; do out+=("$(fmt "$v" 1)"); done; echo "${out[*]}"; }
BIGL=$BIG
[ "$BIG" = 1000000 ] && BIGL=1M

{
  echo "notice gateway benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "machine: $CORES cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
    "$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); build $build;" \
    "N=$N notices (1 message each), shell baseline $BASE_N messages, latency $LAT_N drops"
  echo "load average (1 5 15 min) at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  [ -z "$WHATIF" ] || echo "$WHATIF"
  echo
  printf '%-40s %10s %10s %10s %8s  %-24s %s\n' ROW OURS BASELINE LIMIT RATIO TARGET MET
  for kt in $KEYS; do
    k=$(name "$kt")
    s=${R[${kt}_sign]} v=${R[${kt}_verify]}
    ceiling=$(calc "$CORES / (2 / $s + 2 / $v)")
    printf '%-40s %10s %10s %10s %8s  %-24s %s\n' "signing $k (msg/s, 1 core)" \
      "$(fmt "${R[${kt}_ours_sign]}" 0)" "-" "$(fmt "$s" 0)" \
      "$(fmt "$(calc "${R[${kt}_ours_sign]} / $s")" 2)" "(openssl speed)" "-"
    printf '%-40s %10s %10s %10s %8s  %-24s %s\n' "end to end $k vs shell (msg/s)" \
      "$(fmt "${R[${kt}_e2e]}" 1)" "$(fmt "${R[${kt}_shell]}" 1)" "-" \
      "$(fmt "$(calc "${R[${kt}_e2e]} / ${R[${kt}_shell]}")" 1)" ">= 50x shell" \
      "$(yes_no "${R[${kt}_e2e]} / ${R[${kt}_shell]} >= 50")"
    printf '%-40s %10s %10s %10s %8s  %-24s %s\n' "end to end $k vs ceiling (msg/s)" \
      "$(fmt "${R[${kt}_e2e]}" 1)" "-" "$(fmt "$ceiling" 0)" \
      "$(fmt "$(calc "${R[${kt}_e2e]} / $ceiling")" 3)" ">= 0.5 of ceiling" \
      "$(yes_no "${R[${kt}_e2e]} / $ceiling >= 0.5")"
    printf '%-40s %10s %10s %10s %8s  %-24s %s\n' "latency $k p50 (ms)" \
      "$(fmt "${R[${kt}_p50]}" 1)" "-" "-" "-" "-" "-"
    printf '%-40s %10s %10s %10s %8s  %-24s %s\n' "latency $k p99 (ms)" \
      "$(fmt "${R[${kt}_p99]}" 1)" "-" "20" "$(fmt "$(calc "${R[${kt}_p99]} / 20")" 2)" "< 20 ms" \
      "$(yes_no "${R[${kt}_p99]} < 20")"
    printf '%-40s %10s %10s %10s %8s  %-24s %s\n' "peak RSS sender $k (MiB)" \
      "$(mib "$(calc "(${R[${kt}_send_rss_e2e]} > ${R[${kt}_send_rss_daemon]}) ? ${R[${kt}_send_rss_e2e]} : ${R[${kt}_send_rss_daemon]}")")" \
      "-" "-" "-" "(reported)" "-"
    printf '%-40s %10s %10s %10s %8s  %-24s %s\n' "peak RSS receiver $k (MiB, 1 proc)" \
      "$(mib "${R[${kt}_recv_rss_max]}")" "-" "-" "-" \
      "(${R[${kt}_recv_nprocs]} procs: $(mib "${R[${kt}_recv_rss_sum]}") MiB)" "-"
  done
  [ "$SCHED" = 1 ] && {
  printf '%-40s %10s %10s %10s %8s  %-24s %s\n' "pick next due, all due (us)" \
    "$(fmt "${R[big_due_all_us]}" 1)" "$(fmt "${R[small_due_all_us]}" 1)" "-" \
    "$(fmt "$(calc "${R[big_due_all_us]} / ${R[small_due_all_us]}")" 2)" "$BIGL/10k <= 1.5" \
    "$(yes_no "${R[big_due_all_us]} / ${R[small_due_all_us]} <= 1.5")"
  printf '%-40s %10s %10s %10s %8s  %-24s %s\n' "pick next due, none due (us)" \
    "$(fmt "${R[big_due_none_us]}" 1)" "$(fmt "${R[small_due_none_us]}" 1)" "-" \
    "$(fmt "$(calc "${R[big_due_none_us]} / ${R[small_due_none_us]}")" 2)" "$BIGL/10k <= 1.5" \
    "$(yes_no "${R[big_due_none_us]} / ${R[small_due_none_us]} <= 1.5")"
  printf '%-40s %10s %10s %10s %8s  %-24s %s\n' "dispatch window, 512 due rows (us)" \
    "$(fmt "${R[big_window_us]}" 0)" "$(fmt "${R[small_window_us]}" 0)" "-" \
    "$(fmt "$(calc "${R[big_window_us]} / ${R[small_window_us]}")" 2)" "(per finished transfer)" "-"
  printf '%-40s %10s %10s %10s %8s  %-24s %s\n' "restart, store API, $BIGL queued (ms)" \
    "$(fmt "${R[big_restart_ms]}" 1)" "$(fmt "${R[small_restart_ms]}" 1)" "-" "-" "(10k in BASELINE)" "-"
  printf '%-40s %10s %10s %10s %8s  %-24s %s\n' "restart, gateway send, $BIGL (ms)" \
    "$(fmt "${R[daemon_start_ms]}" 0)" "-" "-" "-" "(to event=started)" "-"
  printf '%-40s %10s %10s %10s %8s  %-24s %s\n' "RSS gateway send, $BIGL queued (MiB)" \
    "$(mib "${R[daemon_rss_kb]}")" "-" "64" "$(fmt "$(calc "${R[daemon_rss_kb]} / 65536")" 2)" "< 64 MiB" \
    "$(yes_no "${R[daemon_rss_kb]} < 65536")"
  printf '%-40s %10s %10s %10s %8s  %-24s %s\n' "RSS store API, $BIGL queued (MiB)" \
    "$(mib "${R[big_rss_kb]}")" "-" "64" "$(fmt "$(calc "${R[big_rss_kb]} / 65536")" 2)" "< 64 MiB" \
    "$(yes_no "${R[big_rss_kb]} < 65536")"
  }
  echo
  echo "openssl speed (1 core): RSA-2048 ${R[rsa_sign]:-?} sign/s ${R[rsa_verify]:-?} verify/s;" \
    "P-256 ${R[ec_sign]:-?} sign/s ${R[ec_verify]:-?} verify/s. Ceiling = $CORES / (2/sign + 2/verify)."
  for kt in $KEYS; do
    echo "End to end $(name "$kt"), $RUNS runs (msg/s): $(fmt_list ${R[${kt}_e2e_runs]});" \
      "shell baseline: $(fmt_list ${R[${kt}_shell_runs]}); medians in the table."
  done
  echo "Endpoint max_connections 16 (default), receiver workers 2, 1 notice = 1 message." \
    "Fill of $BIG queued: ${R[fill_s]:-(skipped)} s. Total run: $(($(date +%s) - T_START)) s."
} | tee "$OUT/results.txt"
