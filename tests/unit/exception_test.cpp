// The exception path's pure parts: which frames a worker hands to sluice-control (a table
// of frames built with the packet builder, per port addresses), the mbuf mark both
// processes read, and the `address` / `exception-ring-size` options.
#include "config.hpp"
#include "exception.hpp"
#include "packet_builder.hpp"
#include "packet_filter.hpp"
#include "policy.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using namespace sluice;
using sluice::test::make_addr;
using sluice::test::packet;

const uint8_t port_mac[6] = {0x02, 0x00, 0x5e, 0x10, 0x20, 0x30};

// west (index 0): 192.0.2.254, 198.51.100.1; east (index 1): 2001:db8::fe + link-local.
local_addresses appliance() {
    local_addresses l;
    l.add(0, false, make_addr("192.0.2.254"));
    l.add(0, false, make_addr("198.51.100.1"));
    l.add(1, true, make_addr("2001:db8::fe"));
    l.add(1, true, local_addresses::link_local(port_mac));
    return l;
}

struct frame_case {
    const char* what;
    unsigned port;
    test::frame bytes;
    bool for_us;
};

bool judge(const local_addresses& l, unsigned port, const test::frame& f) {
    packet_meta m;
    auto r = parse_packet(f.data(), uint32_t(f.size()), uint32_t(f.size()), m);
    EXPECT_TRUE(r.ok);
    return is_for_appliance(l.port[port], m, f.data(), uint32_t(f.size()));
}

TEST(exception, link_local_is_modified_eui64) {
    EXPECT_EQ(test::to_string(local_addresses::link_local(port_mac)), "fe80::5eff:fe10:2030");
}

TEST(exception, frames_for_the_appliance) {
    const local_addresses l = appliance();
    // An ICMPv6 neighbour solicitation (135) or advertisement (136) about `target`.
    auto nd = [](uint8_t type, const char* src, const char* dst, const char* target) {
        const auto t = make_addr(target);
        return packet().eth().ipv6(src, dst, 255).icmpv6(type, 0).payload(test::frame(t.b, t.b + 16)).bytes();
    };
    auto ns = [&](const char* src, const char* dst, const char* target) { return nd(135, src, dst, target); };
    const std::vector<frame_case> cases{
        {"ARP request for our address", 0, packet().eth("02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff").arp_request("192.0.2.1", "192.0.2.254").bytes(), true},
        {"ARP request for our second address", 0, packet().eth().arp_request("192.0.2.1", "198.51.100.1").bytes(), true},
        {"ARP request for another host", 0, packet().eth().arp_request("192.0.2.1", "192.0.2.2").bytes(), false},
        {"ARP for our address on the other port", 1, packet().eth().arp_request("192.0.2.1", "192.0.2.254").bytes(), false},
        {"ICMP echo to us", 0, packet().eth().ipv4("192.0.2.1", "192.0.2.254").icmp(8, 0, 1, 1).bytes(), true},
        {"TCP to us", 0, packet().eth().ipv4("192.0.2.1", "192.0.2.254").tcp(40000, 22).bytes(), true},
        {"a fragment to us (the kernel reassembles)", 0, packet().eth().ipv4("192.0.2.1", "192.0.2.254").ipv4_fragment(1480, false, 7).payload(100).bytes(), true},
        {"TCP through the appliance", 0, packet().eth().ipv4("192.0.2.1", "192.0.2.2").tcp(40000, 22).bytes(), false},
        {"from us is not for us", 0, packet().eth().ipv4("192.0.2.254", "192.0.2.1").icmp(0, 0, 1, 1).bytes(), false},
        {"VLAN-tagged to us (no TAP for it)", 0, packet().eth().vlan(10).ipv4("192.0.2.1", "192.0.2.254").icmp(8, 0).bytes(), false},
        {"ICMPv6 echo to us", 1, packet().eth().ipv6("2001:db8::2", "2001:db8::fe").icmpv6(128, 0, 1, 1).bytes(), true},
        {"ICMPv6 echo to us on the wrong port", 0, packet().eth().ipv6("2001:db8::2", "2001:db8::fe").icmpv6(128, 0, 1, 1).bytes(), false},
        {"to our link-local address", 1, packet().eth().ipv6("fe80::2", "fe80::5eff:fe10:2030").icmpv6(128, 0).bytes(), true},
        {"NS for us (solicited-node group)", 1, ns("2001:db8::2", "ff02::1:ff00:fe", "2001:db8::fe"), true},
        {"NS for another host", 1, ns("2001:db8::2", "ff02::1:ff00:1", "2001:db8::1"), false},
        {"DAD NS for us (from ::)", 1, ns("::", "ff02::1:ff00:fe", "2001:db8::fe"), true},
        {"NA to all nodes about us", 1, nd(136, "2001:db8::2", "ff02::1", "2001:db8::fe"), true},
        {"IPv6 through the appliance", 1, packet().eth().ipv6("2001:db8::2", "2001:db8::1").udp(5000, 53).bytes(), false},
    };
    for (const auto& c : cases) EXPECT_EQ(judge(l, c.port, c.bytes), c.for_us) << c.what;
}

TEST(exception, no_addresses_nothing_for_us) {
    local_addresses l;
    EXPECT_FALSE(l.any);
    EXPECT_FALSE(judge(l, 0, packet().eth().arp_request("192.0.2.1", "192.0.2.254").bytes()));
}

TEST(exception, address_table_is_bounded) {
    local_addresses l;
    for (unsigned k = 0; k < exception_max_addresses; ++k)
        EXPECT_TRUE(l.add(0, false, make_addr(("192.0.2." + std::to_string(k + 1)).c_str())));
    EXPECT_FALSE(l.add(0, false, make_addr("192.0.2.100")));
}

TEST(exception, mark_round_trip) {
    using namespace exception_mark;
    uint32_t m = make(exception_reason::log, true, 1234);
    EXPECT_EQ(reason(m), exception_reason::log);
    EXPECT_TRUE(rule_v6(m));
    EXPECT_EQ(rule_index(m), 1234u);
    m = make(exception_reason::local);
    EXPECT_EQ(reason(m), exception_reason::local);
    EXPECT_FALSE(rule_v6(m));
    EXPECT_EQ(rule_index(m), no_rule_index);
    EXPECT_EQ(rule_index(make(exception_reason::log, false, sluice::no_rule)), no_rule_index);
    EXPECT_EQ(exception_ring_name(3), "sl_exc_3");
    EXPECT_EQ(inject_ring_name(0), "sl_inj_0");
}

// packet_filter names the first LOG/NFLOG rule a packet matched (whatever its verdict);
// the worker hands a copy of such a packet to control.
TEST(exception, filter_reports_log_hits) {
    const port_binding ports[] = {{"west", 0}, {"east", 1}};
    policy_sources src;
    src.rules4 = {"rules.v4", R"(*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --dport 22 -j ACCEPT
-A FORWARD -p udp -m udp --dport 9999 -j LOG --log-prefix "x "
-A FORWARD -p udp -m udp --dport 9999 -j NFLOG --nflog-group 2
-A FORWARD -p udp -m udp --dport 9998 -j NFLOG --nflog-group 2
-A FORWARD -p udp -m udp --dport 9998 -j DROP
COMMIT
)"};
    auto built = build_policy(src, filter_mode::enforce, 1, ports, 1, 0);
    ASSERT_TRUE(built.snapshot) << built.error;
    packet_filter pf(conntrack_config{}, 1024, 16, 0);
    struct row {
        test::frame f;
        uint32_t log_rule;
        filter_action action;
    };
    const std::vector<row> rows{
        {packet().eth().ipv4("192.0.2.1", "192.0.2.2").tcp(40000, 22).bytes(), no_rule, filter_action::forward},
        {packet().eth().ipv4("192.0.2.1", "192.0.2.2").udp(40000, 9999).bytes(), 1, filter_action::forward},
        {packet().eth().ipv4("192.0.2.1", "192.0.2.2").udp(40001, 9998).bytes(), 3, filter_action::drop},
        {packet().eth().arp_request("192.0.2.1", "192.0.2.2").bytes(), no_rule, filter_action::forward},
    };
    for (const auto& r : rows) {
        packet_meta m;
        ASSERT_TRUE(parse_packet(r.f.data(), uint32_t(r.f.size()), uint32_t(r.f.size()), m).ok);
        filter_input in{r.f.data(), uint32_t(r.f.size()), uint32_t(r.f.size()), r.f.data() + 6, nullptr, 0, 1};
        filter_decision d;
        d.log_rule = 77; // stale value from an earlier burst must not survive
        pf.run(*built.snapshot, {&m, 1}, {&in, 1}, {&d, 1}, 100, 0);
        EXPECT_EQ(d.log_rule, r.log_rule) << "row " << (&r - rows.data());
        EXPECT_EQ(int(d.action), int(r.action));
    }
}

config_result run(std::vector<std::string> extra) {
    std::vector<std::string> args{"sluice-fastpath", "--port", "west=net_null0", "--port", "east=net_null1",
                                  "--pair", "west:east"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<const char*> argv;
    for (auto& a : args) argv.push_back(a.c_str());
    return load_config(int(argv.size()), argv.data());
}

TEST(exception, address_option) {
    auto r = run({"--address", "west=192.0.2.254/24", "--address", "east=2001:db8::fe/64",
                  "--exception-ring-size", "256"});
    ASSERT_TRUE(r.config) << r.error;
    const auto& c = *r.config;
    EXPECT_EQ(c.exception_ring_size, 256u);
    ASSERT_EQ(c.addresses.size(), 2u);
    EXPECT_EQ(c.addresses[0].port, 0u);
    EXPECT_FALSE(c.addresses[0].v6);
    EXPECT_EQ(c.addresses[0].prefix, 24);
    EXPECT_EQ(test::to_string(c.addresses[0].addr), "192.0.2.254");
    EXPECT_EQ(c.addresses[1].port, 1u);
    EXPECT_TRUE(c.addresses[1].v6);
    EXPECT_EQ(c.addresses[1].prefix, 64);
    EXPECT_EQ(test::to_string(c.addresses[1].addr), "2001:db8::fe");
    EXPECT_EQ(run({}).config->exception_ring_size, 1024u) << "default";
}

TEST(exception, bad_address_options) {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
        {{"--address", "west"}, "option 'address' value 'west': expected PORT=ADDR/PREFIX"},
        {{"--address", "west=192.0.2.254"}, "option 'address' value 'west=192.0.2.254': expected PORT=ADDR/PREFIX"},
        {{"--address", "north=192.0.2.254/24"}, "option 'address' value 'north=192.0.2.254/24': no port named 'north'"},
        {{"--address", "west=192.0.2.300/24"}, "'192.0.2.300' is not an IPv4 or IPv6 address"},
        {{"--address", "west=224.0.0.1/4"}, "'224.0.0.1' is not a unicast host address"},
        {{"--address", "west=ff02::1/64"}, "'ff02::1' is not a unicast host address"},
        {{"--address", "west=::/64"}, "is not a unicast host address"},
        {{"--address", "west=192.0.2.254/33"}, "prefix length must be between 1 and 32"},
        {{"--address", "east=2001:db8::fe/129"}, "prefix length must be between 1 and 128"},
        {{"--address", "east=2001:db8::fe/x"}, "prefix length must be between 1 and 128"},
        {{"--address", "west=192.0.2.254/24", "--address", "east=192.0.2.254/24"},
         "option 'address' value 'east=192.0.2.254/24': address already given to port 'west'"},
        {{"--exception-ring-size", "100"}, "option 'exception-ring-size' value '100': must be a power of two between 64 and 65536"},
        {{"--exception-ring-size", "32"}, "option 'exception-ring-size' value '32'"},
    };
    for (const auto& [args, message] : cases) {
        auto r = run(args);
        EXPECT_FALSE(r.config);
        EXPECT_NE(r.error.find(message), std::string::npos) << "expected \"" << message << "\" in \"" << r.error << "\"";
    }
    std::vector<std::string> many;
    for (unsigned k = 0; k <= max_addresses_per_port; ++k) {
        many.push_back("--address");
        many.push_back("west=192.0.2." + std::to_string(k + 1) + "/24");
    }
    auto r = run(many);
    EXPECT_FALSE(r.config);
    EXPECT_NE(r.error.find("at most 8 addresses per port"), std::string::npos) << r.error;
}

} // namespace
