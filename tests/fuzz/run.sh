#!/usr/bin/env bash
# run.sh SECONDS_PER_TARGET [BUILD_DIR]: build and run the libFuzzer targets.
#
#   bash tests/fuzz/run.sh 60 build-fuzz
#
# BUILD_DIR (default build-fuzz, relative to the current directory) gets:
#   pki/                 the development PKI (certs/mkpki.sh), made if missing
#   fuzz/build/          the tests/fuzz CMake project, built with CC=clang
#   fuzz/corpus/TARGET/  the working corpus: a copy of tests/fuzz/corpus/TARGET,
#                        plus seeds signed under pki/ (mkseeds), plus what the
#                        fuzzer finds; kept between runs
#   fuzz/crashes/        crash, leak, timeout and out-of-memory inputs,
#                        named TARGET-crash-SHA1 and so on
#   fuzz/logs/TARGET.log the fuzzer's output
# Each target runs for SECONDS_PER_TARGET with -max_len=65536 -timeout=10
# -rss_limit_mb=2048. After a crash the target is started again for the
# time left (at most 3 crashes per target), so one bug does not hide the
# next. One line per target is printed; the exit status is 1 when any
# target crashed, 2 on a usage or build error.
#
# Environment: TARGETS="notice config" restricts the targets; FUZZ_ARGS adds
# libFuzzer flags; CC (default clang).
set -euo pipefail

usage() { echo "usage: run.sh SECONDS_PER_TARGET [BUILD_DIR]" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
seconds=$1
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then usage; fi
build=${2:-build-fuzz}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
mkdir -p "$build"
build=$(cd "$build" && pwd)
out=$build/fuzz
targets=${TARGETS:-notice message receipt config}
max_crashes=3

mkdir -p "$out/crashes" "$out/logs" "$out/corpus"

if [ ! -f "$build/pki/.complete" ]; then
  echo "run.sh: making the development PKI in $build/pki"
  "$src/certs/mkpki.sh" "$build/pki" >"$out/logs/mkpki.log" 2>&1 ||
    { cat "$out/logs/mkpki.log" >&2; exit 2; }
fi

echo "run.sh: building the fuzzers in $out/build"
if ! { CC=${CC:-clang} cmake -S "$here" -B "$out/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
       cmake --build "$out/build" -j "$(nproc)"; } >"$out/logs/build.log" 2>&1; then
  cat "$out/logs/build.log" >&2
  echo "run.sh: the build failed" >&2
  exit 2
fi
if grep -q "warning:" "$out/logs/build.log"; then
  grep "warning:" "$out/logs/build.log" >&2
fi

export GW_SOURCE_DIR=$src
export GW_PKI_DIR=$build/pki
unset GW_FUZZ_VERBOSE

# Working corpora: the committed seeds, plus signatures that verify under this PKI.
for t in $targets; do
  mkdir -p "$out/corpus/$t"
  cp -p "$here/corpus/$t/"* "$out/corpus/$t/"
done
mkdir -p "$out/seeds/message" "$out/seeds/receipt"
if "$out/build/mkseeds" "$GW_PKI_DIR" "$src" "$out/seeds" >"$out/logs/mkseeds.log" 2>&1; then
  for t in message receipt; do
    [ -d "$out/corpus/$t" ] || continue
    for f in "$out/seeds/$t/"*; do cp "$f" "$out/corpus/$t/pki-$(basename "$f")"; done
  done
else
  echo "run.sh: mkseeds failed (see $out/logs/mkseeds.log); fuzzing from the committed seeds" >&2
fi

dict_for() {
  case $1 in
    config) echo "$here/config.dict" ;;
    *) echo "$here/xml.dict" ;;
  esac
}

stat_of() { # $1 = log, $2 = stat name: the value from -print_final_stats
  awk -v k="stat::$2:" '$1 == k { v = $2 } END { print v + 0 }' "$1"
}

failed=0
printf '%-8s %-8s %12s %9s %s\n' target result executions exec/s detail
for t in $targets; do
  bin=$out/build/fuzz_$t
  log=$out/logs/$t.log
  : >"$log"
  start=$(date +%s)
  execs=0
  crashes=0
  result=ok
  detail=""
  while :; do
    left=$(( seconds - ($(date +%s) - start) ))
    [ "$left" -gt 0 ] || break
    part=$out/logs/$t.part
    set +e
    # shellcheck disable=SC2086
    "$bin" "$out/corpus/$t" -max_total_time="$left" -max_len=65536 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 -dict="$(dict_for "$t")" \
      -artifact_prefix="$out/crashes/$t-" ${FUZZ_ARGS:-} >"$part" 2>&1
    rc=$?
    set -e
    cat "$part" >>"$log"
    execs=$(( execs + $(stat_of "$part" number_of_executed_units) ))
    [ "$rc" -eq 0 ] && break
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$part" | tail -1)
    # A broken property aborts (libFuzzer: deadly signal): name the property instead.
    kind=$(grep -o -m1 'VIOLATION in [a-z]*: .*' "$part" ||
           grep -o -m1 -E 'ERROR: (AddressSanitizer: [a-z-]+|LeakSanitizer: detected memory leaks|libFuzzer: [a-z -]+)' "$part" |
           sed 's/ERROR: //' || true)
    [ -n "$kind" ] || kind="exit $rc"
    crashes=$(( crashes + 1 ))
    result=CRASH
    detail="$detail${detail:+; }$kind -> ${artifact:-no artifact}"
    [ -n "$artifact" ] || break # not a crash libFuzzer could keep: do not loop
    [ "$crashes" -lt "$max_crashes" ] || break
  done
  rm -f "$out/logs/$t.part"
  elapsed=$(( $(date +%s) - start ))
  [ "$elapsed" -gt 0 ] || elapsed=1
  [ "$result" = ok ] || failed=1
  printf '%-8s %-8s %12d %9d %s\n' "$t" "$result" "$execs" $(( execs / elapsed )) "$detail"
done

if [ "$failed" -ne 0 ]; then
  echo "run.sh: crash inputs are in $out/crashes (see tests/fuzz/README.md)" >&2
  exit 1
fi
