#!/usr/bin/env bash
# it_web: the operator port (metrics and the read-only web view) over a
# store filled by a real run with mixed outcomes:
#   delivered (demo notices), held: no consent (the refusal), failed (health
#   answers 403: our organisation is not on its allow-list), late (a release
#   three days from now with a 14-day lead time).
# opweb_serve (tests/web/opweb_serve.c) serves that store on 127.0.0.1.
# Checks: metric lines and the exposition format, the gaps come first, the
# drill-down pages, escaping of a hostile reason, no name or nin on any page,
# 405 for other methods, the security headers, 421 for a Host header that
# does not name a loopback address or localhost (DNS rebinding), a notice id
# with ':' (the schema allows it) linked and served, the bounds (headers, idle
# timeout), the refusal of a non-loopback address without TLS, and TLS with
# operator client certificates (served with one, refused without) and its
# connection cap: connections that never finish a handshake, idle or
# trickling, are cut at the timeout and make room for an operator at the
# cap, so they can neither lock operators out nor take the sender's file
# descriptors; only completed handshakes hold their places. The TLS server
# stops cleanly with connections still open.
. "$(dirname "$0")/common.sh"

cfg="$LAB/gateway/gateway.conf"
db="$LAB/gateway/gateway.db"

# shellcheck source=../web/mixed_run.sh
. "$SRC/tests/web/mixed_run.sh"
web_build_serve

# ---- a run with mixed outcomes ---------------------------------------------
# One more notice whose id has ':' (NoticeIdType allows it); taken with the rest.
colon_id=KDI:2027:004199
sed "s/id=\"KDI-2027-004101\"/id=\"$colon_id\"/" "$SRC/spool/demo/01-release-full-consent.xml" \
  > "$LAB/colon-id.xml"
lab_drop "$LAB/colon-id.xml"
check "gateway send runs until idle" web_mixed_run
check "some message failed (health 403)" test "$("$GW" list --config "$cfg" --state failed | wc -l)" -ge 1
check "some message is held" test "$("$GW" list --config "$cfg" --state held | wc -l)" -ge 1

# A hostile reason on one failed message, as if a partner's text came back:
# markup and a nin-shaped number; the page must escape and mask it.
failed_msg=$("$GW" list --config "$cfg" --state failed | awk 'NR==1 {print $1}')
sqlite3 "$db" "UPDATE messages SET reason = '<script>alert(1)</script> x 02918510055 \"q\" & y'
  WHERE message_id = '$failed_msg'"

# ---- the server ----------------------------------------------------------------
web_serve web --timeout 2
web_pid=$SERVE_PID
base="http://127.0.0.1:$SERVE_PORT"
get() { curl -sS --max-time 10 "$base$1"; }
code() { curl -s -o /dev/null --max-time 10 -w '%{http_code}' "$@"; }

# ---- /metrics ------------------------------------------------------------------
get /metrics > "$LAB/metrics.txt"
n_delivered=$("$GW" list --config "$cfg" --state delivered | wc -l)
n_failed=$("$GW" list --config "$cfg" --state failed | wc -l)
n_held=$("$GW" list --config "$cfg" --state held | wc -l)
check "metrics: delivered gauge matches the store" \
  grep -qx "notice_gateway_messages{state=\"delivered\"} $n_delivered" "$LAB/metrics.txt"
check "metrics: failed gauge matches the store" \
  grep -qx "notice_gateway_messages{state=\"failed\"} $n_failed" "$LAB/metrics.txt"
check "metrics: held gauge matches the store" \
  grep -qx "notice_gateway_messages{state=\"held\"} $n_held" "$LAB/metrics.txt"
check "metrics: one late notice" grep -qx 'notice_gateway_late_notices 1' "$LAB/metrics.txt"
check "metrics: nothing undelivered, age 0" \
  grep -qx 'notice_gateway_oldest_undelivered_age_seconds 0.000' "$LAB/metrics.txt"
check "metrics: identity certificate expiry in days" \
  grep -qE '^notice_gateway_certificate_expiry_days\{role="identity",endpoint="",file="[^"]*gateway.pem",sha256="[0-9a-f]{16}"\} [0-9]+\.[0-9]{3}$' \
  "$LAB/metrics.txt"
check "metrics: trust anchor expiry" \
  grep -qE '^notice_gateway_certificate_expiry_days\{role="trust",' "$LAB/metrics.txt"
check "metrics: histogram declared" \
  grep -qx '# TYPE notice_gateway_attempt_duration_seconds histogram' "$LAB/metrics.txt"
check "metrics: content type 0.0.4" \
  bash -c "curl -sS -D - -o /dev/null '$base/metrics' | tr -d '\r' | grep -qix 'content-type: text/plain; version=0.0.4; charset=utf-8'"
# The format: every line a comment (# HELP/# TYPE name ...) or a sample
# name{labels} value; every sample's family declared by a TYPE line first.
format_ok() {
  awk '
    /^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+$/ { next }
    /^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped)$/ { typed[$3] = 1; next }
    /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\[\\"n])*",?)*\})? -?[0-9.e+Inf]+$/ {
      name = $0; sub(/[{ ].*/, "", name); fam = name
      sub(/_(bucket|sum|count)$/, "", fam)
      if (!(name in typed) && !(fam in typed)) { print "undeclared: " $0; bad = 1 }
      next
    }
    { print "bad line: " $0; bad = 1 }
    END { exit bad }' "$1"
}
check "metrics: every line is valid exposition format" format_ok "$LAB/metrics.txt"

# ---- the overview: gaps first ------------------------------------------------------
get / > "$LAB/overview.html"
line_of() { grep -n "$1" "$LAB/overview.html" | head -n1 | cut -d: -f1; }
check "overview: held section before failed before late" \
  bash -c "[ $(line_of 'id="held"') -lt $(line_of 'id="failed"') ] && [ $(line_of 'id="failed"') -lt $(line_of 'id="late"') ]"
check "overview: gaps before the counts" \
  bash -c "[ $(line_of 'id="late"') -lt $(line_of 'id="states"') ]"
check "overview: counts before the notices" \
  bash -c "[ $(line_of 'id="states"') -lt $(line_of 'id="notices"') ]"
check "overview: the late notice is listed under Late" \
  bash -c "sed -n '/id=\"late\"/,/id=\"states\"/p' '$LAB/overview.html' | grep -q KDI-2027-009901"
check "overview: held no consent shown" grep -q 'held: no consent' "$LAB/overview.html"
check "overview: the hostile reason is escaped" \
  grep -q '&lt;script&gt;alert(1)&lt;/script&gt; x \*\*\*\*\*\*\*\*\*\*\* &quot;q&quot; &amp; y' \
  "$LAB/overview.html"
check "overview: no raw <script" bash -c "! grep -qi '<script' '$LAB/overview.html'"

# ---- drill-down ------------------------------------------------------------------
get /notice/KDI-2027-004102 > "$LAB/notice.html"
check "notice page links each recipient's message" \
  eq "$(grep -c 'href="/message/' "$LAB/notice.html")" "$("$GW" list --config "$cfg" --notice KDI-2027-004102 | wc -l)"
check "notice page shows the held recipient" grep -q 'held: no consent' "$LAB/notice.html"
delivered_msg=$("$GW" list --config "$cfg" --notice KDI-2027-004101 --state delivered | awk 'NR==1 {print $1}')
get "/message/$delivered_msg" > "$LAB/message.html"
check "message page shows the attempt" grep -q '<td>delivered</td>' "$LAB/message.html"
check "message page: receipt verified" grep -q 'Signature verified</dt><dd class="s-delivered">yes' "$LAB/message.html"
check "message page: receipt XML escaped" grep -q '&lt;Receipt' "$LAB/message.html"
get "/message/$delivered_msg/receipt.xml" > "$LAB/receipt.xml"
"$GW" show --config "$cfg" "$delivered_msg" >/dev/null
check "receipt download: the exact stored bytes" \
  eq "$(sha256sum < "$LAB/receipt.xml")" "$(sqlite3 "$db" "SELECT writefile('$LAB/receipt.db.xml', bytes) FROM receipts WHERE message_id='$delivered_msg'" >/dev/null; sha256sum < "$LAB/receipt.db.xml")"
check "receipt download is an attachment" \
  bash -c "curl -sS -D - -o /dev/null '$base/message/$delivered_msg/receipt.xml' | grep -qi '^content-disposition: attachment'"
check "unknown notice: 404" eq "$(code "$base/notice/NO-SUCH")" 404
check "a notice id with ':' is linked from the overview" grep -qF "href=\"/notice/$colon_id\"" "$LAB/overview.html"
get "/notice/$colon_id" > "$LAB/colon-notice.html"
check "... and its page is served with its messages" \
  eq "$(grep -c 'href="/message/' "$LAB/colon-notice.html")" "$("$GW" list --config "$cfg" --notice "$colon_id" | wc -l)"
check "... also when the client percent-encodes ':'" \
  eq "$(code "$base/notice/${colon_id//:/%3A}")" 200
check "path traversal shape: 404" eq "$(code --path-as-is "$base/message/../metrics")" 404

# ---- personal data ---------------------------------------------------------------
pages=("$LAB/overview.html" "$LAB/notice.html" "$LAB/message.html" "$LAB/metrics.txt")
for m in $("$GW" list --config "$cfg" | awk '{print $1}'); do
  get "/message/$m" >> "$LAB/all-messages.html"
done
for n in $("$GW" list --config "$cfg" | awk '{print $2}' | sort -u); do
  get "/notice/$n" >> "$LAB/all-notices.html"
done
pages+=("$LAB/all-messages.html" "$LAB/all-notices.html")
nins=$(grep -ho 'nin="[0-9]*"' "$SRC"/spool/demo/*.xml | cut -d'"' -f2)
names=$(grep -hoE '(givenName|familyName|name)="[^"]*"' "$SRC"/spool/demo/*.xml | cut -d'"' -f2 | tr ' ' '\n' | sort -u | awk 'length($0) > 3')
leak=no
for word in $nins $names; do
  grep -qF "$word" "${pages[@]}" && leak="yes ($word)"
done
check "no nin or name on any page" eq "$leak" no
# The store: only the signed bytes (sent to the partner, never shown) hold them.
store_leak=no
for n in $nins; do
  [ "$(sqlite3 "$db" "SELECT count(*) FROM messages WHERE instr(coalesce(reason,''),'$n') AND message_id <> '$failed_msg'")" = 0 ] || store_leak="messages.reason"
  [ "$(sqlite3 "$db" "SELECT count(*) FROM notices WHERE instr(person_ref||sender_unit||source_name,'$n')")" = 0 ] || store_leak="notices"
  [ "$(sqlite3 "$db" "SELECT count(*) FROM attempts WHERE instr(error,'$n')")" = 0 ] || store_leak="attempts"
  [ "$(sqlite3 "$db" "SELECT count(*) FROM receipts WHERE instr(bytes,'$n')")" = 0 ] || store_leak="receipts"
done
check "the store holds no nin outside the signed message bytes" eq "$store_leak" no

# ---- methods, headers, bounds ------------------------------------------------------
check "POST: 405" eq "$(code -X POST --data x "$base/")" 405
check "DELETE: 405" eq "$(code -X DELETE "$base/message/$delivered_msg")" 405
check "HEAD: 405" eq "$(code -I "$base/")" 405
check "405 names GET in Allow" \
  bash -c "curl -s -D - -o /dev/null -X POST '$base/' | tr -d '\r' | grep -qix 'allow: GET'"
hdrs=$(curl -sS -D - -o /dev/null "$base/" | tr -d '\r')
check "CSP header" grep -qx "Content-Security-Policy: default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'" <<<"$hdrs"
check "nosniff header" grep -qix 'X-Content-Type-Options: nosniff' <<<"$hdrs"
check "no-store header" grep -qix 'Cache-Control: no-store' <<<"$hdrs"
check "healthz" eq "$(get /healthz)" ok

# ---- DNS rebinding: only loopback names are answered without TLS -------------------
check "Host evil.example: 421" eq "$(code -H 'Host: evil.example' "$base/")" 421
check "Host evil.example on the port: 421" eq "$(code -H "Host: evil.example:$SERVE_PORT" "$base/metrics")" 421
check "Host 127.0.0.1 on another port: 421" eq "$(code -H "Host: 127.0.0.1:$((SERVE_PORT + 1))" "$base/")" 421
hdrs421=$(curl -sS -D - -o "$LAB/421.html" -H 'Host: evil.example' "$base/" | tr -d '\r')
check "421 carries the CSP header" grep -qx "Content-Security-Policy: default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'" <<<"$hdrs421"
check "421 carries nosniff" grep -qix 'X-Content-Type-Options: nosniff' <<<"$hdrs421"
check "421 carries no-store" grep -qix 'Cache-Control: no-store' <<<"$hdrs421"
check "421 shows nothing of the store" bash -c "! grep -q 'KDI-\|id=\"held\"' '$LAB/421.html'"
check "... and is logged" grep -q 'event=opweb-host-refused' "$LAB/gateway/web.log"
check "Host localhost:PORT is served" eq "$(code -H "Host: localhost:$SERVE_PORT" "$base/")" 200
check "Host LOCALHOST is served" eq "$(code -H 'Host: LOCALHOST' "$base/healthz")" 200
check "Host [::1]:PORT is served" eq "$(code -H "Host: [::1]:$SERVE_PORT" "$base/healthz")" 200
check "Host 127.0.0.1 without a port is served" eq "$(code -H 'Host: 127.0.0.1' "$base/healthz")" 200
no_host() { # HTTP/1.0 without Host: allowed (no browser sends it)
  exec 3<>"/dev/tcp/127.0.0.1/$SERVE_PORT"
  printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3
  timeout 5 cat <&3 | head -n1 | grep -q '^HTTP/1.[01] 200'
  local rc=$?
  exec 3<&-
  return $rc
}
check "no Host (HTTP/1.0) is served" no_host
big=$(head -c 10000 /dev/zero | tr '\0' a)
check "oversized headers refused" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Big: $big' '$base/')\" -ge 400 ]"
check "oversized body refused" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @<(head -c 5000 /dev/zero) '$base/')\" = 413 ]"
idle_closed() { # a connection that sends nothing is closed after the 2 s timeout
  local start end
  start=$(date +%s)
  exec 3<>"/dev/tcp/127.0.0.1/$SERVE_PORT"
  timeout 8 cat <&3 >/dev/null || true
  exec 3<&-
  end=$(date +%s)
  [ $((end - start)) -le 6 ]
}
check "idle connection closed by the timeout" idle_closed
check "still serving after that" eq "$(get /healthz)" ok

# ---- binding rules -----------------------------------------------------------------
out=$("$SERVE" --config "$cfg" --listen 0.0.0.0:0 --max-seconds 1 2>&1 || true)
check "non-loopback without TLS refused" grep -q 'not loopback, needs TLS' <<<"$out"
out=$("$SERVE" --config "$cfg" --listen localhost:0 --max-seconds 1 2>&1 || true)
check "host names refused (literal addresses only)" grep -q 'not a literal' <<<"$out"

# ---- TLS with operator client certificates -------------------------------------------
tls_timeout=5
web_serve tls --listen 127.0.0.1:0 --tls-cert "$PKI/gateway.pem" --tls-key "$PKI/gateway.key" \
  --client-ca "$PKI/ca.pem" --timeout "$tls_timeout"
tbase="https://127.0.0.1:$SERVE_PORT"
check "TLS: served with an operator client certificate" \
  eq "$(curl -sS --max-time 10 --cacert "$PKI/ca.pem" --cert "$PKI/nav.pem" --key "$PKI/nav.key" "$tbase/healthz")" ok
check "TLS: the Host header is not checked (a verified operator)" \
  eq "$(curl -sS --max-time 10 --cacert "$PKI/ca.pem" --cert "$PKI/nav.pem" --key "$PKI/nav.key" -H 'Host: gateway.example' "$tbase/healthz")" ok
check "TLS: refused without a client certificate" \
  bash -c "! curl -s --max-time 10 --cacert '$PKI/ca.pem' '$tbase/healthz' >/dev/null"
check "TLS: refused with a certificate of another CA" \
  bash -c "! curl -s --max-time 10 --cacert '$PKI/ca.pem' --cert '$PKI/untrusted.pem' --key '$PKI/untrusted.key' '$tbase/healthz' >/dev/null"
check "TLS: plain HTTP gets nothing" \
  bash -c "! curl -s --max-time 5 'http://127.0.0.1:$SERVE_PORT/healthz' | grep -q ok"
tls_pid=$SERVE_PID
# conns MODE N: N connections to the TLS port held in the background until
# $LAB/conns.go; $LAB/conns.ready once they are open. MODE idle: nothing sent;
# trickle: a ClientHello one byte a second on each; tls: a completed handshake
# with the operator certificate. On go, $LAB/conns.report has one line per
# connection: "open", or "closed AGE" (seconds it lived).
cat > "$LAB/conns.py" <<'PY'
import os, socket, ssl, sys, time
mode, port, n, lab, pki = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64)
def connect():
    s = socket.create_connection(("127.0.0.1", port))
    if mode == "tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(pki + "/ca.pem")
        ctx.load_cert_chain(pki + "/nav.pem", pki + "/nav.key")
        s = ctx.wrap_socket(s)
    s.setblocking(False)
    return [s, time.monotonic(), None]
def closed(s):
    try:
        return s.recv(1) == b""
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    except OSError:
        return True
conns = [connect() for _ in range(n)]
open(lab + "/conns.ready", "w").close()
sent = 0
while not os.path.exists(lab + "/conns.go"):
    for c in conns:
        if c[2] is None and closed(c[0]):
            c[2] = time.monotonic() - c[1]
        elif c[2] is None and mode == "trickle":
            try:
                c[0].send(hello[sent % len(hello):][:1])
            except OSError:
                c[2] = time.monotonic() - c[1]
    sent += 1
    time.sleep(1 if mode == "trickle" else 0.05)
for c in conns:
    if c[2] is None and closed(c[0]):
        c[2] = time.monotonic() - c[1]
with open(lab + "/conns.report", "w") as f:
    for c in conns:
        f.write("open\n" if c[2] is None else "closed %.1f\n" % c[2])
PY
conns() {
  rm -f "$LAB/conns.ready" "$LAB/conns.go" "$LAB/conns.report"
  timeout 60 python3 "$LAB/conns.py" "$1" "$SERVE_PORT" "$2" "$LAB" "$PKI" &
  conns_pid=$!
  for _ in $(seq 1 200); do [ -e "$LAB/conns.ready" ] && break; sleep 0.05; done
  sleep 0.3 # the server has accepted them
}
conns_done() { # and the server has freed them before anything is counted again
  touch "$LAB/conns.go"
  wait "$conns_pid" || true
  sleep 0.3
}
n_report() { grep -c "^$1" "$LAB/conns.report" || true; }
op_get() { curl -sS --max-time "${1:-10}" --cacert "$PKI/ca.pem" --cert "$PKI/nav.pem" --key "$PKI/nav.key" "$tbase/healthz" 2>/dev/null; }
log_count() { grep -c "event=$1" "$LAB/gateway/tls.log" || true; }

# 32 connections (the cap) that never start a handshake, then an operator:
# the oldest of them makes room (long before the timeout would close them).
conns idle 32
check "TLS: at the cap an operator is served, in place of an idle connection" eq "$(op_get 3)" ok
check "... one idle connection evicted for it, and that is logged" \
  eq "$(log_count opweb-connection-evicted)" 1
conns_done
check "... the others were left open" eq "$(n_report open)" 31

# 32 connections trickling a ClientHello a byte a second: evhttp's timeout
# alone (silence) would never close them.
evicted=$(log_count opweb-connection-evicted)
conns trickle 32
check "TLS: an operator is served while 32 connections trickle handshakes" eq "$(op_get 3)" ok
sleep $((tls_timeout + 3))
conns_done
check "... every trickling connection closed, within the timeout" \
  bash -c "[ \$(grep -c '^closed' '$LAB/conns.report') = 32 ] && awk '{ if (\$2 > $tls_timeout + 2) bad = 1 } END { exit bad }' '$LAB/conns.report'"
check "... the oldest evicted for the operator" eq "$(($(log_count opweb-connection-evicted) - evicted))" 1
check "... the rest at the handshake deadline, logged" \
  test "$(log_count opweb-connection-timeout)" -ge 31

# 32 completed handshakes (operators) hold their places: a newcomer is refused.
conns tls 32
check "TLS: with every place held by a completed handshake a newcomer is closed at once" \
  bash -c "! timeout 5 curl -sS --max-time 4 --cacert '$PKI/ca.pem' --cert '$PKI/nav.pem' --key '$PKI/nav.key' '$tbase/healthz' >/dev/null 2>&1"
check "... and that is logged" grep -q 'event=opweb-connection-refused' "$LAB/gateway/tls.log"
conns_done
check "... no completed handshake was evicted for it" eq "$(n_report open)" 32
served_again() { for _ in $(seq 1 50); do [ "$(op_get)" = ok ] && return 0; sleep 0.1; done; return 1; }
check "TLS: once they are gone, operators are served again" served_again

# ---- clean stop: exit 0, and (in sanitizer builds) no report, leaks included ----
stopped_clean() {
  local pid=$1 rc=0
  kill -TERM "$pid"
  wait "$pid" || rc=$?
  [ "$rc" = 0 ]
}
check "SIGTERM stops the server with exit 0" stopped_clean "$web_pid"
# Connections still open when the server stops: libevent frees them after
# the server (a use-after-free before; the sanitizer check below sees it).
conns idle 1
idle_pid=$conns_pid
conns tls 1
check "SIGTERM stops the TLS server with exit 0, connections open" stopped_clean "$tls_pid"
conns_done
conns_pid=$idle_pid
conns_done
check "no sanitizer report from the servers" \
  bash -c "! grep -q 'Sanitizer\|runtime error' '$LAB/gateway/web.log' '$LAB/gateway/tls.log'"

finish
