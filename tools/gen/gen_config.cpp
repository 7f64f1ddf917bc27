// See gen_config.hpp. Every option is declared once in options(); the file and the command
// line share those declarations, the command line wins where both set a value.
#include "gen_config.hpp"

#include "command_line.hpp"

#include <boost/program_options.hpp>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

namespace po = boost::program_options;

namespace sluice::gen {

namespace {

struct raw_options {
    std::vector<std::string> ports, streams, tcp;
    std::string huge;
};

po::options_description options(gen_config& c, raw_options& r) {
    po::options_description d("sluice-gen options (also valid as `name = value` lines in the --config file)");
    // clang-format off
    d.add_options()
        ("port", po::value(&r.ports)->composing(),
         "NAME=DEVICE, repeatable. DEVICE is a PCI address (0000:03:00.0) or a DPDK vdev devargs "
         "string (net_memif0,role=client,socket=/run/sluice/memif-west.sock | "
         "net_pcap0,tx_pcap=out.pcap | net_af_packet0,iface=veth0 | net_ring0 | net_null0). "
         "Default: west and east, memif clients on /run/sluice/memif-{west,east}.sock")
        ("stream", po::value(&r.streams)->composing(),
         "a stateless stream, repeatable: comma-separated KEY=VALUE:\n"
         "  tx=PORT (required), rx=PORT (where it comes back; counts, loss, latency)\n"
         "  name=NAME (default s<index>), ip=4|6, proto=udp|tcp|icmp (default udp)\n"
         "  size=64..9000|imix: frame bytes with FCS (default 64; imix = 7x64, 4x594, 1x1518)\n"
         "  rate=PPS|unlimited (k/m/g suffixes; default 1000), count=PACKETS (0: until --duration)\n"
         "  src=, dst=ADDR | FIRST-LAST | ADDR/PREFIX (default 192.0.2.1, 198.51.100.1 or "
         "2001:db8::1, 2001:db8:1::1)\n"
         "  sport=, dport=PORT | FIRST-LAST (default 1024, 9; ICMP: sport = echo id, no dport)\n"
         "  vlan=ID (802.1Q tag), ttl=1..255, flags=FSRPAUEC letters (tcp; default A), "
         "smac=, dmac=MAC (default: tx port's MAC, rx port's MAC or broadcast)\n"
         "  flows = |src| x |dst| x |sport| x |dport|; packet k uses flow k mod flows")
        ("tcp", po::value(&r.tcp)->composing(),
         "the stateful TCP workload, at most one: comma-separated KEY=VALUE:\n"
         "  client=PORT, server=PORT (required), ip=4|6, src= (client addresses), dst= (server "
         "addresses), sport= (default 1024-65535), dport= (default 80), vlan=ID\n"
         "  cps=N connections per second (default 1000), conns=N in all (0: until --duration)\n"
         "  request=BYTES (client data, default 64), response=BYTES (server data, default 256)\n"
         "  timeout=MS a connection may take before it counts as lost (default 1000)")
        ("duration", po::value(&c.duration_s)->default_value(c.duration_s),
         "seconds of sending (0.001..86400); streams with a count and a finite TCP workload may "
         "end sooner")
        ("drain-ms", po::value(&c.drain_ms)->default_value(c.drain_ms),
         "after sending, keep receiving until everything is back or this many ms pass (0..60000)")
        ("link-wait", po::value(&c.link_wait_s)->default_value(c.link_wait_s),
         "seconds to wait for every port's link to come up before sending (0..600)")
        ("start-delay-ms", po::value(&c.start_delay_ms)->default_value(c.start_delay_ms),
         "once the links are up, wait this many ms before sending (0..60000): an appliance that "
         "polls its link state (sluice-fastpath: once a second) needs >= 1100")
        ("json", po::value(&c.json_file),
         "write the results as JSON to this file ('-': standard output, the summary then goes to "
         "standard error)")
        ("cpu", po::value(&c.cpu)->default_value(c.cpu), "CPU of the generator's lcore")
        ("burst", po::value(&c.burst)->default_value(c.burst), "TX/RX burst size (1..256)")
        ("rx-desc", po::value(&c.rx_desc)->default_value(c.rx_desc), "RX descriptors (power of two, 64..16384)")
        ("tx-desc", po::value(&c.tx_desc)->default_value(c.tx_desc), "TX descriptors (power of two, 64..16384)")
        ("mbufs", po::value(&c.mbufs)->default_value(c.mbufs), "mbufs in each of the TX and RX pools")
        ("hugepages", po::value(&r.huge)->default_value("auto"),
         "auto: use 2 MiB hugepages if enough are free, else --no-huge | yes | no")
        ("memory-mb", po::value(&c.memory_mb)->default_value(c.memory_mb), "memory to reserve with --no-huge (MiB)")
        ("file-prefix", po::value(&c.file_prefix)->default_value(c.file_prefix),
         "DPDK runtime file prefix (must differ from the appliance's)")
        ("log-level", po::value(&c.log_level)->default_value(c.log_level), "trace | debug | info | warn | error");
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

std::string validate(gen_config& c, raw_options& r) {
    if (r.ports.empty()) r.ports = {default_port_west, default_port_east};
    std::set<std::string> names, devices;
    for (const auto& p : r.ports) {
        gen_port gp;
        if (auto why = parse_port_arg(p, gp.name, gp.device); !why.empty()) return bad("port", p, why);
        if (!names.insert(gp.name).second) return bad("port", p, "duplicate port name");
        if (!devices.insert(dpdk_device_name(gp.device)).second)
            return bad("port", p, "device ", dpdk_device_name(gp.device), " already used by another port");
        c.ports.push_back(std::move(gp));
    }
    if (c.ports.size() > 16) return "option 'port': at most 16 ports";
    std::set<std::string> stream_names;
    for (const auto& text : r.streams) {
        stream_spec s;
        if (auto e = parse_stream_spec(text, s); !e.empty()) return bad("stream", text, e);
        if (s.name.empty()) s.name = "s" + std::to_string(c.streams.size());
        if (!stream_names.insert(s.name).second) return bad("stream", text, "duplicate stream name '", s.name, "'");
        if (c.port_index(s.tx) == c.ports.size()) return bad("stream", text, "tx: no port named '", s.tx, "'");
        if (!s.rx.empty() && c.port_index(s.rx) == c.ports.size())
            return bad("stream", text, "rx: no port named '", s.rx, "'");
        c.streams.push_back(std::move(s));
    }
    if (c.streams.size() > 1024) return "option 'stream': at most 1024 streams";
    if (r.tcp.size() > 1) return bad("tcp", r.tcp[1], "only one TCP workload per run");
    if (!r.tcp.empty()) {
        tcp_spec t;
        if (auto e = parse_tcp_spec(r.tcp[0], t); !e.empty()) return bad("tcp", r.tcp[0], e);
        if (c.port_index(t.client) == c.ports.size()) return bad("tcp", r.tcp[0], "client: no port named '", t.client, "'");
        if (c.port_index(t.server) == c.ports.size()) return bad("tcp", r.tcp[0], "server: no port named '", t.server, "'");
        c.tcp = std::move(t);
    }
    if (c.streams.empty() && !c.tcp) return "nothing to send: give at least one --stream or a --tcp workload";
    auto num = [](double v) {
        std::ostringstream s;
        s << v;
        return s.str();
    };
    if (!std::isfinite(c.duration_s) || c.duration_s < 0.001 || c.duration_s > 86400)
        return bad("duration", num(c.duration_s), "must be between 0.001 and 86400 seconds");
    if (c.drain_ms > 60000) return bad("drain-ms", std::to_string(c.drain_ms), "must be between 0 and 60000");
    if (c.link_wait_s > 600) return bad("link-wait", std::to_string(c.link_wait_s), "must be between 0 and 600");
    if (c.start_delay_ms > 60000)
        return bad("start-delay-ms", std::to_string(c.start_delay_ms), "must be between 0 and 60000");
    if (c.cpu > 1023) return bad("cpu", std::to_string(c.cpu), "is not a CPU number");
    if (c.burst < 1 || c.burst > 256) return bad("burst", std::to_string(c.burst), "must be between 1 and 256");
    for (auto [n, v] : {std::pair{"rx-desc", c.rx_desc}, {"tx-desc", c.tx_desc}})
        if (!pow2(v) || v < 64 || v > 16384) return bad(n, std::to_string(v), "must be a power of two between 64 and 16384");
    unsigned long need = (unsigned long)c.ports.size() * (c.rx_desc + c.tx_desc) + 4ul * c.burst + 1024;
    if (c.mbufs < need)
        return bad("mbufs", std::to_string(c.mbufs), "too few for ", c.ports.size(),
                   " ports x (rx-desc + tx-desc) plus bursts in flight: need at least ", need);
    if (r.huge == "auto") c.huge = huge_mode::auto_;
    else if (r.huge == "yes") c.huge = huge_mode::yes;
    else if (r.huge == "no") c.huge = huge_mode::no;
    else return bad("hugepages", r.huge, "must be 'auto', 'yes' or 'no'");
    if (c.memory_mb < 64) return bad("memory-mb", std::to_string(c.memory_mb), "must be at least 64");
    static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error"};
    if (!levels.count(c.log_level)) return bad("log-level", c.log_level, "must be one of trace, debug, info, warn, error");
    if (c.file_prefix.empty() || c.file_prefix.find('/') != std::string::npos)
        return bad("file-prefix", c.file_prefix, "must be a non-empty name without '/'");
    return {};
}

} // namespace

std::size_t gen_config::port_index(const std::string& name) const {
    for (std::size_t i = 0; i < ports.size(); ++i)
        if (ports[i].name == name) return i;
    return ports.size();
}

uint16_t gen_config::largest_frame() const {
    unsigned m = 60;
    for (const auto& s : streams) m = std::max<unsigned>(m, s.largest_size() - 4u);
    if (tcp) m = std::max<unsigned>(m, tcp->header_len() + std::max(tcp->request, tcp->response));
    return uint16_t(m);
}

gen_config_result load_gen_config(int argc, const char* const* argv) {
    gen_config c;
    raw_options r;
    auto opts = options(c, r);
    gen_config_result res;
    auto cl = parse_command_line(
        argc, argv, opts,
        "usage: sluice-gen [--config FILE] [options] [-- EAL arguments]\n\n"
        "DPDK traffic generator: stateless streams and a stateful TCP workload through an appliance;\n"
        "per-stream counters, loss and latency; a JSON result on exit.\n",
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

} // namespace sluice::gen
