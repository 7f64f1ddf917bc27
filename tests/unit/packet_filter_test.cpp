// packet_filter tests: the real per-burst filter (conntrack + compiled classifier + fragment
// cache) on parsed frames from the packet builder, as tables of (frame, expected fate), plus
// build_policy's error reporting and the enforcement modes.
#include "packet_filter.hpp"
#include "packet_builder.hpp"
#include "policy.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace sluice;
using namespace sluice::test;

namespace {

constexpr uint8_t west = 0, east = 1;
const port_binding ports[] = {{"west", west}, {"east", east}};

const char* const stateful = R"(*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i west -p tcp -m tcp --dport 80 -j ACCEPT
-A FORWARD -i west -p udp -m set --match-set dns dst,dst -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 113 -j REJECT --reject-with tcp-reset
COMMIT
)";
const char* const dns_set = "create dns hash:ip,port family inet\nadd dns 198.51.100.2,udp:53\n";

std::unique_ptr<policy_snapshot> make_policy(const char* rules, filter_mode mode = filter_mode::enforce,
                                             const char* sets = dns_set) {
    policy_sources src;
    src.rules4 = {"rules.v4", rules};
    src.sets = {"sets", sets};
    auto r = build_policy(src, mode, 7, ports, 1, 0);
    EXPECT_TRUE(r.snapshot) << r.error;
    return std::move(r.snapshot);
}

struct row {
    frame f;
    uint8_t in;
    filter_action want;
    const char* what;
};

// Run rows one burst each (or all in one burst) and compare.
void play(packet_filter& pf, const policy_snapshot& p, const std::vector<row>& rows, bool one_burst) {
    std::vector<packet_meta> metas(rows.size());
    std::vector<filter_input> in(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
        ASSERT_TRUE(parse_packet(rows[i].f.data(), uint32_t(rows[i].f.size()), uint32_t(rows[i].f.size()), metas[i]).ok)
            << rows[i].what;
        in[i] = {rows[i].f.data(), uint32_t(rows[i].f.size()), uint32_t(rows[i].f.size()),
                 rows[i].f.data() + 6, nullptr, rows[i].in, uint8_t(rows[i].in == west ? east : west)};
    }
    std::vector<filter_decision> out(rows.size());
    if (one_burst) {
        pf.run(p, metas, in, out, 100, 0);
    } else {
        for (size_t i = 0; i < rows.size(); ++i)
            pf.run(p, {&metas[i], 1}, {&in[i], 1}, {&out[i], 1}, 100, 0);
    }
    for (size_t i = 0; i < rows.size(); ++i)
        EXPECT_EQ(int(out[i].action), int(rows[i].want))
            << "row " << i << " (" << rows[i].what << "): reason " << name_of(out[i].reason);
}

std::vector<row> conversation() {
    const auto A = ip4_a, B = ip4_b;
    auto t = [&](bool from_a, uint8_t flags, uint32_t seq, uint32_t ack) {
        return packet().eth().ipv4(from_a ? A : B, from_a ? B : A)
            .tcp(from_a ? 40000 : 80, from_a ? 80 : 40000, flags).seq(seq).ack_seq(ack).bytes();
    };
    using F = filter_action;
    const uint8_t S = tcp_flag::syn, Ak = tcp_flag::ack, Fn = tcp_flag::fin;
    return {
        {t(true, S, 1000, 0), west, F::forward, "SYN to :80 (rule 3)"},
        {t(false, S | Ak, 5000, 1001), east, F::forward, "SYN/ACK: ESTABLISHED"},
        {t(true, Ak, 1001, 5001), west, F::forward, "ACK"},
        {t(true, Fn | Ak, 1001, 5001), west, F::forward, "FIN"},
        {t(false, Fn | Ak, 5001, 1002), east, F::forward, "FIN back"},
        {t(true, Ak, 1002, 5002), west, F::forward, "last ACK"},
        {packet().eth().ipv4(B, A).tcp(80, 40001, S | Ak).seq(1).ack_seq(2).bytes(), east, F::drop,
         "SYN/ACK of no connection: INVALID"},
        {packet().eth().ipv4(A, B).tcp(40002, 22, S).bytes(), west, F::drop, "SYN to :22: policy"},
        {packet().eth().ipv4(A, B).tcp(40003, 113, S).bytes(), west, F::reject, "ident: REJECT"},
        {packet().eth().ipv4(A, B).udp(5353, 53).payload(20).bytes(), west, F::forward, "set hit"},
        {packet().eth().ipv4(B, A).udp(53, 5353).payload(20).bytes(), east, F::forward, "its reply"},
        {packet().eth().ipv4(A, ip4_c).udp(5353, 53).payload(20).bytes(), west, F::drop, "set miss"},
        {packet().eth(mac_a, "ff:ff:ff:ff:ff:ff").arp_request(A, B).bytes(), west, F::forward,
         "ARP is not IP: not filtered"},
    };
}

TEST(packet_filter, stateful_conversation_packet_by_packet) {
    auto p = make_policy(stateful);
    packet_filter pf(conntrack_config{}, 1024, 64, 0);
    play(pf, *p, conversation(), false);
    EXPECT_EQ(pf.tracker().table().size(), 2u); // the TCP connection and the DNS flow
}

TEST(packet_filter, stateful_conversation_in_one_burst_gives_the_same_fates) {
    // SYN and SYN/ACK in one burst: the second is deferred until the first is committed.
    auto p = make_policy(stateful);
    packet_filter pf(conntrack_config{}, 1024, 64, 0);
    play(pf, *p, conversation(), true);
    EXPECT_GT(pf.tracker().counters().deferred, 0u);
}

TEST(packet_filter, flows_remember_the_generation_that_judged_them) {
    auto p = make_policy(stateful);
    packet_filter pf(conntrack_config{}, 1024, 64, 0);
    play(pf, *p, {conversation()[0]}, false);
    const auto& t = pf.tracker().table();
    bool found = false;
    for (uint32_t i = 0; i < t.capacity(); ++i)
        if (t.at(i).status & flow_status::confirmed) {
            EXPECT_EQ(t.at(i).generation, 7u);
            found = true;
        }
    EXPECT_TRUE(found);
}

TEST(packet_filter, rule_counters_count_matches) {
    auto p = make_policy(stateful);
    packet_filter pf(conntrack_config{}, 1024, 64, 0);
    auto rows = conversation();
    play(pf, *p, rows, false);
    // Rule 2 (RELATED,ESTABLISHED) is global index 1 of FORWARD... find it by spec.
    const classifier& c = p->forward(false);
    uint64_t est = 0, rej = 0;
    for (uint32_t g = 0; g < c.rule_count(); ++g) {
        auto ref = c.rule_at(g);
        const auto& r = p->rules4.chains[ref.chain].rules[ref.rule];
        auto spec = to_rule_spec(r);
        if (spec.find("RELATED,ESTABLISHED") != std::string::npos) est = p->rule_totals(false, g).first;
        if (spec.find("REJECT") != std::string::npos) rej = p->rule_totals(false, g).first;
    }
    EXPECT_EQ(est, 6u); // SYN/ACK, ACK, FIN, FIN back, last ACK, DNS reply
    EXPECT_EQ(rej, 1u);
}

TEST(packet_filter, monitor_mode_forwards_and_counts_would_be_drops) {
    auto p = make_policy(stateful, filter_mode::monitor);
    packet_filter pf(conntrack_config{}, 1024, 64, 0);
    std::vector<row> rows = conversation();
    for (auto& r : rows) r.want = filter_action::forward;
    play(pf, *p, rows, false);
    EXPECT_EQ(pf.counters().would_drop[size_t(drop_reason::policy_drop)].get(), 3u);
    EXPECT_EQ(pf.counters().would_drop[size_t(drop_reason::policy_reject)].get(), 1u);
}

TEST(packet_filter, bypass_mode_forwards_without_tracking) {
    auto p = make_policy(stateful, filter_mode::bypass);
    packet_filter pf(conntrack_config{}, 1024, 64, 0);
    std::vector<row> rows = conversation();
    for (auto& r : rows) r.want = filter_action::forward;
    play(pf, *p, rows, false);
    EXPECT_EQ(pf.tracker().table().size(), 0u);
}

TEST(packet_filter, established_flows_bypass_the_ruleset_when_that_is_safe) {
    auto p = make_policy(stateful);
    ASSERT_TRUE(p->forward(false).established_bypass_safe());
    packet_filter pf(conntrack_config{}, 1024, 64, 0);
    play(pf, *p, conversation(), false);
    EXPECT_GT(pf.counters().established_bypass.get(), 0u);
}

TEST(packet_filter, a_full_table_refuses_new_flows_but_keeps_established_ones) {
    const char* accept_all = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
    auto p = make_policy(accept_all);
    packet_filter pf(conntrack_config{}, 8, 64, 0);
    std::vector<row> flood;
    for (uint16_t i = 0; i < 64; ++i)
        flood.push_back({packet().eth().ipv4(ip4_a, ip4_b).udp(uint16_t(1000 + i), 53).bytes(), west,
                         filter_action::forward, "new UDP flow"});
    std::vector<packet_meta> m(flood.size());
    std::vector<filter_input> in(flood.size());
    std::vector<filter_decision> out(flood.size());
    for (size_t i = 0; i < flood.size(); ++i) {
        parse_packet(flood[i].f.data(), uint32_t(flood[i].f.size()), uint32_t(flood[i].f.size()), m[i]);
        in[i] = {flood[i].f.data(), uint32_t(flood[i].f.size()), uint32_t(flood[i].f.size()),
                 flood[i].f.data() + 6, nullptr, west, east};
    }
    pf.run(*p, m, in, out, 100, 0);
    size_t refused = 0;
    for (auto& d : out)
        if (d.action == filter_action::drop) {
            EXPECT_EQ(d.reason, drop_reason::ct_table_full);
            ++refused;
        }
    EXPECT_GT(refused, 0u);
    EXPECT_LE(pf.tracker().table().size(), 8u);
}

TEST(packet_filter, fragments_get_their_datagram_verdict) {
    auto p = make_policy(stateful);
    packet_filter pf(conntrack_config{}, 1024, 64, 0);
    auto frag = [](uint16_t dport, uint16_t id, uint16_t off, bool more) {
        auto b = packet().eth().ipv4(ip4_a, ip4_b).ipv4_fragment(off, more, id);
        if (off == 0) b.udp(5353, dport).payload(1000);
        else b.l4_raw(17).payload(800); // a UDP datagram's later part: no header
        return b.bytes();
    };
    // Last fragment first: nothing leaves until the datagram is complete; then all of it
    // leaves with the verdict of its first fragment (the UDP header: port 53 or 99).
    std::vector<frame> frames = {frag(53, 1, 1008, false), frag(99, 2, 0, true), frag(53, 1, 0, true),
                                 frag(99, 2, 1008, false)};
    std::vector<packet_meta> m(frames.size());
    std::vector<filter_input> in(frames.size());
    std::vector<filter_decision> out(frames.size());
    for (size_t i = 0; i < frames.size(); ++i) {
        ASSERT_TRUE(parse_packet(frames[i].data(), uint32_t(frames[i].size()), uint32_t(frames[i].size()), m[i]).ok);
        in[i] = {frames[i].data(), uint32_t(frames[i].size()), uint32_t(frames[i].size()),
                 frames[i].data() + 6, &frames[i], west, east};
    }
    // Burst 1: the first two fragments are held.
    pf.run(*p, {m.data(), 2}, {in.data(), 2}, {out.data(), 2}, 100, 0);
    EXPECT_EQ(out[0].action, filter_action::hold);
    EXPECT_EQ(out[1].action, filter_action::hold);
    EXPECT_TRUE(pf.released().empty());
    // Burst 2: both datagrams complete and are handed back whole, first fragment first.
    pf.run(*p, {m.data() + 2, 2}, {in.data() + 2, 2}, {out.data() + 2, 2}, 100, 0);
    auto rel = pf.released();
    ASSERT_EQ(rel.size(), 4u);
    EXPECT_EQ(rel[0].cookie, &frames[2]);
    EXPECT_EQ(rel[0].decision.action, filter_action::forward);
    EXPECT_NE(rel[0].meta, nullptr);
    EXPECT_EQ(rel[1].cookie, &frames[0]);
    EXPECT_EQ(rel[1].decision.action, filter_action::forward);
    EXPECT_EQ(rel[2].cookie, &frames[1]);
    EXPECT_EQ(rel[2].decision.action, filter_action::drop);
    EXPECT_EQ(rel[2].decision.reason, drop_reason::policy_drop);
    EXPECT_EQ(rel[3].cookie, &frames[3]);
    EXPECT_EQ(rel[3].decision.action, filter_action::drop);
    EXPECT_EQ(pf.fragments().held_fragments(), 0u);
}

TEST(build_policy, errors_name_file_line_and_column_and_build_nothing) {
    policy_sources src;
    src.rules4 = {"rules.v4", "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp --dprot 22 -j ACCEPT\nCOMMIT\n"};
    auto r = build_policy(src, filter_mode::enforce, 1, ports, 1, 0);
    EXPECT_FALSE(r.snapshot);
    EXPECT_EQ(r.error.rfind("rules.v4:3:", 0), 0u) << r.error;

    src.rules4 = {"rules.v4", "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"};
    r = build_policy(src, filter_mode::enforce, 1, ports, 1, 0);
    EXPECT_FALSE(r.snapshot);
    EXPECT_NE(r.error.find("rules.v4:1:"), std::string::npos) << r.error;

    src.rules4 = {"rules.v4", stateful};
    src.sets = {"sets.save", "create dns hash:ip,port family inet\nadd dns 198.51.100.2,udp:99999\n"};
    r = build_policy(src, filter_mode::enforce, 1, ports, 1, 0);
    EXPECT_FALSE(r.snapshot);
    EXPECT_EQ(r.error.rfind("sets.save:2:", 0), 0u) << r.error;

    src.sets = {"sets.save", ""};
    r = build_policy(src, filter_mode::enforce, 1, ports, 1, 0);
    EXPECT_FALSE(r.snapshot);
    EXPECT_NE(r.error.find("dns"), std::string::npos) << r.error; // unknown set
}

TEST(build_policy, the_felix_fragment_loads) {
    const char* felix = R"(*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:felix-FORWARD - [0:0]
:felix-FROM-ENDPOINT - [0:0]
:felix-from-7f470881-51 - [0:0]
:felix-p-_6b340324948a39b-o - [0:0]
:felix-p-_6b340324948a39b-i - [0:0]
-A FORWARD -j felix-FORWARD
-A felix-FORWARD -i tap+ -j felix-FROM-ENDPOINT
-A felix-FROM-ENDPOINT -i tap7f470881-51 -g felix-from-7f470881-51
-A felix-from-7f470881-51 -m conntrack --ctstate INVALID -j DROP
-A felix-from-7f470881-51 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
-A felix-from-7f470881-51 -s 10.28.0.40/32 -m mac --mac-source FA:16:3E:4E:7A:0E -g felix-p-_6b340324948a39b-o
-A felix-from-7f470881-51 -m comment --comment "Anti-spoof DROP (endpoint 7f470881-5156-47ce-a67d-b971ef5e5cde):" -j DROP
-A felix-p-_6b340324948a39b-i -p icmp -m set --match-set felix-v4-_6b340324948a39b src -j RETURN
-A felix-p-_6b340324948a39b-i -s 172.18.203.20/32 -p tcp -m multiport --dports 22 -j RETURN
COMMIT
)";
    const port_binding felix_ports[] = {{"tap7f470881-51", 0}, {"eth1", 1}};
    policy_sources src;
    src.rules4 = {"felix.v4", felix};
    src.sets = {"felix.sets", "create felix-v4-_6b340324948a39b hash:ip family inet\nadd felix-v4-_6b340324948a39b 10.28.0.41\n"};
    auto r = build_policy(src, filter_mode::enforce, 1, felix_ports, 2, 0);
    ASSERT_TRUE(r.snapshot) << r.error;
    EXPECT_EQ(r.snapshot->forward(false).rule_count(), 9u);
}

} // namespace
