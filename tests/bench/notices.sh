# notices.sh: notice generation shared by tests/bench and tests/crash. Sourced.
#
# gen_notices OUTDIR COUNT FIRST RECIPIENTS
#   writes COUNT notices OUTDIR/KDI-2027-NNNNNN.xml with ids FIRST..FIRST+COUNT-1,
#   built from spool/demo/01-release-full-consent.xml (its synthetic nin, a
#   release date in the future). RECIPIENTS "full": housing, nav and health
#   all with consent (3 messages each); "housing": housing only (1 message).
#   Pure bash string substitution: no process per file.

gen_notices() {
  local out=$1 count=$2 first=$3 which=$4
  local src=${SRC:?} tpl i id
  mkdir -p "$out"
  tpl=$(<"$src/spool/demo/01-release-full-consent.xml")
  if [ "$which" = housing ]; then
    tpl=${tpl//    <Recipient service=\"nav\"\/>$'\n'/}
    tpl=${tpl//    <Recipient service=\"health\"\/>$'\n'/}
    tpl=${tpl//    <Grant service=\"nav\" categories=\"income housing\"\/>$'\n'/}
    tpl=${tpl//    <Grant service=\"health\" categories=\"mental-health\"\/>$'\n'/}
  fi
  tpl=${tpl//KDI-2027-004101/@ID@}
  for ((i = first; i < first + count; i++)); do
    printf -v id 'KDI-2027-%06d' "$i"
    printf '%s\n' "${tpl//@ID@/$id}" > "$out/$id.xml"
  done
}
