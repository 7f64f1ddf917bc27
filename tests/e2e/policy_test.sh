#!/usr/bin/env bash
# End-to-end: a stateful policy enforced on real TCP through sluice-fastpath (namespaces,
# af_packet ports). Host A (west) may open HTTP to host B on 8080 and run iperf3 to it on
# 5201 (both through the appliance); 8081 is REJECTed with a
# TCP reset (curl sees "connection refused" at once); 8082 is DROPped (curl times out);
# B may not open anything towards A. Then, while a slow download on 8080 is in flight, the
# policy is replaced (SIGHUP) by one that no longer allows new 8080 connections: the open
# connection must survive and complete byte for byte, a new one must fail. A reload with a
# broken file must be refused with file:line:column and leave the policy as it was.
#   usage: policy_test.sh SLUICE_FASTPATH_BINARY
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../tools/netns-lab.sh
source "$here/../../tools/netns-lab.sh"
lab_skip_unless_possible

P=sl-p$$
run=$(mktemp -d /tmp/sluice-policy.XXXXXX)
fp_pid= srvs=()
cleanup() {
    [ -n "$fp_pid" ] && kill -9 "$fp_pid" 2>/dev/null || true
    for s in "${srvs[@]}"; do kill "$s" 2>/dev/null || true; done
    lab_down $P
    rm -rf "$run"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- fastpath log"; cat "$run/log" || true; exit 1; }

policy() { # $1: "open" (8080 allowed) or "closed"
    local allow="-A FORWARD -i west -p tcp -m multiport --dports 8080,5201 -m conntrack --ctstate NEW -j ACCEPT"
    [ "$1" = closed ] && allow="# 8080 closed to new connections"
    cat <<RULES
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
$allow
-A FORWARD -i west -p tcp -m tcp --dport 8081 -j REJECT --reject-with tcp-reset
COMMIT
RULES
}

lab_up $P
policy open > "$run/rules"
cat > "$run/conf" <<CONF
port = west=net_af_packet0,iface=$P-fa
port = east=net_af_packet1,iface=$P-fb
pair = west:east
workers = 1
mbufs = 16383
hugepages = no
memory-mb = 384
file-prefix = $P
rules = $run/rules
conntrack-max = 65536
CONF
lab_start_fastpath "$P" "$bin" "$run"

head -c 16777216 /dev/urandom > "$run/blob"
# B's HTTP servers. 8080 paces /blob at 2 MiB/s on the server side (curl's --limit-rate lets
# the first megabytes through at full speed), so the download below is certainly in flight
# across the reload.
cat > "$run/paced_http.py" <<'PY'
import http.server, os, sys, time
root, port = sys.argv[1], int(sys.argv[2])
class H(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k): super().__init__(*a, directory=root, **k)
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path != "/blob": return super().do_GET()
        data = open(os.path.join(root, "blob"), "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        chunk = 64 * 1024
        for off in range(0, len(data), chunk):
            self.wfile.write(data[off:off + chunk])
            time.sleep(chunk / (2 * 1024 * 1024))
http.server.ThreadingHTTPServer(("192.0.2.2", port), H).serve_forever()
PY
for port in 8080 8081 8082; do
    ip netns exec $P-b python3 "$run/paced_http.py" "$run" $port > /dev/null 2>&1 &
    srvs+=($!)
done
# A server on A, to show B cannot open connections towards A.
ip netns exec $P-a python3 -m http.server 8080 --bind 192.0.2.1 --directory "$run" > /dev/null 2>&1 &
srvs+=($!)
ip netns exec $P-a ping -c 1 -W 2 192.0.2.2 > /dev/null || fail "ICMP (allowed) did not cross"
ok=
for _ in $(seq 50); do
    ip netns exec $P-a curl -s -o /dev/null --max-time 2 http://192.0.2.2:8080/ && { ok=1; break; }
    sleep 0.2
done
[ -n "$ok" ] || fail "allowed HTTP on 8080 did not work"

rc=0; ip netns exec $P-a curl -s -o /dev/null --max-time 5 http://192.0.2.2:8081/ || rc=$?
[ $rc = 7 ] || fail "8081 should be refused by a TCP reset (curl exit 7), got $rc"
rc=0; ip netns exec $P-a curl -s -o /dev/null --max-time 2 http://192.0.2.2:8082/ || rc=$?
[ $rc = 28 ] || fail "8082 should time out (dropped, curl exit 28), got $rc"
rc=0; ip netns exec $P-b curl -s -o /dev/null --max-time 2 http://192.0.2.1:8080/ || rc=$?
[ $rc = 28 ] || fail "B -> A should be dropped (curl exit 28), got $rc"
echo "ok: 8080 allowed, 8081 reset, 8082 dropped, B->A dropped"

# iperf3 (control and data connections on 5201) for 2 s through the appliance.
ip netns exec $P-b iperf3 -s -1 -B 192.0.2.2 > /dev/null 2>&1 &
srvs+=($!)
for _ in $(seq 50); do ip netns exec $P-b ss -ltn | grep -q ':5201' && break; sleep 0.1; done
ip netns exec $P-a iperf3 -c 192.0.2.2 -t 2 -J > "$run/iperf.json" || fail "iperf3 through the appliance failed"
lab_iperf_ok "$run/iperf.json" "iperf3 through the appliance"

# A download paced to 2 MiB/s by the server (8 s for 16 MiB, more than socket buffers hold)
# is in flight while the policy changes.
ip netns exec $P-a curl -s --max-time 60 -o "$run/got" http://192.0.2.2:8080/blob &
dl=$!
sleep 1
policy closed > "$run/rules"
kill -HUP $fp_pid
for _ in $(seq 100); do grep -q "policy reloaded" "$run/log" && break; sleep 0.05; done
grep -q "policy reloaded: generation 2" "$run/log" || fail "reload not reported"
kill -0 $dl 2>/dev/null || fail "the download ended before the reload: nothing was tested"
rc=0; ip netns exec $P-a curl -s -o /dev/null --max-time 2 http://192.0.2.2:8080/ || rc=$?
[ $rc = 28 ] || fail "a new 8080 connection after the reload should be dropped, got curl exit $rc"
wait $dl || fail "the download in flight across the reload failed"
cmp -s "$run/blob" "$run/got" || fail "the download in flight across the reload was corrupted"
echo "ok: reload to generation 2: the open connection survived (16 MiB verified), new ones refused"

# A broken file is refused whole; generation 2 stays.
printf '*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp --dprot 22 -j ACCEPT\nCOMMIT\n' > "$run/rules"
kill -HUP $fp_pid
for _ in $(seq 100); do grep -q "reload rejected" "$run/log" && break; sleep 0.05; done
grep -q "policy reload rejected, generation 2 stays: .*rules:3:[0-9]*: " "$run/log" \
    || fail "bad reload not reported with file:line:column"
ip netns exec $P-a ping -c 1 -W 2 192.0.2.2 > /dev/null || fail "forwarding stopped after a bad reload"
echo "ok: broken reload refused: $(grep -o 'rules:3:[0-9]*: .*' "$run/log" | head -1)"

kill -TERM $fp_pid
wait $fp_pid || fail "exit code $? after SIGTERM"
fp_pid=
/usr/bin/python3 - "$run/stats.json" <<'PY' || fail "counters wrong"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["policy"]["generation"] == 2, c["policy"]
assert c["drops"]["policy_reject"] >= 1 and c["drops"]["policy_drop"] >= 3, c["drops"]
assert c["conntrack"]["reject_replies"] >= 1, c["conntrack"]
est = [r for r in c["policy"]["rules"] if "RELATED,ESTABLISHED" in r["spec"]]
assert est and est[0]["packets"] > 1000, est   # the download's packets after the reload
print("ok: counters: drops %s, %d reset(s) sent, ESTABLISHED rule %d packets" % (
    {k: v for k, v in c["drops"].items() if v}, c["conntrack"]["reject_replies"], est[0]["packets"]))
PY
