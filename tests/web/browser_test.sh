#!/usr/bin/env bash
# browser_test.sh [BUILD_DIR]: the operator web view in a real headless
# Chromium. Not part of ctest: it installs what it needs, which takes network
# access to the Debian and npm registries:
#   - Debian's chromium (apt-get, as root) when /usr/bin/chromium is missing;
#   - playwright-core (npm, pinned in package.json) into tests/web/node_modules
#     (git-ignored); playwright's own browser download is never used.
# Then a real run with mixed outcomes (mixed_run.sh) fills a store,
# opweb_serve serves it on 127.0.0.1, and browser.mjs drives
# /usr/bin/chromium: gaps first, clicks overview -> notice -> message, no nin
# or name on any page, no CSP violation, and a full-page screenshot of the
# overview written to docs/web-screenshot.png.
#
# BUILD_DIR (default: build) must hold a built tree (make build).
# SCREENSHOT=FILE writes the screenshot elsewhere (CI: an artifact, so the
# source tree stays clean).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
screenshot=${SCREENSHOT:-$src/docs/web-screenshot.png}

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "browser_test: /usr/bin/chromium is missing; run as root to install it" >&2
    exit 2
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
fi
if ! command -v npm >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "browser_test: npm is missing; run as root to install nodejs and npm" >&2
    exit 2
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
  # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads nothing, but be sure.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$here" --no-audit --no-fund \
    --no-package-lock >/dev/null
fi

export GW_SOURCE_DIR="$src" GW_BINARY_DIR="$build" GW_PKI_DIR="$build/pki" \
  GW_GATEWAY="$build/bin/gateway"
"$src/certs/mkpki.sh" "$GW_PKI_DIR"
# shellcheck source=../integration/common.sh
. "$src/tests/integration/common.sh"
# shellcheck source=mixed_run.sh
. "$src/tests/web/mixed_run.sh"
web_build_serve
check "a run with mixed outcomes" web_mixed_run
# The same hostile reason as it_web.sh: markup and a nin-shaped number.
failed_msg=$("$GW" list --config "$LAB/gateway/gateway.conf" --state failed | awk 'NR==1 {print $1}')
sqlite3 "$LAB/gateway/gateway.db" "UPDATE messages SET reason =
  'refused: TLS client not allowed (HTTP 403) <script>alert(1)</script> 02918510055'
  WHERE message_id = '$failed_msg'"
web_serve web

# What must never show: the demo notices' nins and the words of every name.
grep -ho 'nin="[0-9]*"' "$SRC"/spool/demo/*.xml | cut -d'"' -f2 > "$LAB/forbidden.txt"
grep -hoE '(givenName|familyName| name)="[^"]*"' "$SRC"/spool/demo/*.xml | cut -d'"' -f2 |
  tr ' ' '\n' | awk 'length($0) > 3' | sort -u >> "$LAB/forbidden.txt"
check "the forbidden words were found" test "$(wc -l < "$LAB/forbidden.txt")" -ge 5

check "headless Chromium over the web view" \
  timeout 180 node "$here/browser.mjs" "http://127.0.0.1:$SERVE_PORT" \
  "$screenshot" "$LAB/forbidden.txt"
finish
