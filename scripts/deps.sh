#!/usr/bin/env bash
# deps.sh: make sure the Debian 12 packages the gateway builds and tests with
# are installed (the tests also use xmllint, python3, pgrep and ss). As root it installs what is missing (one apt-get update first);
# otherwise it prints the exact command to run and fails.
set -eu

packages=(
  build-essential cmake pkg-config
  libssl-dev libcurl4-openssl-dev libxml2-dev libxmlsec1-dev libxmlsec1-openssl
  libsqlite3-dev libevent-dev libcmocka-dev libinih-dev libjemalloc-dev
  openssl xmlsec1 sqlite3 curl
  libxml2-utils python3 procps iproute2
)
if [ "${GW_DEPS_EXTRA:-}" ]; then
  read -r -a extra <<<"$GW_DEPS_EXTRA"
  packages+=("${extra[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: run as root:  $cmd" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
