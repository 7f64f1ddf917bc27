#!/usr/bin/env bash
# End-to-end: real TCP stacks through sluice-fastpath. Two namespaces on one L2 segment cut
# by the appliance (tools/netns-lab.sh, af_packet ports); IPv4 and IPv6 ping and an HTTP
# download with curl must cross it; SIGTERM under traffic must stop it cleanly (exit 0) with
# its counters written. Skips (exit 77) where namespaces cannot be made (not root).
#   usage: forward_test.sh SLUICE_FASTPATH_BINARY [WORKERS]
set -euo pipefail
bin=$1
workers=${2:-1}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../tools/netns-lab.sh
source "$here/../../tools/netns-lab.sh"
lab_skip_unless_possible

P=sl-e$$
run=$(mktemp -d /tmp/sluice-e2e.XXXXXX)
fp_pid= srv=
cleanup() {
    [ -n "$fp_pid" ] && kill -9 "$fp_pid" 2>/dev/null || true
    [ -n "$srv" ] && { kill "$srv"; wait "$srv"; } >/dev/null 2>&1 || true
    lab_down $P
    rm -rf "$run"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- fastpath log"; cat "$run/log" || true; exit 1; }

lab_up $P
cat > "$run/conf" <<CONF
port = west=net_af_packet0,iface=$P-fa,qpairs=$workers
port = east=net_af_packet1,iface=$P-fb,qpairs=$workers
pair = west:east
workers = $workers
mbufs = 16383
hugepages = no
memory-mb = 384
file-prefix = $P
CONF
lab_start_fastpath "$P" "$bin" "$run"

ip netns exec $P-a ping -c 3 -i 0.2 -W 2 192.0.2.2 > "$run/ping4" || fail "IPv4 ping did not cross: $(cat "$run/ping4")"
ip netns exec $P-a ping -6 -c 3 -i 0.2 -W 2 2001:db8::2 > "$run/ping6" || fail "IPv6 ping did not cross: $(cat "$run/ping6")"

head -c 4194304 /dev/urandom > "$run/blob"
ip netns exec $P-b python3 -m http.server 8080 --bind 192.0.2.2 --directory "$run" > /dev/null 2>&1 &
srv=$!
for _ in $(seq 100); do
    ip netns exec $P-a curl -s -o /dev/null --max-time 2 http://192.0.2.2:8080/ && break
    sleep 0.1
done
ip netns exec $P-a curl -s --max-time 30 -o "$run/got" http://192.0.2.2:8080/blob || fail "curl through the appliance failed"
cmp -s "$run/blob" "$run/got" || fail "downloaded content differs"

# SIGTERM while traffic flows: a bounded flood ping (at most 2 s) runs while we stop it.
ip netns exec $P-a timeout 3 ping -f -c 20000 -W 1 192.0.2.2 > /dev/null 2>&1 &
flood=$!
sleep 0.5
kill -TERM $fp_pid
rc=0
for _ in $(seq 200); do kill -0 $fp_pid 2>/dev/null || break; sleep 0.05; done
kill -0 $fp_pid 2>/dev/null && fail "did not exit within 10 s of SIGTERM"
wait $fp_pid || rc=$?
fp_pid=
wait $flood 2>/dev/null || true
[ $rc = 0 ] || fail "exit code $rc after SIGTERM"
grep -q "final counters" "$run/log" || fail "no final counters printed"
/usr/bin/python3 - "$run/stats.json" <<'PY' || fail "counters wrong"
import json, sys
c = json.load(open(sys.argv[1]))
p = {x["name"]: x for x in c["ports"]}
# The 4 MiB download crossed east -> west in at least 4 MiB / 1500 B frames; its ACKs and
# the pings crossed west -> east. (The flood is short and its count depends on the CPU.)
assert p["east"]["rx_packets"] >= 4194304 // 1500 and p["west"]["tx_packets"] >= 4194304 // 1500, p
assert p["west"]["rx_packets"] > 100 and p["east"]["tx_packets"] > 100, p
print("ok: west rx %d tx %d, east rx %d tx %d, drops %s" % (
    p["west"]["rx_packets"], p["west"]["tx_packets"], p["east"]["rx_packets"],
    p["east"]["tx_packets"], {k: v for k, v in c["drops"].items() if v}))
PY
grep -E "port '.*queue" "$run/log" | sed 's/^[^ ]* [^ ]* /  /'
echo "ok: ping v4/v6, 4 MiB HTTP download verified, clean SIGTERM under traffic ($workers worker(s))"
