#!/usr/bin/env bash
# End-to-end: the exception path. sluice-fastpath (hugepages: a DPDK secondary must share
# its memory) has `address = west=192.0.2.254/24` and `address = east=2001:db8::fe/64`;
# sluice-control (exceptions = yes) attaches as a secondary in the appliance namespace and
# gives the appliance's kernel a TAP per port.
# Checked: host A pings 192.0.2.254 and host B pings 2001:db8::fe (answered by the kernel
# through the TAPs), A<->B forwarding still works, a LOG rule's hit reaches the control
# side's log and pcap; after kill -9 of the control side forwarding goes on and the frames
# for the appliance are counted as exception_ring_full drops; a restarted control side
# answers pings again. Skips (77) without root, namespaces or free hugepages.
#   usage: exception_test.sh SLUICE_FASTPATH SLUICE_CONTROL [WORKERS]
set -euo pipefail
bin=$1
control=$2
workers=${3:-1}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../tools/netns-lab.sh
source "$here/../../tools/netns-lab.sh"
lab_skip_unless_possible
free_pages=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)
grep -qs " hugetlbfs " /proc/mounts || { echo "SKIP: hugetlbfs not mounted (the exception path needs hugepages)"; exit 77; }
[ "$free_pages" -ge 128 ] || { echo "SKIP: needs 128 free 2 MiB hugepages, $free_pages free (tools/bootstrap reserves them)"; exit 77; }

P=sl-x$$
run=$(mktemp -d /tmp/sluice-exc.XXXXXX)
fp_pid= ctl_pid=
cleanup() {
    [ -n "$ctl_pid" ] && kill -9 "$ctl_pid" 2>/dev/null || true
    if [ -n "$fp_pid" ]; then
        kill -TERM "$fp_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$fp_pid" 2>/dev/null || break; sleep 0.05; done
        kill -9 "$fp_pid" 2>/dev/null || true
    fi
    lab_down $P
    rm -f /dev/hugepages/"$P"map_* 2>/dev/null || true
    rm -rf "/var/run/dpdk/$P" "$run"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    echo "--- fastpath log"; cat "$run/log" || true
    echo "--- sluice-control log"; cat "$run/control.log" || true
    exit 1
}

start_control() {
    ip netns exec $P-fw "$control" --exceptions yes --file-prefix $P --cpu 0 --log-pcap "$run/log.pcap" \
        --socket "$run/control.sock" --fastpath-socket "$run/fastpath.sock" --state-dir "$run/state" \
        >> "$run/control.log" 2>&1 &
    ctl_pid=$!
    local want=$1 _
    for _ in $(seq 200); do
        [ "$(grep -c "exception path attached" "$run/control.log")" -ge "$want" ] && return 0
        kill -0 $ctl_pid 2>/dev/null || fail "sluice-control exited at start"
        sleep 0.05
    done
    fail "sluice-control's exception path did not attach"
}

# The current counters (SIGUSR1 makes the fast path write its stats file).
stats() {
    rm -f "$run/stats.json"
    kill -USR1 $fp_pid
    for _ in $(seq 100); do [ -s "$run/stats.json" ] && break; sleep 0.05; done
    [ -s "$run/stats.json" ] || fail "no stats file after SIGUSR1"
}

lab_up $P
# (lab_up keeps the appliance namespace's kernel off the lab's veths: only the TAPs answer.)

cat > "$run/rules" <<'RULES'
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp -m udp --dport 9999 -j LOG --log-prefix "probe "
COMMIT
RULES
cat > "$run/conf" <<CONF
port = west=net_af_packet0,iface=$P-fa,qpairs=$workers
port = east=net_af_packet1,iface=$P-fb,qpairs=$workers
pair = west:east
workers = $workers
mbufs = 16383
hugepages = yes
file-prefix = $P
conntrack-max = 65536
rules = $run/rules
address = west=192.0.2.254/24
address = east=2001:db8::fe/64
exception-ring-size = 64
agent-socket = $run/fastpath.sock
CONF
lab_start_fastpath "$P" "$bin" "$run"
start_control 1

ip netns exec $P-a ping -c 3 -i 0.2 -W 2 192.0.2.254 > "$run/ping" || fail "ping to the appliance (IPv4) not answered: $(cat "$run/ping")"
grep -q DUP "$run/ping" && fail "duplicate ping replies: the lab's kernel answers too: $(cat "$run/ping")"
ip netns exec $P-b ping -6 -c 3 -i 0.2 -W 2 2001:db8::fe > "$run/ping" || fail "ping to the appliance (IPv6) not answered: $(cat "$run/ping")"
ip netns exec $P-a ping -c 2 -i 0.2 -W 2 192.0.2.2 > "$run/ping" || fail "IPv4 forwarding A->B broken: $(cat "$run/ping")"
ip netns exec $P-a ping -6 -c 2 -i 0.2 -W 2 2001:db8::2 > "$run/ping" || fail "IPv6 forwarding A->B broken: $(cat "$run/ping")"
echo "ok: the appliance answers ping on 192.0.2.254 (west) and 2001:db8::fe (east); A<->B forwards"

# A LOG hit: the copy reaches the control side's log and pcap; the packet itself crosses.
ip netns exec $P-b timeout 8 python3 -c '
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("192.0.2.2", 9999))
print("ready", flush=True); s.settimeout(6); print(s.recv(100).decode())' > "$run/udp" 2>&1 &
rcv=$!
for _ in $(seq 100); do grep -q ready "$run/udp" && break; sleep 0.05; done
ip netns exec $P-a python3 -c '
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("192.0.2.1", 40000))
s.sendto(b"logged", ("192.0.2.2", 9999))'
wait $rcv || fail "the logged UDP datagram did not cross: $(cat "$run/udp")"
for _ in $(seq 40); do grep -q "LOG .*UDP 192.0.2.1:40000 > 192.0.2.2:9999" "$run/control.log" && break; sleep 0.05; done
grep -q "LOG ip4 rule #0 in=west: IPv4 UDP 192.0.2.1:40000 > 192.0.2.2:9999" "$run/control.log" || fail "no LOG line on the control side"
# pcap: 24-byte header + at least one record (16 + 42 bytes for this datagram).
[ "$(stat -c %s "$run/log.pcap")" -ge $((24 + 16 + 42)) ] || fail "LOG hit not in the pcap"
echo "ok: LOG hit logged: $(grep -o "LOG ip4.*" "$run/control.log" | head -1)"

# Fail-static: kill -9 the control side. Forwarding goes on; the frames for the appliance
# fill the 64-entry ring and are then dropped and counted.
kill -9 $ctl_pid
wait $ctl_pid 2>/dev/null || true
ctl_pid=
ip netns exec $P-a ping -c 150 -i 0.002 -W 1 192.0.2.254 > /dev/null 2>&1 && fail "the appliance answered without its control side?"
ip netns exec $P-a ping -c 3 -i 0.2 -W 2 192.0.2.2 > "$run/ping" || fail "forwarding stopped after kill -9 of control: $(cat "$run/ping")"
stats
/usr/bin/python3 - "$run/stats.json" <<'PY' || fail "counters wrong after kill -9"
import json, sys
c = json.load(open(sys.argv[1]))
to = sum(w["to_control"] for w in c["workers"])
fr = sum(w["from_control"] for w in c["workers"])
assert c["drops"]["exception_ring_full"] > 0, c["drops"]
assert to >= 63 and fr > 0, c["workers"]
print("ok: control killed: forwarding goes on; to_control %d, from_control %d, exception_ring_full %d"
      % (to, fr, c["drops"]["exception_ring_full"]))
PY

# Restart: it attaches again, and the appliance answers again.
start_control 2
ip netns exec $P-a ping -c 3 -i 0.2 -W 2 192.0.2.254 > "$run/ping" || fail "ping to the appliance not answered after restarting control: $(cat "$run/ping")"
ip netns exec $P-b ping -6 -c 2 -i 0.2 -W 2 2001:db8::fe > "$run/ping" || fail "IPv6 ping to the appliance not answered after restart: $(cat "$run/ping")"
echo "ok: control restarted, the appliance answers again"
kill -TERM $ctl_pid
wait $ctl_pid || fail "sluice-control did not exit cleanly on SIGTERM"
ctl_pid=
grep "exception path counters" "$run/control.log" | tail -1 | sed 's/^[^ ]* [^ ]* /  /'
