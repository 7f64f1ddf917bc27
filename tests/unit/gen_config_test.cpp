// sluice-gen options and traffic specifications: good lines parse to what they say and
// format back to themselves; every bad value is refused with a message naming the option,
// the key and the value.
#include "gen_config.hpp"
#include "stream_spec.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

namespace {

using namespace sluice::gen;

gen_config_result run(std::vector<std::string> args) {
    std::vector<const char*> argv{"sluice-gen"};
    for (auto& a : args) argv.push_back(a.c_str());
    return load_gen_config(int(argv.size()), argv.data());
}

TEST(gen_spec, stream_defaults_and_values) {
    stream_spec s;
    ASSERT_EQ(parse_stream_spec("tx=west", s), "");
    EXPECT_EQ(s.ip, 4u);
    EXPECT_EQ(s.proto, l4_kind::udp);
    EXPECT_EQ(s.size, 64);
    EXPECT_EQ(s.rate_pps, 1000u);
    EXPECT_EQ(s.flows(), 1u);
    EXPECT_EQ(format_addr(s.src, 0), "192.0.2.1");
    EXPECT_EQ(s.min_size(), 62);

    ASSERT_EQ(parse_stream_spec("name=big,tx=a,rx=b,ip=6,proto=tcp,size=imix,rate=1.5m,count=10k,"
                                "src=2001:db8::/112,dst=2001:db8:1::ffff-2001:db8:1::1:0,sport=1-100,dport=80-81,"
                                "vlan=10,ttl=9,flags=SA,smac=02:00:00:00:00:01",
                                s),
              "key 'rate' value '1.5m': must be packets per second 1..1g (k/m/g suffixes) or unlimited");
    ASSERT_EQ(parse_stream_spec("name=big,tx=a,rx=b,ip=6,proto=tcp,size=imix,rate=2m,count=10k,"
                                "src=2001:db8::/112,dst=2001:db8:1::ffff-2001:db8:1::1:0,sport=1-100,dport=80-81,"
                                "vlan=10,ttl=9,flags=SA,smac=02:00:00:00:00:01",
                                s),
              "");
    EXPECT_EQ(s.rate_pps, 2000000u);
    EXPECT_EQ(s.count, 10000u);
    EXPECT_EQ(s.src.count, 65536u);
    EXPECT_EQ(s.dst.count, 2u);
    EXPECT_EQ(format_addr(s.dst, 1), "2001:db8:1::1:0");
    EXPECT_EQ(s.flows(), 65536ull * 2 * 100 * 2);
    EXPECT_EQ(s.tcp_flags, 0x12);
    EXPECT_TRUE(s.imix);
    EXPECT_EQ(s.largest_size(), 1518);
    stream_spec again;
    ASSERT_EQ(parse_stream_spec(format_stream_spec(s), again), "") << format_stream_spec(s);
    EXPECT_EQ(again, s);

    ASSERT_EQ(parse_stream_spec("tx=a,rate=unlimited,proto=icmp,sport=5", s), "");
    EXPECT_EQ(s.rate_pps, 0u);
    EXPECT_EQ(s.flows(), 1u);
    ASSERT_EQ(parse_stream_spec(format_stream_spec(s), again), "");
    EXPECT_EQ(again, s);
}

TEST(gen_spec, stream_errors_name_key_and_value) {
    struct row {
        const char* text;
        const char* error;
    };
    const row rows[] = {
        {"", "empty specification (expected key=value pairs separated by ',')"},
        {"rx=a", "key 'tx' is required (a port name)"},
        {"tx=a,colour=red", "unknown key 'colour' (known: name, tx, rx, ip, proto, size, rate, count, src, dst, sport, dport, vlan, ttl, flags, smac, dmac)"},
        {"tx=a,tx=b", "key 'tx' given twice"},
        {"tx=a,,", "'' is not key=value"},
        {"tx=a,size=63", "key 'size' value '63': must be a frame size 64..9000 (bytes, FCS included) or imix"},
        {"tx=a,size=9001", "key 'size' value '9001': must be a frame size 64..9000 (bytes, FCS included) or imix"},
        {"tx=a,proto=tcp,size=64", "key 'size' value '64': too small: IPv4/tcp headers, the 16-byte signature and the FCS need at least 74"},
        {"tx=a,ip=6,size=64,vlan=1", "key 'size' value '64': too small: IPv6/udp with a VLAN tag headers, the 16-byte signature and the FCS need at least 86"},
        {"tx=a,rate=0", "key 'rate' value '0': must be packets per second 1..1g (k/m/g suffixes) or unlimited"},
        {"tx=a,rate=2g", "key 'rate' value '2g': must be packets per second 1..1g (k/m/g suffixes) or unlimited"},
        {"tx=a,ip=5", "key 'ip' value '5': must be 4 or 6"},
        {"tx=a,ip=6,src=192.0.2.1", "key 'src' value '192.0.2.1': not an IPv6 address (ip=6)"},
        {"tx=a,src=192.0.2.9-192.0.2.1", "key 'src' value '192.0.2.9-192.0.2.1': LAST must not be below FIRST and the range may hold at most 2^32 - 1 addresses"},
        {"tx=a,src=192.0.2.1-2001:db8::1", "key 'src' value '192.0.2.1-2001:db8::1': both ends must be of the same address family"},
        {"tx=a,src=0.0.0.0/0", "key 'src' value '0.0.0.0/0': the prefix may hold at most 2^32 - 1 addresses (use a longer prefix)"},
        {"tx=a,dst=10.0.0.256", "key 'dst' value '10.0.0.256': expected ADDRESS, FIRST-LAST or ADDRESS/PREFIX"},
        {"tx=a,dport=70000", "key 'dport' value '70000': expected PORT or FIRST-LAST (0..65535)"},
        {"tx=a,sport=9-1", "key 'sport' value '9-1': LAST must not be below FIRST"},
        {"tx=a,proto=icmp,dport=1", "key 'dport' value '1': ICMP has no ports (sport sets the echo identifier)"},
        {"tx=a,vlan=4096", "key 'vlan' value '4096': must be a VLAN id 0..4095"},
        {"tx=a,flags=S", "key 'flags' value 'S': only with proto=tcp"},
        {"tx=a,proto=tcp,size=100,flags=SS", "key 'flags' value 'SS': letters from FSRPAUEC, each at most once"},
        {"tx=a,dmac=02:00:00:00:00", "key 'dmac' value '02:00:00:00:00': expected a MAC address xx:xx:xx:xx:xx:xx"},
        {"tx=a b", "key 'tx' value 'a b': not a port name (letters, digits, '-', '_', '.'; at most 15)"},
        {"tx=a,count=-1", "key 'count' value '-1': must be a packet count 0..1000g (0: until the duration ends)"},
    };
    for (const auto& r : rows) {
        stream_spec s;
        EXPECT_EQ(parse_stream_spec(r.text, s), r.error) << r.text;
    }
}

TEST(gen_spec, tcp_workload) {
    tcp_spec t;
    ASSERT_EQ(parse_tcp_spec("client=west,server=east", t), "");
    EXPECT_EQ(t.flows(), 64512u);
    EXPECT_EQ(t.cps, 1000u);
    ASSERT_EQ(parse_tcp_spec("client=a,server=b,ip=6,cps=15k,conns=1m,request=1,response=0,timeout=250,vlan=3,"
                             "src=2001:db8::1-2001:db8::10,sport=2000-2999",
                             t),
              "");
    EXPECT_EQ(t.cps, 15000u);
    EXPECT_EQ(t.flows(), 16000u);
    tcp_spec again;
    ASSERT_EQ(parse_tcp_spec(format_tcp_spec(t), again), "");
    EXPECT_EQ(again, t);
    EXPECT_EQ(parse_tcp_spec("client=a,server=a", t), "key 'server' value 'a': must be another port than the client's");
    EXPECT_EQ(parse_tcp_spec("client=a", t), "key 'server' is required (a port name)");
    EXPECT_EQ(parse_tcp_spec("client=a,server=b,cps=0", t), "key 'cps' value '0': must be connections per second 1..10m (k/m suffixes)");
    EXPECT_EQ(parse_tcp_spec("client=a,server=b,request=0", t), "key 'request' value '0': must be payload bytes 1..8942");
    EXPECT_EQ(parse_tcp_spec("client=a,server=b,src=192.0.2.0/24,dst=198.51.100.0/24", t),
              "the address and port ranges make 4227858432 flows; a TCP workload may use at most 4194304");
}

TEST(gen_config, command_line_file_defaults_and_eal_args) {
    auto r = run({"--stream", "tx=west,rx=east"});
    ASSERT_TRUE(r.config) << r.error;
    const auto& c = *r.config;
    ASSERT_EQ(c.ports.size(), 2u);
    EXPECT_EQ(c.ports[0].device, "net_memif0,role=client,id=0,socket=/run/sluice/memif-west.sock");
    EXPECT_EQ(c.streams[0].name, "s0");
    EXPECT_EQ(c.duration_s, 10);
    EXPECT_EQ(c.largest_frame(), 60);

    std::string path = ::testing::TempDir() + "/gen.conf";
    {
        std::ofstream f(path);
        f << "# ports\nport = a=net_ring0\nport = b=0000:03:00.0\nstream = name=x,tx=a,size=1518\n"
             "tcp = client=a,server=b,request=2000\nduration = 2.5\nhugepages = no\ncpu = 1\n";
    }
    r = run({"--config", path, "--duration", "1", "--json", "-", "--", "--log-level=8"});
    ASSERT_TRUE(r.config) << r.error;
    EXPECT_EQ(r.config->duration_s, 1) << "the command line wins";
    EXPECT_EQ(r.config->huge, sluice::huge_mode::no);
    EXPECT_EQ(r.config->cpu, 1u);
    EXPECT_EQ(r.config->eal_args, std::vector<std::string>{"--log-level=8"});
    EXPECT_EQ(r.config->largest_frame(), 14 + 20 + 20 + 2000);
    ASSERT_TRUE(r.config->tcp);
    EXPECT_EQ(r.config->port_index("b"), 1u);
}

TEST(gen_config, errors_name_option_and_value) {
    struct row {
        std::vector<std::string> args;
        std::string error;
    };
    const std::vector<row> rows = {
        {{}, "nothing to send: give at least one --stream or a --tcp workload"},
        {{"--stream", "tx=nope"}, "option 'stream' value 'tx=nope': tx: no port named 'nope'"},
        {{"--stream", "tx=west,rx=x"}, "option 'stream' value 'tx=west,rx=x': rx: no port named 'x'"},
        {{"--stream", "tx=west,size=1"}, "option 'stream' value 'tx=west,size=1': key 'size' value '1': must be a frame size 64..9000 (bytes, FCS included) or imix"},
        {{"--stream", "name=a,tx=west", "--stream", "name=a,tx=east"}, "option 'stream' value 'name=a,tx=east': duplicate stream name 'a'"},
        {{"--tcp", "client=west,server=x"}, "option 'tcp' value 'client=west,server=x': server: no port named 'x'"},
        {{"--tcp", "client=west,server=east", "--tcp", "client=east,server=west"}, "option 'tcp' value 'client=east,server=west': only one TCP workload per run"},
        {{"--port", "a", "--stream", "tx=a"}, "option 'port' value 'a': expected NAME=DEVICE"},
        {{"--port", "a=eth0", "--stream", "tx=a"}, "option 'port' value 'a=eth0': DEVICE must be a PCI address or a vdev starting with net_"},
        {{"--port", "a=net_null0", "--port", "b=net_null0", "--stream", "tx=a"}, "option 'port' value 'b=net_null0': device net_null0 already used by another port"},
        {{"--stream", "tx=west", "--duration", "0"}, "option 'duration' value '0': must be between 0.001 and 86400 seconds"},
        {{"--stream", "tx=west", "--duration", "1e9"}, "option 'duration' value '1e+09': must be between 0.001 and 86400 seconds"},
        {{"--stream", "tx=west", "--drain-ms", "60001"}, "option 'drain-ms' value '60001': must be between 0 and 60000"},
        {{"--stream", "tx=west", "--start-delay-ms", "70000"}, "option 'start-delay-ms' value '70000': must be between 0 and 60000"},
        {{"--stream", "tx=west", "--burst", "0"}, "option 'burst' value '0': must be between 1 and 256"},
        {{"--stream", "tx=west", "--rx-desc", "100"}, "option 'rx-desc' value '100': must be a power of two between 64 and 16384"},
        {{"--stream", "tx=west", "--mbufs", "2000"}, "option 'mbufs' value '2000': too few for 2 ports x (rx-desc + tx-desc) plus bursts in flight: need at least 5248"},
        {{"--stream", "tx=west", "--hugepages", "maybe"}, "option 'hugepages' value 'maybe': must be 'auto', 'yes' or 'no'"},
        {{"--stream", "tx=west", "--file-prefix", "a/b"}, "option 'file-prefix' value 'a/b': must be a non-empty name without '/'"},
        {{"--stream", "tx=west", "--log-level", "loud"}, "option 'log-level' value 'loud': must be one of trace, debug, info, warn, error"},
    };
    for (const auto& r : rows) {
        auto res = run(r.args);
        EXPECT_FALSE(res.config);
        EXPECT_EQ(res.error, r.error);
    }
    auto h = run({"--help"});
    EXPECT_TRUE(h.help);
    for (const char* opt : {"--port", "--stream", "--tcp", "--duration", "--drain-ms", "--link-wait", "--start-delay-ms", "--json", "--cpu",
                            "--burst", "--rx-desc", "--tx-desc", "--mbufs", "--hugepages", "--memory-mb",
                            "--file-prefix", "--log-level", "--config"})
        EXPECT_NE(h.error.find(opt), std::string::npos) << opt;
}

} // namespace
