#!/usr/bin/env bash
# it_receiver_abuse: slow and half-open connections cannot take the receiver
# away from a normal sender (issue 5, item 5).
#
# Clients (a python3 helper, each bounded to 20 s):
#   halfopen     TCP connect, then nothing (no TLS handshake)
#   slowhello    a real ClientHello, one byte every 0.4 s: silence never
#                lasts long enough for an idle timeout
#   slowheaders  TLS with a valid client certificate, then the request
#                headers one byte every 0.4 s
#   stalledbody  TLS, complete headers announcing 5000 bytes, 100 sent, stall
# Each records how long the receiver kept it open.
#
# Proves, with read_timeout = 3 s and one worker:
#   1. below the cap, a normal sender is served at once while six slow
#      connections are open, and every slow one (the trickling ones too) is
#      closed by its deadline, about read_timeout after it began;
#   2. ten half-open connections past max_connections = 4 do not lock a
#      sender out: the oldest unauthenticated ones are evicted for it;
#   3. four connections with verified certificates holding every place make
#      a newcomer wait at most about read_timeout, not forever;
#   4. a commit slower than read_timeout (the write lock held elsewhere) is
#      still answered on its connection: the deadline is the client's, not
#      the disk's.
#
# Environment (set by CTest): GW_GATEWAY, GW_PKI_DIR, GW_SOURCE_DIR.
set -euo pipefail
# shellcheck source=receiver_common.sh
. "$(dirname "$0")/receiver_common.sh"

cat > "$work/slow.py" <<'PY'
import select, socket, ssl, sys, time

kind, port, pki, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
LIMIT = 20.0
start = time.monotonic()

def tls_context():
    ctx = ssl.create_default_context(cafile=pki + "/ca.pem")
    ctx.load_cert_chain(pki + "/gateway.pem", pki + "/gateway.key")
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx

def closed_by_peer(sock, wait):
    """True when the receiver closed or reset the connection within `wait` s."""
    try:
        r, _, _ = select.select([sock], [], [], wait)
        if not r:
            return False
        data = sock.recv(4096)
        return not data or data.startswith(b"HTTP/")  # an error answer ends it too
    except ssl.SSLWantReadError:
        return False
    except (OSError, ssl.SSLError):
        return True

def report(what):
    with open(out, "w") as f:
        f.write("%s %.2f\n" % (what, time.monotonic() - start))

def drip(sock, data, step=0.4):
    for i in range(len(data)):
        try:
            sock.send(data[i:i + 1])
        except (OSError, ssl.SSLError):
            return True
        if closed_by_peer(sock, step):
            return True
        if time.monotonic() - start > LIMIT:
            return False
    return False

def hold(sock):
    while time.monotonic() - start < LIMIT:
        if closed_by_peer(sock, 0.2):
            return True
    return False

try:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    raw.setblocking(True)
    if kind == "halfopen":
        closed = hold(raw)
    elif kind == "slowhello":
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = tls_context().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        closed = drip(raw, outgoing.read()) or hold(raw)
    else:
        sock = tls_context().wrap_socket(raw, server_hostname="127.0.0.1")
        with open(out + ".ready", "w"):
            pass
        if kind == "slowheaders":
            closed = drip(sock, b"POST /notices HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                b"Content-Type: application/xml\r\nX-Slow: " + b"a" * 200) or hold(sock)
        else:  # stalledbody
            sock.sendall(b"POST /notices HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/xml\r\nContent-Length: 5000\r\n\r\n" + b"<" * 100)
            closed = hold(sock)
    report("closed" if closed else "open")
except Exception as e:  # the handshake refused, a reset while connecting
    report("refused:" + type(e).__name__)
PY

# slow KIND NAME: start one slow client in the background.
slow() {
  rm -f "$work/$2.out" "$work/$2.out.ready"
  timeout 25 python3 "$work/slow.py" "$1" "$PORT" "$PKI" "$work/$2.out" &
  extra_pids+=("$!")
}

# wait_clients NAME...: wait (at most 25 s) for each client's verdict.
wait_clients() {
  local n _
  for n in "$@"; do
    for _ in $(seq 1 250); do [ -s "$work/$n.out" ] && break; sleep 0.1; done
    [ -s "$work/$n.out" ] || fail "slow client $n gave no verdict"
  done
}

# closed_within NAME MIN MAX: the receiver closed it between MIN and MAX s.
closed_within() {
  local verdict secs
  read -r verdict secs < "$work/$1.out"
  [ "$verdict" = closed ] || fail "slow client $1: '$verdict' after $secs s, expected closed"
  python3 -c 'import sys; t,a,b=map(float,sys.argv[1:]); sys.exit(0 if a<=t<=b else 1)' \
    "$secs" "$2" "$3" || fail "slow client $1 closed after $secs s, expected $2 to $3 s"
}

# timed_post FILE: post, setting $code and $took (seconds, one decimal).
timed_post() {
  local t0 t1
  t0=$(date +%s.%N)
  post "$1"
  t1=$(date +%s.%N)
  took=$(python3 -c 'import sys; print("%.1f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$t1")
}

# ---- 1. slow connections below the cap -----------------------------------------

write_config "$work/a.ini" a "workers=1" "max_connections=8" "read_timeout=3"
start_receiver a "$work/a.ini"
slow slowheaders sh1
slow slowheaders sh2
slow stalledbody sb1
slow slowhello hello1
slow halfopen ho1
slow halfopen ho2
for n in sh1 sh2 sb1; do
  for _ in $(seq 1 50); do [ -e "$work/$n.out.ready" ] && break; sleep 0.1; done
  [ -e "$work/$n.out.ready" ] || fail "slow client $n did not complete its handshake"
done
sleep 0.5
id=$(new_id)
make_message "$work/m1.xml" "$id" "$(now_utc)" "$ME" "Sent among slow clients."
timed_post "$work/m1.xml"
expect_receipt "among slow clients" 200 accepted "" "$id" "$work/m1.xml"
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 2 else 1)' "$took" ||
  fail "the normal sender took $took s among slow clients"
for n in sh1 sh2 sb1 hello1 ho1 ho2; do
  [ ! -s "$work/$n.out" ] || fail "slow client $n was already closed when the sender was served: $(cat "$work/$n.out")"
done
ok "six slow connections open (below the cap): a normal sender is served in ${took}s"

wait_clients sh1 sh2 sb1 hello1 ho1 ho2
for n in sh1 sh2 sb1 hello1 ho1 ho2; do closed_within "$n" 2.0 5.5; done
grep -q "event=connection-timeout" "$RLOG" || fail "the deadline closures were not logged"
ok "every slow connection (trickled ClientHello and headers, stalled body, half-open) closed at its deadline: $(cat "$work"/{sh1,hello1,sb1,ho1}.out | awk '{print $2}' | tr '\n' ' ')s"
stop_receiver

# ---- 2. half-open connections past the cap ---------------------------------------

write_config "$work/b.ini" b "workers=1" "max_connections=4" "read_timeout=3"
start_receiver b "$work/b.ini"
names=()
for n in $(seq 1 10); do slow halfopen "h$n"; names+=("h$n"); done
sleep 1
id=$(new_id)
make_message "$work/m2.xml" "$id" "$(now_utc)" "$ME" "Sent past a cap of half-open connections."
timed_post "$work/m2.xml"
expect_receipt "past half-open connections" 200 accepted "" "$id" "$work/m2.xml"
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 2 else 1)' "$took" ||
  fail "the sender took $took s past half-open connections"
grep -q "event=connection-evicted" "$RLOG" || fail "no eviction was logged"
ok "ten half-open connections past max_connections=4: the sender is served in ${took}s (unauthenticated ones evicted)"
wait_clients "${names[@]}"
for n in "${names[@]}"; do closed_within "$n" 0 5.5; done
ok "all ten half-open connections closed within read_timeout"
stop_receiver

# ---- 3. verified connections holding every place ----------------------------------

write_config "$work/c.ini" c "workers=1" "max_connections=4" "read_timeout=3"
start_receiver c "$work/c.ini"
t0=$(date +%s.%N)
for n in 1 2 3 4; do slow slowheaders "v$n"; done
for n in 1 2 3 4; do
  for _ in $(seq 1 50); do [ -e "$work/v$n.out.ready" ] && break; sleep 0.1; done
  [ -e "$work/v$n.out.ready" ] || fail "slow client v$n did not complete its handshake"
done
sleep 0.3
id=$(new_id)
make_message "$work/m3.xml" "$id" "$(now_utc)" "$ME" "Waiting for a place."
post "$work/m3.xml"
[ "$code" = 000 ] || fail "a fifth connection past four verified ones: HTTP $code, expected refused"
for _ in $(seq 1 100); do
  post "$work/m3.xml"
  [ "$code" = 000 ] || break
  sleep 0.1
done
t1=$(date +%s.%N)
waited=$(python3 -c 'import sys; print("%.1f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$t1")
expect_receipt "after the held places freed" 200 accepted "" "$id" "$work/m3.xml"
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 5.5 else 1)' "$waited" ||
  fail "the newcomer waited $waited s (read_timeout 3)"
wait_clients v1 v2 v3 v4
for n in 1 2 3 4; do closed_within "v$n" 2.0 5.5; done
ok "four verified slow senders holding every place: a newcomer is refused, then served ${waited}s after they began"

# 4. A slow disk is ours, not the sender's: a commit that waits 5 s for the
# write lock (another process holds it) still answers on its connection,
# although read_timeout (3 s) passes meanwhile.
rm -f "$work/locked"
python3 - "$DB" "$work/locked" <<'PY' &
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").write("locked")
time.sleep(5)
db.execute("ROLLBACK")
PY
locker=$!
for _ in $(seq 1 50); do [ -f "$work/locked" ] && break; sleep 0.1; done
[ -f "$work/locked" ] || fail "the test could not take the write lock"
id=$(new_id)
make_message "$work/m4.xml" "$id" "$(now_utc)" "$ME" "Stored while the disk was slow."
post "$work/m4.xml"
wait "$locker"
expect_receipt "a commit slower than read_timeout" 200 accepted "" "$id" "$work/m4.xml"
if grep -q "event=connection-timeout.*no complete request" "$RLOG"; then
  grep "event=connection-timeout" "$RLOG" | tail -n 3 >&2
fi
ok "a commit that waits longer than read_timeout is still answered on its connection"
[ "$(db_rows)" -eq 2 ] || fail "the store holds $(db_rows) rows, expected 2"
stop_receiver
ok "the receiver stops cleanly after the abuse"

echo "it_receiver_abuse: all $passed checks passed"
