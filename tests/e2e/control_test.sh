#!/usr/bin/env bash
# End-to-end: the control plane as a user drives it. sluice-fastpath (hugepages: the control
# process attaches to it as a DPDK secondary) between host A and host B, sluice-control
# beside it, everything done with sluicectl:
#   - `sluicectl restore` loads a ruleset and an ipset; HTTP to an address:port in the set
#     works, one not in it is dropped, 8081 is REJECTed (curl: connection refused at once);
#   - a set element removed and added back while the appliance runs changes what passes,
#     without recompiling rules ("sets only" in the log);
#   - `sluicectl stats` / `rule list` show the counters moving, `ct list` the flow,
#     `events` streams the NEW flow;
#   - a bad rule is refused with its position and changes nothing;
#   - ping to the appliance's own address is answered by the kernel through the TAP;
#   - kill -9 of sluice-control while iperf3 runs: iperf3 completes (fail-static); the
#     restarted control finds the same generation; kill + restart of sluice-fastpath comes
#     back with the persisted policy and generation.
#   usage: control_test.sh SLUICE_FASTPATH SLUICE_CONTROL SLUICECTL
set -euo pipefail
fp_bin=$1 ctl_bin=$2 cli_bin=$3
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../tools/netns-lab.sh
source "$here/../../tools/netns-lab.sh"
lab_skip_unless_possible
hp=/sys/kernel/mm/hugepages/hugepages-2048kB
if [ "$(cat $hp/free_hugepages 2>/dev/null || echo 0)" -lt 200 ] || ! grep -q ' hugetlbfs ' /proc/mounts; then
    echo "SKIP: needs 200 free 2 MiB hugepages and hugetlbfs (tools/bootstrap reserves them)"
    exit 77
fi

P=sl-c$$
run=$(mktemp -d /tmp/sluice-control.XXXXXX)
fp_pid= ctl_pid= srvs=()
cleanup() {
    [ -n "$ctl_pid" ] && kill -9 "$ctl_pid" 2>/dev/null || true
    [ -n "$fp_pid" ] && kill -9 "$fp_pid" 2>/dev/null || true
    for s in "${srvs[@]}"; do kill "$s" 2>/dev/null || true; done
    sleep 0.2
    lab_down $P
    rm -rf "$run" /dev/hugepages/${P}map_* /var/run/dpdk/$P
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    echo "--- fastpath log"; cat "$run/fp.log" 2>/dev/null || true
    echo "--- control log"; cat "$run/ctl.log" 2>/dev/null || true
    exit 1
}
ctl() { "$cli_bin" --socket "$run/control.sock" "$@"; }

lab_up $P
cat > "$run/fp.conf" <<CONF
port = west=net_af_packet0,iface=$P-fa
port = east=net_af_packet1,iface=$P-fb
pair = west:east
workers = 1
hugepages = yes
file-prefix = $P
conntrack-max = 65536
agent-socket = $run/fastpath.sock
state-dir = $run/state
address = west=192.0.2.254/24
CONF
cat > "$run/ctl.conf" <<CONF
socket = $run/control.sock
fastpath-socket = $run/fastpath.sock
state-dir = $run/state
file-prefix = $P
exceptions = yes
CONF

start_fastpath() {
    ip netns exec $P-fw "$fp_bin" --config "$run/fp.conf" --stats-file "$run/stats.json" >> "$run/fp.log" 2>&1 &
    fp_pid=$!
    for _ in $(seq 200); do
        [ "$(grep -c "forwarding with" "$run/fp.log")" -ge "$1" ] && return 0
        kill -0 $fp_pid 2>/dev/null || fail "sluice-fastpath exited at start"
        sleep 0.05
    done
    fail "sluice-fastpath did not start"
}
start_control() { lab_start_control $P "$ctl_bin" "$run/ctl.conf" "$run/ctl.log" "$run/control.sock" "$cli_bin"; }
start_fastpath 1
start_control

# --- policy through the CLI ------------------------------------------------------------------
cat > "$run/rules" <<'RULES'
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
-A FORWARD -i west -p tcp -m set --match-set services dst,dst -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -i west -p tcp -m tcp --dport 8081 -j REJECT --reject-with tcp-reset
COMMIT
RULES
cat > "$run/sets" <<'SETS'
create services hash:ip,port family inet hashsize 1024 maxelem 65536
add services 192.0.2.2,tcp:8080
add services 192.0.2.2,tcp:5201
SETS
ctl restore --rules "$run/rules" --sets "$run/sets" || fail "sluicectl restore"
gen=$(ctl generation | grep -o '[0-9]\+' | head -1)
[ "$gen" = 1 ] || fail "generation after restore: $gen"
for _ in $(seq 100); do grep -q "generation 1" "$run/fp.log" && break; sleep 0.05; done

for port in 8080 8081 8082; do
    ip netns exec $P-b python3 -m http.server $port --bind 192.0.2.2 --directory "$run" > /dev/null 2>&1 &
    srvs+=($!)
done
# Host A fetches URL, retried up to TRIES times (the policy or the appliance may still be
# coming up); `fail`s with WHAT if it never succeeds.
fetch_until_ok() { # URL TRIES WHAT
    local _
    for _ in $(seq "$2"); do
        ip netns exec $P-a curl -s -o /dev/null --max-time 2 "$1" && return 0
        sleep 0.2
    done
    fail "$3"
}
fetch_until_ok http://192.0.2.2:8080/rules 50 "HTTP to 8080 (in the set) did not work"
rc=0; ip netns exec $P-a curl -s -o /dev/null --max-time 5 http://192.0.2.2:8081/ || rc=$?
[ $rc = 7 ] || fail "8081 should be refused by a TCP reset (curl exit 7), got $rc"
rc=0; ip netns exec $P-a curl -s -o /dev/null --max-time 2 http://192.0.2.2:8082/ || rc=$?
[ $rc = 28 ] || fail "8082 (not in the set) should be dropped (curl exit 28), got $rc"
echo "ok: restore through sluicectl: 8080 allowed by the set, 8081 reset, 8082 dropped"
for _ in $(seq 100); do grep -q "exception path attached" "$run/ctl.log" && break; sleep 0.05; done
ip netns exec $P-a ping -c 2 -i 0.2 -W 2 192.0.2.254 > "$run/ping" || fail "ping to the appliance's own address: $(cat "$run/ping")"
echo "ok: the appliance answers ping on 192.0.2.254 (kernel, through sluice-control's TAP)"

# --- live set changes --------------------------------------------------------------------------
ctl set del services 192.0.2.2,tcp:8080 || fail "set del"
rc=0; ip netns exec $P-a curl -s -o /dev/null --max-time 2 http://192.0.2.2:8080/ || rc=$?
[ $rc = 28 ] || fail "8080 removed from the set should be dropped, got curl exit $rc"
ctl set add services 192.0.2.2,tcp:8080 || fail "set add"
ip netns exec $P-a curl -s -o /dev/null --max-time 3 http://192.0.2.2:8080/ || fail "8080 back in the set should pass"
ctl set test services 192.0.2.2,tcp:8080 > /dev/null || fail "set test: should be in the set"
rc=0; ctl set test services 192.0.2.2,tcp:8082 > /dev/null 2>&1 || rc=$?
[ $rc = 1 ] || fail "set test of a missing element should exit 1, got $rc"
grep -q "sets only" "$run/ctl.log" || fail "set changes were not applied as set-only updates"
echo "ok: set element removed and re-added live (generation $(ctl generation | grep -o '[0-9]\+' | head -1))"

# --- visibility --------------------------------------------------------------------------------
ctl --json stats > "$run/stats1.json" || fail "sluicectl stats"
ctl rule list FORWARD > "$run/rules.txt" || fail "sluicectl rule list"
grep -q "match-set services" "$run/rules.txt" || fail "rule list lacks the set rule: $(cat "$run/rules.txt")"
ip netns exec $P-b iperf3 -s -1 -B 192.0.2.2 > /dev/null 2>&1 &
srvs+=($!)
for _ in $(seq 50); do ip netns exec $P-b ss -ltn | grep -q ':5201' && break; sleep 0.1; done
timeout 10 "$cli_bin" --socket "$run/control.sock" events --new --count 1 --timeout 8 > "$run/events.txt" 2>&1 &
ev=$!
sleep 0.5
ip netns exec $P-a iperf3 -c 192.0.2.2 -t 6 -J > "$run/iperf.json" 2>&1 &
ip_pid=$!
sleep 1.5
ctl ct list > "$run/ct.txt" || fail "sluicectl ct list"
grep -q "dport=5201" "$run/ct.txt" || fail "ct list lacks the iperf3 flow: $(cat "$run/ct.txt")"
n=$(ctl ct count | grep -o '[0-9]\+' | head -1)
[ "$n" -ge 1 ] || fail "ct count: $n"
wait $ev || true
grep -q "NEW" "$run/events.txt" || fail "events did not stream a NEW flow: $(cat "$run/events.txt")"
echo "ok: stats, rule list, ct list ($n flows), events: $(head -1 "$run/events.txt")"

# --- fail-static: kill -9 the control process under traffic ------------------------------------
kill -9 $ctl_pid
wait $ctl_pid 2>/dev/null || true
ctl_pid=
wait $ip_pid || fail "iperf3 failed while sluice-control was killed"
lab_iperf_ok "$run/iperf.json" "iperf3 completed across kill -9 of sluice-control"
start_control
grep -q "bringing sluice-fastpath" "$run/ctl.log" && fail "a restarted control should find the same generation"
ctl set test services 192.0.2.2,tcp:8080 > /dev/null || fail "policy lost across the control restart"
echo "ok: sluice-control restarted at generation $(ctl generation | grep -o '[0-9]\+' | head -1), nothing republished"

# --- bad input changes nothing -------------------------------------------------------------------
before=$(ctl generation | grep -o '[0-9]\+' | head -1)
rc=0; ctl rule append FORWARD -p tcp --dprot 22 -j ACCEPT > "$run/bad.txt" 2>&1 || rc=$?
[ $rc = 1 ] || fail "a bad rule should exit 1, got $rc"
grep -q -- '--dprot' "$run/bad.txt" || fail "bad rule error does not name the word: $(cat "$run/bad.txt")"
after=$(ctl generation | grep -o '[0-9]\+' | head -1)
[ "$before" = "$after" ] || fail "a refused rule changed the generation"
echo "ok: bad rule refused: $(head -1 "$run/bad.txt")"

# --- the fast path restarts with the persisted policy --------------------------------------------
kill -TERM $fp_pid
wait $fp_pid || true
fp_pid=
start_fastpath 2
grep -q "generation $after" "$run/fp.log" || fail "restarted sluice-fastpath did not load generation $after from the state dir"
fetch_until_ok http://192.0.2.2:8080/rules 30 "HTTP to 8080 after the fast path restart"
rc=0; ip netns exec $P-a curl -s -o /dev/null --max-time 2 http://192.0.2.2:8082/ || rc=$?
[ $rc = 28 ] || fail "8082 should still be dropped after the restart, got $rc"
ok=
for _ in $(seq 60); do
    ip netns exec $P-a ping -c 1 -W 1 192.0.2.254 > /dev/null 2>&1 && { ok=1; break; }
    sleep 0.2
done
[ -n "$ok" ] || fail "sluice-control did not re-attach to the restarted fast path (no answer on 192.0.2.254)"
[ "$(ctl generation | grep -o '[0-9]\+' | head -1)" = "$after" ] || fail "generation changed across the fast path restart"
echo "ok: sluice-fastpath restarted with the persisted policy (generation $after); sluice-control re-attached"
