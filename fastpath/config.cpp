// See config.hpp. Every option is declared once in options(); the file and the command line
// share those declarations, and the command line wins where both set a value.
#include "config.hpp"

#include "command_line.hpp"

#include <boost/program_options.hpp>

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace po = boost::program_options;

namespace sluice {

bool port_config::is_pci() const { return is_pci_address(device); }

std::string port_config::dpdk_name() const { return dpdk_device_name(device); }

namespace {

struct raw_options {
    std::vector<std::string> ports, pairs, addresses;
    std::string cpus, idle, huge, mode, zone, agent_socket;
    std::vector<std::string> timeouts;
    bool tcp_loose = true, tcp_be_liberal = false;
};

// --ct-timeout NAME=SECONDS: the netfilter sysctl names without nf_conntrack_ and _timeout.
struct timeout_name {
    const char* name;
    uint32_t conntrack_timeouts::*field;
    int tcp_state; // index into conntrack_timeouts::tcp, or -1 for `field`
};
constexpr timeout_name timeout_names[] = {
    {"tcp-syn-sent", nullptr, 1},       {"tcp-syn-recv", nullptr, 2},
    {"tcp-established", nullptr, 3},    {"tcp-fin-wait", nullptr, 4},
    {"tcp-close-wait", nullptr, 5},     {"tcp-last-ack", nullptr, 6},
    {"tcp-time-wait", nullptr, 7},      {"tcp-close", nullptr, 8},
    {"tcp-max-retrans", &conntrack_timeouts::tcp_retrans, -1},
    {"tcp-unacknowledged", &conntrack_timeouts::tcp_unack, -1},
    {"udp", &conntrack_timeouts::udp, -1},
    {"udp-stream", &conntrack_timeouts::udp_stream, -1},
    {"icmp", &conntrack_timeouts::icmp, -1},
    {"icmpv6", &conntrack_timeouts::icmpv6, -1},
    {"gre", &conntrack_timeouts::gre, -1},
    {"gre-stream", &conntrack_timeouts::gre_stream, -1},
    {"generic", &conntrack_timeouts::generic, -1},
};

po::options_description options(fastpath_config& c, raw_options& r) {
    po::options_description d("sluice-fastpath options (also valid as `name = value` lines in "
                              "the --config file)");
    // clang-format off
    d.add_options()
        ("port", po::value(&r.ports)->composing(),
         "NAME=DEVICE, repeatable. DEVICE is a PCI address (0000:03:00.0, an SR-IOV VF bound "
         "to vfio-pci) or a DPDK vdev devargs string (net_af_packet0,iface=eth1 | "
         "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap | net_memif0,role=server | net_ring0 | "
         "net_null0 | net_tap0,iface=sl0)")
        ("pair", po::value(&r.pairs)->composing(),
         "A:B, repeatable: cross-connect ports A and B (bump in the wire, both directions)")
        ("workers", po::value(&c.workers)->default_value(c.workers),
         "number of worker lcores polling the ports")
        ("cpus", po::value(&r.cpus),
         "comma-separated CPUs: the main thread's, then one per worker (default: main on the "
         "first CPU, workers on the following ones, wrapping)")
        ("burst", po::value(&c.burst)->default_value(c.burst), "RX/TX burst size (1..256)")
        ("rx-desc", po::value(&c.rx_desc)->default_value(c.rx_desc),
         "RX descriptors per queue (power of two, 64..16384)")
        ("tx-desc", po::value(&c.tx_desc)->default_value(c.tx_desc),
         "TX descriptors per queue (power of two, 64..16384)")
        ("mbufs", po::value(&c.mbufs)->default_value(c.mbufs),
         "mbufs in the packet pool (per socket)")
        ("mbuf-size", po::value(&c.mbuf_size)->default_value(c.mbuf_size),
         "mbuf data room in bytes including 128 B headroom; frames larger than this use "
         "multi-segment mbufs where the port supports scatter")
        ("mtu", po::value(&c.mtu)->default_value(c.mtu), "MTU set on every port (68..9000)")
        ("redirect-ring-size", po::value(&c.redirect_ring_size)->default_value(c.redirect_ring_size),
         "entries of each worker-to-worker ring (software RSS fallback; power of two)")
        ("address", po::value(&r.addresses)->composing(),
         "PORT=ADDR/PREFIX, repeatable (IPv4 or IPv6): an address of the appliance itself on "
         "that port. Frames for it (and ARP/ND for it) go to sluice-control, which hands them "
         "to the kernel through a TAP named sl-PORT carrying the address")
        ("exception-ring-size", po::value(&c.exception_ring_size)->default_value(c.exception_ring_size),
         "entries of each worker's rings to and from sluice-control (power of two, 64..65536)")
        ("idle", po::value(&r.idle)->default_value("sleep"),
         "poll: busy-poll always (benchmarks) | sleep: back off with short sleeps when idle")
        ("idle-sleep-max-us", po::value(&c.idle_sleep_max_us)->default_value(c.idle_sleep_max_us),
         "longest idle sleep in microseconds (1..100000)")
        ("hugepages", po::value(&r.huge)->default_value("auto"),
         "auto: use 2 MiB hugepages if any are free, else run with --no-huge | yes | no")
        ("memory-mb", po::value(&c.memory_mb)->default_value(c.memory_mb),
         "memory to reserve with --no-huge (MiB)")
        ("file-prefix", po::value(&c.file_prefix)->default_value(c.file_prefix),
         "DPDK shared-memory file prefix (one per appliance instance)")
        ("stats-interval", po::value(&c.stats_interval_s)->default_value(c.stats_interval_s),
         "log counters every N seconds (0: only on SIGUSR1 and at exit)")
        ("stats-file", po::value(&c.stats_file),
         "write counters as JSON to this file on SIGUSR1 and at exit")
        ("log-level", po::value(&c.log_level)->default_value(c.log_level),
         "trace | debug | info | warn | error")
        ("rules", po::value(&c.rules_file),
         "IPv4 ruleset in iptables-save format (filter table; FORWARD judges the traffic "
         "between paired ports). Reloaded on SIGHUP. Default: none, everything accepted")
        ("rules6", po::value(&c.rules6_file), "IPv6 ruleset in ip6tables-save format")
        ("sets", po::value(&c.sets_file), "ipsets in `ipset save` format, for -m set")
        ("mode", po::value(&r.mode)->default_value("enforce"),
         "enforce: apply verdicts | monitor: count would-be drops, forward everything | "
         "bypass: no conntrack, no rules")
        ("conntrack-max", po::value(&c.conntrack_max)->default_value(c.conntrack_max),
         "tracked flows, all workers together (each worker gets an equal share); when full, "
         "new flows are refused (ct_table_full), established ones are never evicted")
        ("frag-cache-size", po::value(&c.frag_cache_size)->default_value(c.frag_cache_size),
         "fragmented datagrams remembered per worker (verdict of the first fragment)")
        ("ct-tcp-loose", po::value(&r.tcp_loose)->default_value(true),
         "pick up TCP connections mid-stream (nf_conntrack_tcp_loose)")
        ("ct-tcp-be-liberal", po::value(&r.tcp_be_liberal)->default_value(false),
         "do not mark out-of-window TCP segments INVALID (nf_conntrack_tcp_be_liberal)")
        ("ct-zone", po::value(&r.zone)->default_value("none"),
         "conntrack zone from the VLAN: none | outer-vlan | inner-vlan")
        ("agent-socket", po::value(&r.agent_socket)->default_value(c.agent_socket),
         "AF_UNIX socket where sluice-control pushes policy and reads counters and conntrack "
         "(mode 0600; its directory is created if missing); `none` disables it")
        ("state-dir", po::value(&c.state_dir),
         "directory sluice-control persists the policy in (rules.v4, rules.v6, sets, mode, "
         "generation): when it holds a `generation` file, that policy is loaded at start and "
         "on SIGHUP instead of rules/rules6/sets/mode. Default: off")
        ("ct-timeout", po::value(&r.timeouts)->composing(),
         "NAME=SECONDS, repeatable; NAME: tcp-syn-sent tcp-syn-recv tcp-established "
         "tcp-fin-wait tcp-close-wait tcp-last-ack tcp-time-wait tcp-close tcp-max-retrans "
         "tcp-unacknowledged udp udp-stream icmp icmpv6 gre gre-stream generic "
         "(netfilter's defaults otherwise)");
    // clang-format on
    return d;
}

template <typename... Args> std::string bad(const std::string& opt, const std::string& val, Args&&... why) {
    std::ostringstream s;
    s << "option '" << opt << "' value '" << val << "': ";
    (s << ... << why);
    return s.str();
}

bool pow2(unsigned v) { return v && !(v & (v - 1)); }

// `address = PORT=ADDR/PREFIX` lines: the port must exist, the address be unicast, each
// address used once, at most max_addresses_per_port per port.
std::string parse_addresses(fastpath_config& c, const std::vector<std::string>& lines) {
    for (const auto& line : lines) {
        auto eq = line.find('='), slash = line.rfind('/');
        if (eq == std::string::npos || slash == std::string::npos || slash < eq)
            return bad("address", line, "expected PORT=ADDR/PREFIX");
        std::string name = line.substr(0, eq), a = line.substr(eq + 1, slash - eq - 1),
                    pfx = line.substr(slash + 1);
        port_address pa;
        auto it = std::find_if(c.ports.begin(), c.ports.end(), [&](const port_config& p) { return p.name == name; });
        if (it == c.ports.end()) return bad("address", line, "no port named '", name, "'");
        pa.port = std::size_t(it - c.ports.begin());
        unsigned char buf[16];
        if (inet_pton(AF_INET, a.c_str(), buf) == 1) {
            std::memset(pa.addr.b, 0, 10);
            pa.addr.b[10] = pa.addr.b[11] = 0xff;
            std::memcpy(pa.addr.b + 12, buf, 4);
            if (buf[0] == 0 || buf[0] == 127 || buf[0] >= 224)
                return bad("address", line, "'", a, "' is not a unicast host address");
        } else if (inet_pton(AF_INET6, a.c_str(), buf) == 1) {
            pa.v6 = true;
            std::memcpy(pa.addr.b, buf, 16);
            static const uint8_t zero[16] = {}, loop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
            bool v4mapped = std::memcmp(buf, zero, 10) == 0 && buf[10] == 0xff && buf[11] == 0xff;
            if (buf[0] == 0xff || !std::memcmp(buf, zero, 16) || !std::memcmp(buf, loop, 16) || v4mapped)
                return bad("address", line, "'", a, "' is not a unicast host address");
        } else {
            return bad("address", line, "'", a, "' is not an IPv4 or IPv6 address");
        }
        char* end = nullptr;
        unsigned long len = std::strtoul(pfx.c_str(), &end, 10);
        unsigned max = pa.v6 ? 128 : 32;
        if (pfx.empty() || *end || len < 1 || len > max)
            return bad("address", line, "prefix length must be between 1 and ", max);
        pa.prefix = uint8_t(len);
        unsigned on_port = 0;
        for (const auto& o : c.addresses) {
            if (!std::memcmp(o.addr.b, pa.addr.b, 16))
                return bad("address", line, "address already given to port '", c.ports[o.port].name, "'");
            on_port += o.port == pa.port;
        }
        if (on_port >= max_addresses_per_port)
            return bad("address", line, "at most ", max_addresses_per_port, " addresses per port");
        c.addresses.push_back(pa);
    }
    return {};
}

std::string validate(fastpath_config& c, const raw_options& r) {
    std::set<std::string> names, devices;
    for (const auto& p : r.ports) {
        port_config pc;
        if (auto why = parse_port_arg(p, pc.name, pc.device); !why.empty()) return bad("port", p, why);
        if (!names.insert(pc.name).second) return bad("port", p, "duplicate port name");
        if (!devices.insert(pc.dpdk_name()).second)
            return bad("port", p, "device ", pc.dpdk_name(), " already used by another port");
        c.ports.push_back(std::move(pc));
    }
    if (c.ports.empty()) return "option 'port': no port configured (need at least one NAME=DEVICE)";
    std::vector<bool> paired(c.ports.size());
    auto index_of = [&](const std::string& n) -> std::optional<std::size_t> {
        for (std::size_t i = 0; i < c.ports.size(); ++i)
            if (c.ports[i].name == n) return i;
        return std::nullopt;
    };
    for (const auto& pr : r.pairs) {
        auto colon = pr.find(':');
        if (colon == std::string::npos) return bad("pair", pr, "expected A:B");
        auto a = index_of(pr.substr(0, colon)), b = index_of(pr.substr(colon + 1));
        if (!a) return bad("pair", pr, "no port named '", pr.substr(0, colon), "'");
        if (!b) return bad("pair", pr, "no port named '", pr.substr(colon + 1), "'");
        if (*a == *b) return bad("pair", pr, "a port cannot be paired with itself");
        if (paired[*a] || paired[*b]) return bad("pair", pr, "a port may be in one pair only");
        paired[*a] = paired[*b] = true;
        c.pairs.emplace_back(*a, *b);
    }
    if (c.workers < 1 || c.workers > 64)
        return bad("workers", std::to_string(c.workers), "must be between 1 and 64");
    if (!r.cpus.empty()) {
        std::stringstream ss(r.cpus);
        std::string tok;
        while (std::getline(ss, tok, ',')) {
            char* end = nullptr;
            unsigned long v = std::strtoul(tok.c_str(), &end, 10);
            if (tok.empty() || *end || v > 1023) return bad("cpus", r.cpus, "'", tok, "' is not a CPU number");
            c.cpus.push_back(unsigned(v));
        }
        if (c.cpus.size() != c.workers + 1)
            return bad("cpus", r.cpus, "need ", c.workers + 1, " CPUs (main thread + ",
                       c.workers, " workers), got ", c.cpus.size());
    }
    if (c.burst < 1 || c.burst > 256) return bad("burst", std::to_string(c.burst), "must be between 1 and 256");
    for (auto [n, v] : {std::pair{"rx-desc", c.rx_desc}, {"tx-desc", c.tx_desc}})
        if (!pow2(v) || v < 64 || v > 16384)
            return bad(n, std::to_string(v), "must be a power of two between 64 and 16384");
    if (!pow2(c.redirect_ring_size) || c.redirect_ring_size < 64)
        return bad("redirect-ring-size", std::to_string(c.redirect_ring_size),
                   "must be a power of two >= 64");
    if (!pow2(c.exception_ring_size) || c.exception_ring_size < 64 || c.exception_ring_size > 65536)
        return bad("exception-ring-size", std::to_string(c.exception_ring_size),
                   "must be a power of two between 64 and 65536");
    if (auto e = parse_addresses(c, r.addresses); !e.empty()) return e;
    if (c.mtu < 68 || c.mtu > 9000) return bad("mtu", std::to_string(c.mtu), "must be between 68 and 9000");
    if (c.mbuf_size < 1024 || c.mbuf_size > 65535)
        return bad("mbuf-size", std::to_string(c.mbuf_size), "must be between 1024 and 65535");
    if (c.mbufs < 1024) return bad("mbufs", std::to_string(c.mbufs), "must be at least 1024");
    if (r.idle == "poll") c.idle = idle_mode::poll;
    else if (r.idle == "sleep") c.idle = idle_mode::sleep;
    else return bad("idle", r.idle, "must be 'poll' or 'sleep'");
    if (c.idle_sleep_max_us < 1 || c.idle_sleep_max_us > 100000)
        return bad("idle-sleep-max-us", std::to_string(c.idle_sleep_max_us), "must be between 1 and 100000");
    if (r.huge == "auto") c.huge = huge_mode::auto_;
    else if (r.huge == "yes") c.huge = huge_mode::yes;
    else if (r.huge == "no") c.huge = huge_mode::no;
    else return bad("hugepages", r.huge, "must be 'auto', 'yes' or 'no'");
    if (c.memory_mb < 64) return bad("memory-mb", std::to_string(c.memory_mb), "must be at least 64");
    static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error"};
    if (!levels.count(c.log_level)) return bad("log-level", c.log_level, "must be one of trace, debug, info, warn, error");
    if (c.file_prefix.empty() || c.file_prefix.find('/') != std::string::npos)
        return bad("file-prefix", c.file_prefix, "must be a non-empty name without '/'");
    if (auto m = filter_mode_from(r.mode)) c.mode = *m;
    else return bad("mode", r.mode, "must be 'enforce', 'monitor' or 'bypass'");
    if (c.conntrack_max < 1024 * c.workers || c.conntrack_max > (1u << 30))
        return bad("conntrack-max", std::to_string(c.conntrack_max),
                   "must be between 1024 per worker and 2^30");
    if (c.frag_cache_size < 4 || c.frag_cache_size > (1u << 24))
        return bad("frag-cache-size", std::to_string(c.frag_cache_size), "must be between 4 and 2^24");
    if (r.agent_socket == "none") c.agent_socket.clear();
    else if (r.agent_socket.empty() || r.agent_socket.size() > 107 || r.agent_socket.back() == '/')
        return bad("agent-socket", r.agent_socket, "must be a socket path of 1 to 107 bytes or 'none'");
    else c.agent_socket = r.agent_socket;
    c.conntrack.tcp_loose = r.tcp_loose;
    c.conntrack.tcp_be_liberal = r.tcp_be_liberal;
    if (r.zone == "none") c.conntrack.zone = ct_zone_mode::none;
    else if (r.zone == "outer-vlan") c.conntrack.zone = ct_zone_mode::outer_vlan;
    else if (r.zone == "inner-vlan") c.conntrack.zone = ct_zone_mode::inner_vlan;
    else return bad("ct-zone", r.zone, "must be 'none', 'outer-vlan' or 'inner-vlan'");
    for (const auto& t : r.timeouts) {
        auto eq = t.find('=');
        if (eq == std::string::npos) return bad("ct-timeout", t, "expected NAME=SECONDS");
        std::string name = t.substr(0, eq), val = t.substr(eq + 1);
        char* end = nullptr;
        unsigned long secs = std::strtoul(val.c_str(), &end, 10);
        if (val.empty() || *end || secs < 1 || secs > 10u * 365 * 86400)
            return bad("ct-timeout", t, "SECONDS must be a whole number between 1 and 315360000");
        const timeout_name* tn = nullptr;
        for (const auto& x : timeout_names)
            if (name == x.name) tn = &x;
        if (!tn) return bad("ct-timeout", t, "unknown timeout '", name, "'");
        if (tn->tcp_state >= 0) c.conntrack.timeouts.tcp[tn->tcp_state] = uint32_t(secs);
        else c.conntrack.timeouts.*(tn->field) = uint32_t(secs);
    }
    // Required mbufs: every RX ring full plus every TX ring plus per-worker bursts in flight.
    unsigned long need = (unsigned long)c.ports.size() * c.workers * (c.rx_desc + c.tx_desc) +
                         (unsigned long)c.workers * c.burst * 4 +
                         (unsigned long)c.workers * (c.workers - 1) * c.redirect_ring_size * 2 +
                         (unsigned long)c.workers * c.exception_ring_size; // held while control is away
    if (c.mbufs < need)
        return bad("mbufs", std::to_string(c.mbufs), "too few for ", c.ports.size(), " ports x ",
                   c.workers, " workers x (rx-desc + tx-desc) and rings: need at least ", need);
    return {};
}

} // namespace

config_result load_config(int argc, const char* const* argv) {
    fastpath_config c;
    raw_options r;
    auto opts = options(c, r);
    config_result res;
    auto cl = parse_command_line(argc, argv, opts,
                                 "usage: sluice-fastpath [--config FILE] [options] [-- EAL arguments]\n",
                                 c.eal_args);
    if (!cl.ok()) {
        res.help = cl.help;
        res.error = cl.text;
        return res;
    }
    if (auto err = validate(c, r); !err.empty()) {
        res.error = err;
        return res;
    }
    res.config = std::move(c);
    return res;
}

} // namespace sluice
