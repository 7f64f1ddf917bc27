# shellcheck shell=bash
# A two-host lab for the demo and the end-to-end tests, sourced by both:
#
#   host A (netns ${P}-a, ${P}-a0 192.0.2.1/24, 2001:db8::1/64)
#       ==veth==  ${P}-fa  [netns ${P}-fw: sluice-fastpath]  ${P}-fb  ==veth==
#   host B (netns ${P}-b, ${P}-b0 192.0.2.2/24, 2001:db8::2/64)
#
# lab_up PREFIX creates it; lab_down PREFIX removes everything it made (idempotent).
# Offloads are turned off on every veth: af_packet would otherwise see GSO super-frames and
# partial checksums, which a real wire never carries.

# For tests: exit 77 (skip) unless namespaces can be made here (root, netns support).
lab_skip_unless_possible() {
    [ "$(id -u)" = 0 ] || { echo "SKIP: needs root for network namespaces"; exit 77; }
    ip netns add "sl-probe-$$" 2>/dev/null || { echo "SKIP: cannot create network namespaces"; exit 77; }
    ip netns del "sl-probe-$$"
}

# For tests: start sluice-fastpath BINARY in the lab's appliance namespace with RUNDIR/conf,
# logging to RUNDIR/log and writing RUNDIR/stats.json; sets fp_pid and returns once it
# forwards. Calls the test's `fail` if it exits or does not start within 10 s.
lab_start_fastpath() { # PREFIX BINARY RUNDIR
    ip netns exec "$1-fw" "$2" --config "$3/conf" --stats-file "$3/stats.json" > "$3/log" 2>&1 &
    fp_pid=$!
    local _
    for _ in $(seq 200); do
        grep -q "forwarding with" "$3/log" && return 0
        kill -0 "$fp_pid" 2>/dev/null || fail "sluice-fastpath exited at start"
        sleep 0.05
    done
    fail "sluice-fastpath did not start"
}

lab_up() {
    local P=$1
    lab_down "$P"
    ip netns add "${P}-a"
    ip netns add "${P}-b"
    ip netns add "${P}-fw"
    ip link add "${P}-a0" type veth peer name "${P}-fa"
    ip link add "${P}-b0" type veth peer name "${P}-fb"
    ip link set "${P}-a0" netns "${P}-a"
    ip link set "${P}-b0" netns "${P}-b"
    ip link set "${P}-fa" netns "${P}-fw"
    ip link set "${P}-fb" netns "${P}-fw"
    local h
    for h in a b; do
        local ns="${P}-$h" dev="${P}-${h}0" n=1
        [ "$h" = b ] && n=2
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "192.0.2.$n/24" dev "$dev"
        ip -n "$ns" addr add "2001:db8::$n/64" dev "$dev" nodad
        ip -n "$ns" link set "$dev" up
        ip netns exec "$ns" ethtool -K "$dev" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
    done
    for dev in "${P}-fa" "${P}-fb"; do
        ip -n "${P}-fw" link set "$dev" up
        ip netns exec "${P}-fw" ethtool -K "$dev" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
        # The appliance's data ports are not the kernel's (a passed-through NIC never is): no
        # IPv6 autoconf chatter, no ARP answers, no IP accepted on them. Only sluice-control's
        # TAPs speak for the appliance's kernel.
        ip netns exec "${P}-fw" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1" || true
        ip -n "${P}-fw" link set "$dev" arp off
        ip netns exec "${P}-fw" sysctl -qw "net.ipv4.conf.$dev.rp_filter=1" || true
    done
}

# For tests and the demo: start sluice-control BINARY CONFIG in the lab's appliance
# namespace, logging to LOG; sets ctl_pid and returns once its socket SOCKET answers.
lab_start_control() { # PREFIX BINARY CONFIG LOG SOCKET SLUICECTL
    ip netns exec "$1-fw" "$2" --config "$3" >> "$4" 2>&1 &
    ctl_pid=$!
    local _
    for _ in $(seq 200); do
        [ -S "$5" ] && "$6" --socket "$5" generation > /dev/null 2>&1 && return 0
        kill -0 "$ctl_pid" 2>/dev/null || fail "sluice-control exited at start"
        sleep 0.05
    done
    fail "sluice-control did not start"
}

# For tests: check an `iperf3 -J` result FILE (more than 1 MB received) and print
# "ok: LABEL: RATE"; calls the test's `fail` otherwise.
lab_iperf_ok() { # FILE LABEL
    /usr/bin/python3 - "$1" "$2" <<'PY' || fail "iperf3 result ($2)"
import json, sys
r = json.load(open(sys.argv[1]))['end']['sum_received']
assert r['bytes'] > 1000000, r
print('ok: %s: %.2f Gbit/s received over %.1f s' % (sys.argv[2], r['bits_per_second'] / 1e9, r['seconds']))
PY
}

lab_down() {
    local P=$1 ns
    for ns in "${P}-a" "${P}-b" "${P}-fw"; do
        if ip netns list | grep -qw "$ns"; then
            { ip netns pids "$ns" 2>/dev/null | xargs -r kill -9; } >/dev/null 2>&1 || true
            ip netns del "$ns"
        fi
    done
    # The DPDK runtime directory of the processes run with --file-prefix $P (the tests use the
    # lab's name), and any hugepage files they left.
    rm -rf "/var/run/dpdk/$P" /dev/hugepages/"$P"map_* 2>/dev/null || true
}
