// Tests of lib/packet.cpp (parse_packet, parse_quoted).
//
// The bulk is one table: each row is a frame made with the packet builder and either the
// packet_meta fields it must produce or the drop reason it must get. On failure gtest
// prints the row's summary and a text2pcap-readable hex dump of the frame. Around the
// table: prefix sweeps (every valid row cut at every length, both as a short frame and as
// a multi-segment frame whose first segment is short), ICMP errors whose quoted packets
// are parsed back into the original 5-tuple, and a (disabled) generator for the fuzz seed
// corpus.
#include "packet.hpp"
#include "packet_builder.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

using namespace sluice;
using namespace sluice::test;

namespace {

// Parse from an exactly-sized heap copy, so that ASan reports any read past data_len.
parse_result parse_exact(const frame& f, uint32_t data_len, uint32_t pkt_len, packet_meta& m) {
    std::unique_ptr<uint8_t[]> buf(new uint8_t[data_len ? data_len : 1]);
    if (data_len) std::memcpy(buf.get(), f.data(), data_len);
    return parse_packet(buf.get(), data_len, pkt_len, m);
}

parse_result parse_frame(const frame& f, packet_meta& m) {
    return parse_exact(f, uint32_t(f.size()), uint32_t(f.size()), m);
}

uint64_t field_of(const packet_meta& m, std::string_view f) {
#define SLUICE_FIELD(x)                                                                            \
    if (f == #x) return uint64_t(m.x);
    SLUICE_FIELD(sport)
    SLUICE_FIELD(dport)
    SLUICE_FIELD(l2_len)
    SLUICE_FIELD(l3_off)
    SLUICE_FIELD(l4_off)
    SLUICE_FIELD(l4_len)
    SLUICE_FIELD(payload_len)
    SLUICE_FIELD(ethertype)
    SLUICE_FIELD(vlan_outer)
    SLUICE_FIELD(vlan_inner)
    SLUICE_FIELD(n_vlans)
    SLUICE_FIELD(l3)
    SLUICE_FIELD(l4_proto)
    SLUICE_FIELD(frag_flags)
    SLUICE_FIELD(ttl)
    SLUICE_FIELD(tcp_flags)
    SLUICE_FIELD(tcp_seq)
    SLUICE_FIELD(tcp_ack)
    SLUICE_FIELD(tcp_window)
    SLUICE_FIELD(tcp_wscale)
    SLUICE_FIELD(icmp_type)
    SLUICE_FIELD(icmp_code)
    SLUICE_FIELD(tcp_sack_perm)
    SLUICE_FIELD(frag_offset)
    SLUICE_FIELD(frag_id)
    SLUICE_FIELD(l3_len)
    SLUICE_FIELD(tcp_mss)
    SLUICE_FIELD(ip_total_len)
    SLUICE_FIELD(quoted_off)
#undef SLUICE_FIELD
    ADD_FAILURE() << "unknown packet_meta field in test table: " << f;
    return ~uint64_t(0);
}

struct want {
    std::string_view field;
    uint64_t value;
};

struct parse_case {
    std::string name;
    frame bytes;
    std::string desc;
    bool ok = true;
    drop_reason reason{};
    std::string src, dst; // expected addresses (IPv4 as dotted quad), empty: unchecked
    std::vector<want> fields;
    uint32_t data_len = 0; // 0: whole frame; else first segment only (pkt_len stays whole)
};

void PrintTo(const parse_case& c, std::ostream* os) { *os << c.name << ": " << c.desc; }

constexpr uint64_t v4 = uint64_t(l3_kind::ipv4), v6 = uint64_t(l3_kind::ipv6);
constexpr uint64_t unfragmented = frag::first;
constexpr uint64_t first_frag = frag::is_fragment | frag::first | frag::more;
constexpr uint64_t middle_frag = frag::is_fragment | frag::more;
constexpr uint64_t last_frag = frag::is_fragment;

parse_case good(std::string name, const packet& p, std::vector<want> fields,
                std::string src = {}, std::string dst = {}) {
    return {std::move(name), p.bytes(), p.describe(), true, {}, std::move(src), std::move(dst),
            std::move(fields)};
}

parse_case bad(std::string name, const packet& p, drop_reason r) {
    return {std::move(name), p.bytes(), p.describe(), false, r, {}, {}, {}};
}

parse_case bad_raw(std::string name, frame f, drop_reason r) {
    std::string d = "raw frame\n" + hex_dump(f);
    return {std::move(name), std::move(f), std::move(d), false, r, {}, {}, {}};
}

packet v4p() { return packet().eth().ipv4(ip4_a, ip4_b); }
packet v6p() { return packet().eth().ipv6(ip6_a, ip6_b); }

void add_l2_rows(std::vector<parse_case>& t) {
    auto add = [&](parse_case c) { t.push_back(std::move(c)); };

    // ---- L2 ----------------------------------------------------------------------------
    add(bad_raw("l2_empty", {}, drop_reason::l2_truncated));
    add(bad_raw("l2_13_bytes", frame(13, 0), drop_reason::l2_truncated));
    {
        frame f = v4p().vlan(10).udp(1, 2).bytes();
        f.resize(16); // tag cut in half
        add(bad_raw("vlan_tag_truncated", f, drop_reason::l2_truncated));
        f = v4p().qinq(10, 20).udp(1, 2).bytes();
        f.resize(20);
        add(bad_raw("qinq_inner_tag_truncated", f, drop_reason::l2_truncated));
    }
    add(good("vlan_8021q", v4p().vlan(10).udp(1, 2),
             {{"n_vlans", 1}, {"vlan_outer", 10}, {"vlan_inner", 0}, {"l2_len", 18},
              {"l3_off", 18}, {"ethertype", 0x0800}, {"l4_off", 38}, {"sport", 1}}));
    add(good("vlan_pcp_masked", v4p().vlan(4095, 7).udp(1, 2),
             {{"n_vlans", 1}, {"vlan_outer", 4095}}));
    add(good("qinq_88a8", v4p().qinq(100, 200).tcp(5, 6),
             {{"n_vlans", 2}, {"vlan_outer", 100}, {"vlan_inner", 200}, {"l2_len", 22},
              {"l4_off", 42}, {"dport", 6}}));
    add(good("qinq_9100", v4p().qinq(7, 8, eth_type::qinq_old).udp(1, 2),
             {{"n_vlans", 2}, {"vlan_outer", 7}, {"vlan_inner", 8}, {"l2_len", 22}}));
    add(good("qinq_8100_8100", v4p().vlan(3).vlan(4).udp(1, 2),
             {{"n_vlans", 2}, {"vlan_outer", 3}, {"vlan_inner", 4}}));
    add(good("qinq_ipv6", v6p().qinq(100, 200).udp(53, 53),
             {{"l3", v6}, {"n_vlans", 2}, {"l2_len", 22}, {"l4_off", 62}, {"sport", 53}}));
    add(bad("vlan_three_tags", v4p().vlan(1).vlan(2).vlan(3).udp(1, 2),
            drop_reason::vlan_too_deep));
    add(good("arp", packet().eth(mac_a, "ff:ff:ff:ff:ff:ff").arp_request(ip4_a, ip4_b),
             {{"l3", uint64_t(l3_kind::arp)}, {"ethertype", 0x0806}, {"l2_len", 14},
              {"l4_proto", 0}, {"l4_off", 0}}));
    add(good("arp_vlan", packet().eth().vlan(5).arp_request(ip4_a, ip4_b),
             {{"l3", uint64_t(l3_kind::arp)}, {"n_vlans", 1}, {"l2_len", 18}}));
    add(good("lldp_other", packet().eth().ethertype(eth_type::lldp).payload(30),
             {{"l3", uint64_t(l3_kind::other)}, {"ethertype", 0x88cc}, {"l4_proto", 0}}));
    add(good("other_bare_header", packet().eth().ethertype(0x1234),
             {{"l3", uint64_t(l3_kind::other)}, {"l2_len", 14}}));
}

void add_ipv4_rows(std::vector<parse_case>& t) {
    auto add = [&](parse_case c) { t.push_back(std::move(c)); };

    // ---- IPv4 --------------------------------------------------------------------------
    add(good("ipv4_tcp_syn",
             v4p().tcp(1234, 80, tcp_flag::syn).seq(0x01020304).window(29200).payload(10),
             {{"l3", v4}, {"ethertype", 0x0800}, {"l2_len", 14}, {"l3_off", 14},
              {"l3_len", 20}, {"l4_off", 34}, {"l4_len", 20}, {"payload_len", 10},
              {"ip_total_len", 50}, {"l4_proto", 6}, {"sport", 1234}, {"dport", 80},
              {"ttl", 64}, {"tcp_flags", tcp_flag::syn}, {"tcp_seq", 0x01020304},
              {"tcp_ack", 0}, {"tcp_window", 29200}, {"tcp_wscale", 0xff}, {"tcp_mss", 0},
              {"tcp_sack_perm", 0}, {"frag_flags", unfragmented}, {"frag_offset", 0},
              {"frag_id", 0x1234}, {"quoted_off", 0}, {"n_vlans", 0}},
             std::string(ip4_a), std::string(ip4_b)));
    add(good("ipv4_tcp_ack",
             v4p().tcp(80, 1234, tcp_flag::ack | tcp_flag::psh).seq(7).ack_seq(0xfffffffe),
             {{"tcp_flags", tcp_flag::ack | tcp_flag::psh}, {"tcp_seq", 7},
              {"tcp_ack", 0xfffffffe}, {"payload_len", 0}}));
    add(good("ipv4_ttl", packet().eth().ipv4(ip4_c, ip4_a, 1).udp(1, 2), {{"ttl", 1}},
             std::string(ip4_c), std::string(ip4_a)));
    add(good("ipv4_df_is_not_fragment", v4p().ipv4_df().udp(1, 2),
             {{"frag_flags", unfragmented}, {"frag_offset", 0}}));
    add(good("ipv4_udp", v4p().udp(5353, 53).payload(33),
             {{"l4_proto", 17}, {"sport", 5353}, {"dport", 53}, {"l4_len", 8},
              {"payload_len", 33}, {"ip_total_len", 61}}));
    add(good("ipv4_udplite", v4p().udplite(1000, 2000).payload(4),
             {{"l4_proto", 136}, {"sport", 1000}, {"dport", 2000}, {"l4_len", 8},
              {"payload_len", 4}}));
    add(good("ipv4_sctp", v4p().sctp(3868, 3869, 0xabcdef).payload(16),
             {{"l4_proto", 132}, {"sport", 3868}, {"dport", 3869}, {"l4_len", 12},
              {"payload_len", 16}}));
    add(good("ipv4_icmp_echo_request", v4p().icmp(8, 0, 0x4242, 1).payload(56),
             {{"l4_proto", 1}, {"icmp_type", 8}, {"icmp_code", 0}, {"sport", 0x4242},
              {"dport", 0x0800}, {"l4_len", 8}, {"payload_len", 56}, {"quoted_off", 0}}));
    add(good("ipv4_icmp_echo_reply", v4p().icmp(0, 0, 0x4242, 1),
             {{"icmp_type", 0}, {"sport", 0x4242}, {"dport", 0}}));
    add(good("ipv4_icmp_timestamp", v4p().icmp(13, 0, 99, 1).payload(12),
             {{"icmp_type", 13}, {"sport", 99}, {"dport", 13 << 8}}));
    add(good("ipv4_icmp_router_advert_no_id", v4p().icmp(9, 0, 0x0102, 0x0304),
             {{"icmp_type", 9}, {"sport", 0}, {"dport", 9 << 8}, {"quoted_off", 0}}));
    {
        const packet orig = packet().eth().ipv4(ip4_a, ip4_b).udp(4000, 53).payload(20);
        for (uint8_t type : {3, 4, 5, 11, 12}) {
            add(good("ipv4_icmp_error_type_" + std::to_string(type),
                     packet().eth().ipv4(ip4_c, ip4_a).icmp_error(type, 1, orig),
                     {{"icmp_type", type}, {"icmp_code", 1}, {"sport", 0},
                      {"dport", uint64_t(type) << 8 | 1}, {"quoted_off", 42}, {"l4_len", 8},
                      {"payload_len", 48}}));
        }
    }
    add(good("ipv4_icmp_error_vlan",
             packet().eth().vlan(9).ipv4(ip4_c, ip4_a).icmp_error(
                 3, 4, v4p().tcp(1, 2).ip_bytes()),
             {{"quoted_off", 46}}));
    add(good("ipv4_gre", v4p().gre().payload(20),
             {{"l4_proto", 47}, {"sport", 0}, {"dport", 0}, {"l4_len", 0},
              {"payload_len", 24}}));
    add(good("ipv4_esp", v4p().esp().payload(32),
             {{"l4_proto", 50}, {"sport", 0}, {"l4_len", 0}, {"payload_len", 40}}));
    add(good("ipv4_ah", v4p().l4_raw(51, frame(24, 0)),
             {{"l4_proto", 51}, {"sport", 0}, {"l4_len", 0}}));
    add(good("ipv4_no_l4_bytes", v4p().ip_proto(6).ipv4_fragment(8, false, 1),
             {{"l4_proto", 6}, {"payload_len", 0}, {"frag_flags", last_frag}}));
    add(good("ipv4_icmpv6_proto_unparsed", v4p().l4_raw(58, frame(8, 0x80)),
             {{"l4_proto", 58}, {"icmp_type", 0}, {"sport", 0}, {"l4_len", 0}}));
    add(good("ipv4_padding_after_datagram", v4p().udp(1, 2).pad_to(60),
             {{"ip_total_len", 28}, {"payload_len", 0}, {"sport", 1}}));
    add(good("ipv4_padding_large", v4p().tcp(1, 2).payload(3).pad_to(200),
             {{"ip_total_len", 43}, {"payload_len", 3}}));

    // options
    add(good("ipv4_options_router_alert", v4p().ipv4_options({0x94, 4, 0, 0}).tcp(1, 2),
             {{"l3_len", 24}, {"l4_off", 38}, {"sport", 1}, {"dport", 2}, {"l4_len", 20}}));
    add(good("ipv4_options_max", v4p().ipv4_options(frame(40, 1)).udp(7, 8).payload(1),
             {{"l3_len", 60}, {"l4_off", 74}, {"sport", 7}, {"payload_len", 1},
              {"ip_total_len", 69}}));

    // fragments
    add(good("ipv4_frag_first", v4p().ipv4_fragment(0, true, 77).udp(1, 2).payload(16),
             {{"frag_flags", first_frag}, {"frag_offset", 0}, {"frag_id", 77}, {"sport", 1},
              {"dport", 2}, {"l4_len", 8}, {"payload_len", 16}}));
    add(good("ipv4_frag_middle", v4p().ipv4_fragment(1480, true, 77).ip_proto(17).payload(64),
             {{"frag_flags", middle_frag}, {"frag_offset", 1480}, {"frag_id", 77},
              {"l4_proto", 17}, {"sport", 0}, {"dport", 0}, {"l4_off", 34}, {"l4_len", 0},
              {"payload_len", 64}}));
    add(good("ipv4_frag_last", v4p().ipv4_fragment(2960, false, 77).ip_proto(6).payload(30),
             {{"frag_flags", last_frag}, {"frag_offset", 2960}, {"sport", 0}, {"l4_len", 0},
              {"payload_len", 30}}));
    add(good("ipv4_frag_middle_tiny", v4p().ipv4_fragment(8, true, 5).ip_proto(6).payload(2),
             {{"frag_flags", middle_frag}, {"payload_len", 2}, {"tcp_flags", 0}}));
    add(good("ipv4_frag_icmp_middle_no_quote",
             v4p().ipv4_fragment(16, true, 5).ip_proto(1).payload(frame(16, 3)),
             {{"icmp_type", 0}, {"quoted_off", 0}, {"dport", 0}}));
    add(good("ipv4_frag_max_offset", v4p().ipv4_fragment(65528, false, 1).ip_proto(17).payload(7),
             {{"frag_offset", 65528}}));
    add(bad("ipv4_frag_beyond_64k", v4p().ipv4_fragment(65528, false, 1).ip_proto(17).payload(8),
            drop_reason::ip_bad_fragment));
    add(bad("ipv4_frag_first_l4_truncated", v4p().ipv4_fragment(0, true, 1).l4_raw(6, {0, 1, 0, 2}),
            drop_reason::l4_truncated));

    // malformed
    add(bad("ipv4_version_5", v4p().ip_version(5).udp(1, 2), drop_reason::ipv4_bad_version));
    add(bad("ipv4_version_6", v4p().ip_version(6).udp(1, 2), drop_reason::ipv4_bad_version));
    for (uint8_t ihl = 0; ihl < 5; ++ihl)
        add(bad("ipv4_ihl_" + std::to_string(ihl), v4p().ipv4_ihl(ihl).udp(1, 2),
                drop_reason::ipv4_bad_ihl));
    add(bad("ipv4_ihl_beyond_frame", v4p().ipv4_ihl(15).udp(1, 2), drop_reason::ipv4_bad_ihl));
    add(bad("ipv4_ihl_beyond_frame_by_4", v4p().ipv4_ihl(8).udp(1, 2).payload(0),
            drop_reason::ipv4_bad_ihl));
    add(bad("ipv4_total_len_below_ihl", v4p().ipv4_total_length(19).udp(1, 2),
            drop_reason::ipv4_bad_length));
    add(bad("ipv4_total_len_below_options", v4p().ipv4_options({1, 1, 1, 1}).ipv4_total_length(20),
            drop_reason::ipv4_bad_length));
    add(bad("ipv4_total_len_zero", v4p().ipv4_total_length(0).udp(1, 2),
            drop_reason::ipv4_bad_length));
    add(bad("ipv4_total_len_beyond_frame", v4p().ipv4_total_length(29).udp(1, 2),
            drop_reason::ipv4_bad_length));
    add(bad("ipv4_total_len_max", v4p().ipv4_total_length(65535).udp(1, 2),
            drop_reason::ipv4_bad_length));
    // The UDP bytes lie beyond the datagram (they count as Ethernet padding).
    add(bad("ipv4_total_len_header_only", v4p().ipv4_total_length(20).udp(1, 2),
            drop_reason::l4_truncated));
    add(bad("ipv4_tcp_cut_by_total_len", v4p().tcp(1, 2).ipv4_total_length(30),
            drop_reason::l4_truncated));
    add(bad("ipv4_udp_cut_by_total_len", v4p().udp(1, 2).ipv4_total_length(24),
            drop_reason::l4_truncated));
    add(bad("ipv4_sctp_truncated", v4p().l4_raw(132, frame(8, 0)), drop_reason::l4_truncated));
    add(bad("ipv4_icmp_truncated", v4p().l4_raw(1, {8, 0, 0, 0}), drop_reason::l4_truncated));
    add(bad("ipv4_udplite_truncated", v4p().l4_raw(136, {0, 1, 0, 2, 0, 0}),
            drop_reason::l4_truncated));
    {
        frame f = v4p().udp(1, 2).bytes();
        f.resize(14 + 19);
        add(bad_raw("ipv4_header_19_bytes", f, drop_reason::l3_truncated));
    }
}

void add_tcp_rows(std::vector<parse_case>& t) {
    auto add = [&](parse_case c) { t.push_back(std::move(c)); };

    // TCP header and options
    for (uint8_t doff = 0; doff < 5; ++doff)
        add(bad("tcp_doff_" + std::to_string(doff), v4p().tcp(1, 2).tcp_doff(doff).payload(40),
                drop_reason::tcp_bad_offset));
    add(bad("tcp_doff_beyond_segment", v4p().tcp(1, 2).tcp_doff(15), drop_reason::tcp_bad_offset));
    add(bad("tcp_doff_beyond_segment_by_4", v4p().tcp(1, 2).tcp_doff(6).payload(3),
            drop_reason::tcp_bad_offset));
    add(good("tcp_doff_exactly_segment", v4p().tcp(1, 2).tcp_doff(6).payload(4),
             {{"l4_len", 24}, {"payload_len", 0}}));
    add(good("tcp_options_syn",
             v4p().tcp(1, 2).mss(1460).sack_perm().timestamps(1, 0).wscale(7),
             {{"tcp_mss", 1460}, {"tcp_wscale", 7}, {"tcp_sack_perm", 1}, {"l4_len", 44}}));
    add(good("tcp_options_wscale_0", v4p().tcp(1, 2).wscale(0), {{"tcp_wscale", 0}}));
    add(good("tcp_options_wscale_clamped", v4p().tcp(1, 2).wscale(200), {{"tcp_wscale", 14}}));
    add(good("tcp_options_zero_length_stops",
             v4p().tcp(1, 2).mss(536).tcp_option({8, 0, 0, 0}).wscale(3),
             {{"tcp_mss", 536}, {"tcp_wscale", 0xff}}));
    add(good("tcp_options_one_length_stops", v4p().tcp(1, 2).tcp_option({8, 1}).mss(536),
             {{"tcp_mss", 0}}));
    add(good("tcp_options_overrun_stops",
             v4p().tcp(1, 2).tcp_option({2, 40, 1, 2}).mss(1000),
             {{"tcp_mss", 0}, {"l4_len", 28}}));
    add(good("tcp_options_eol_stops", v4p().tcp(1, 2).tcp_option({0, 0, 0, 0}).mss(1000),
             {{"tcp_mss", 0}}));
    add(good("tcp_options_wrong_length_skipped",
             v4p().tcp(1, 2).tcp_option({2, 3, 5}).tcp_option({3, 3, 5}).tcp_option({4, 3, 0}),
             {{"tcp_mss", 0}, {"tcp_wscale", 5}, {"tcp_sack_perm", 0}}));
    add(good("tcp_options_kind_in_last_byte", v4p().tcp(1, 2).tcp_option({1, 1, 1, 2}),
             {{"tcp_mss", 0}, {"tcp_wscale", 0xff}}));
    add(good("tcp_options_unknown_skipped",
             v4p().tcp(1, 2).tcp_option({30, 6, 1, 2, 3, 4}).tcp_option({1, 1}).mss(1220),
             {{"tcp_mss", 1220}}));
}

void add_ipv6_rows(std::vector<parse_case>& t) {
    auto add = [&](parse_case c) { t.push_back(std::move(c)); };

    // ---- IPv6 --------------------------------------------------------------------------
    add(good("ipv6_tcp", packet().eth().ipv6(ip6_a, ip6_b, 33).tcp(443, 50000).payload(5),
             {{"l3", v6}, {"ethertype", 0x86dd}, {"l3_off", 14}, {"l3_len", 40},
              {"l4_off", 54}, {"l4_len", 20}, {"payload_len", 5}, {"ip_total_len", 65},
              {"l4_proto", 6}, {"sport", 443}, {"dport", 50000}, {"ttl", 33},
              {"frag_flags", unfragmented}, {"frag_id", 0}},
             std::string(ip6_a), std::string(ip6_b)));
    add(good("ipv6_udp", v6p().udp(546, 547).payload(10),
             {{"l4_proto", 17}, {"sport", 546}, {"dport", 547}, {"payload_len", 10}}));
    add(good("ipv6_udplite", v6p().udplite(9, 10), {{"l4_proto", 136}, {"sport", 9}}));
    add(good("ipv6_sctp", v6p().sctp(1, 2), {{"l4_proto", 132}, {"l4_len", 12}}));
    add(good("ipv6_icmpv6_echo_request", v6p().icmpv6(128, 0, 0x77, 1).payload(8),
             {{"l4_proto", 58}, {"icmp_type", 128}, {"sport", 0x77}, {"dport", 0x8000},
              {"l4_len", 8}, {"quoted_off", 0}}));
    add(good("ipv6_icmpv6_echo_reply", v6p().icmpv6(129, 0, 0x77, 1),
             {{"icmp_type", 129}, {"sport", 0x77}, {"dport", 0x8100}}));
    add(good("ipv6_icmpv6_neighbor_solicit", v6p().icmpv6(135, 0).payload(16),
             {{"icmp_type", 135}, {"sport", 0}, {"quoted_off", 0}}));
    {
        const packet orig = v6p().tcp(5000, 22);
        for (uint8_t type : {1, 2, 3, 4})
            add(good("ipv6_icmpv6_error_type_" + std::to_string(type),
                     packet().eth().ipv6(ip6_c, ip6_a).icmpv6_error(type, 0, orig),
                     {{"icmp_type", type}, {"quoted_off", 62}, {"sport", 0},
                      {"dport", uint64_t(type) << 8}}));
    }
    add(good("ipv6_icmp_v4_proto_unparsed", v6p().l4_raw(1, frame(8, 3)),
             {{"l4_proto", 1}, {"icmp_type", 0}, {"quoted_off", 0}}));
    add(good("ipv6_ext_chain", v6p().hop_by_hop().routing({ip6_c}, 1).dest_opts(1).tcp(1, 2),
             {{"l3_len", 40 + 8 + 24 + 16}, {"l4_off", 14 + 88}, {"l4_proto", 6}, {"sport", 1},
              {"ip_total_len", 40 + 48 + 20}}));
    add(good("ipv6_hop_by_hop_max", v6p().hop_by_hop(255).udp(1, 2),
             {{"l3_len", 40 + 2048}, {"sport", 1}}));
    add(good("ipv6_ah", v6p().ah().tcp(1, 2),
             {{"l3_len", 64}, {"l4_off", 78}, {"l4_proto", 6}, {"sport", 1}}));
    add(good("ipv6_esp_ends_chain", v6p().dest_opts().esp().payload(20),
             {{"l4_proto", 50}, {"l4_off", 62}, {"l4_len", 0}, {"payload_len", 28},
              {"sport", 0}}));
    add(good("ipv6_no_next_header", v6p(),
             {{"l4_proto", 59}, {"l4_off", 54}, {"payload_len", 0}, {"ip_total_len", 40}}));
    add(good("ipv6_no_next_header_after_hbh", v6p().hop_by_hop().payload(7),
             {{"l4_proto", 59}, {"l4_off", 62}, {"payload_len", 7}}));
    add(good("ipv6_eight_ext_headers",
             v6p().hop_by_hop().dest_opts().routing().dest_opts().dest_opts().dest_opts()
                 .dest_opts().dest_opts().udp(1, 2),
             {{"l3_len", 40 + 64}, {"sport", 1}}));
    add(bad("ipv6_nine_ext_headers",
            v6p().hop_by_hop().dest_opts().routing().dest_opts().dest_opts().dest_opts()
                .dest_opts().dest_opts().dest_opts().udp(1, 2),
            drop_reason::ipv6_ext_chain));
    add(bad("ipv6_hop_by_hop_not_first", v6p().dest_opts().hop_by_hop().udp(1, 2),
            drop_reason::ipv6_ext_chain));
    add(bad("ipv6_two_fragment_headers",
            v6p().fragment(0, true, 1).fragment(0, true, 1).udp(1, 2).payload(8),
            drop_reason::ipv6_ext_chain));
    add(bad("ipv6_ext_length_beyond_payload",
            v6p().ext_raw(60, {0, 10, 1, 4, 0, 0, 0, 0}).udp(1, 2), drop_reason::ipv6_ext_chain));
    add(bad("ipv6_ext_header_no_room", v6p().hop_by_hop().ipv6_payload_length(0).udp(1, 2),
            drop_reason::ipv6_ext_chain));
    add(bad("ipv6_ext_header_one_byte", v6p().hop_by_hop().ipv6_payload_length(1),
            drop_reason::ipv6_ext_chain));
    add(bad("ipv6_fragment_header_cut", v6p().fragment(0, false, 1).ipv6_payload_length(7),
            drop_reason::ipv6_ext_chain));
    add(bad("ipv6_ah_length_beyond_payload", v6p().ext_raw(51, {59, 200, 0, 0, 0, 0, 0, 0}),
            drop_reason::ipv6_ext_chain));
    add(bad("ipv6_version_4", v6p().ip_version(4).udp(1, 2), drop_reason::ipv6_bad_version));
    add(bad("ipv6_payload_len_beyond_frame", v6p().udp(1, 2).ipv6_payload_length(9),
            drop_reason::ipv6_bad_length));
    add(bad("ipv6_payload_len_max", v6p().udp(1, 2).ipv6_payload_length(65535),
            drop_reason::ipv6_bad_length));
    add(good("ipv6_padding_after_datagram", v6p().udp(1, 2).pad_to(100),
             {{"ip_total_len", 48}, {"payload_len", 0}}));
    add(bad("ipv6_udp_cut_by_payload_len", v6p().udp(1, 2).ipv6_payload_length(4),
            drop_reason::l4_truncated));
    add(bad("ipv6_tcp_bad_doff", v6p().tcp(1, 2).tcp_doff(3), drop_reason::tcp_bad_offset));
    add(bad("ipv6_icmpv6_truncated", v6p().l4_raw(58, {128, 0, 0, 0}),
            drop_reason::l4_truncated));
    {
        frame f = v6p().udp(1, 2).bytes();
        f.resize(14 + 39);
        add(bad_raw("ipv6_header_39_bytes", f, drop_reason::l3_truncated));
    }
}

void add_ipv6_fragment_rows(std::vector<parse_case>& t) {
    auto add = [&](parse_case c) { t.push_back(std::move(c)); };

    // IPv6 fragments
    add(good("ipv6_frag_first", v6p().fragment(0, true, 0xdeadbeef).udp(1, 2).payload(16),
             {{"frag_flags", first_frag}, {"frag_offset", 0}, {"frag_id", 0xdeadbeef},
              {"l4_off", 62}, {"l3_len", 48}, {"l4_proto", 17}, {"sport", 1}, {"dport", 2},
              {"payload_len", 16}}));
    add(good("ipv6_frag_middle", v6p().fragment(1448, true, 7).ip_proto(17).payload(64),
             {{"frag_flags", middle_frag}, {"frag_offset", 1448}, {"frag_id", 7},
              {"l4_proto", 17}, {"l4_off", 62}, {"l4_len", 0}, {"sport", 0},
              {"payload_len", 64}}));
    add(good("ipv6_frag_last", v6p().fragment(2896, false, 7).ip_proto(6).payload(30),
             {{"frag_flags", last_frag}, {"frag_offset", 2896}, {"sport", 0},
              {"l4_proto", 6}, {"payload_len", 30}}));
    add(good("ipv6_frag_atomic", v6p().fragment(0, false, 5).udp(1, 2),
             {{"frag_flags", unfragmented}, {"frag_id", 5}, {"sport", 1}}));
    add(good("ipv6_frag_first_with_ext_after",
             v6p().hop_by_hop().fragment(0, true, 9).dest_opts().tcp(1, 2).payload(4),
             {{"frag_flags", first_frag}, {"l3_len", 64}, {"l4_proto", 6}, {"sport", 1},
              {"l4_len", 20}}));
    add(good("ipv6_frag_middle_stops_chain",
             v6p().fragment(8, true, 9).ip_proto(0).payload(frame(8, 0xff)),
             {{"frag_flags", middle_frag}, {"l4_proto", 0}, {"l4_off", 62}}));
    add(good("ipv6_frag_icmpv6_middle_no_quote",
             v6p().fragment(8, true, 9).ip_proto(58).payload(frame(8, 1)),
             {{"quoted_off", 0}, {"icmp_type", 0}}));
    add(bad("ipv6_frag_more_not_multiple_of_8", v6p().fragment(0, true, 1).udp(1, 2).payload(3),
            drop_reason::ip_bad_fragment));
    add(bad("ipv6_frag_beyond_64k", v6p().fragment(65528, false, 1).ip_proto(17).payload(8),
            drop_reason::ip_bad_fragment));
    add(bad("ipv6_frag_first_l4_truncated",
            v6p().fragment(0, true, 1).l4_raw(6, frame(8, 0)), drop_reason::l4_truncated));
}

void add_jumbo_rows(std::vector<parse_case>& t) {
    auto add = [&](parse_case c) { t.push_back(std::move(c)); };

    // ---- jumbo: pkt_len > data_len, headers in the first segment -----------------------
    {
        packet j = v4p().tcp(1, 2, tcp_flag::ack).payload(8900);
        parse_case c = good("jumbo_ipv4_tcp", j,
                            {{"ip_total_len", 8940}, {"payload_len", 8900}, {"sport", 1}});
        c.data_len = 54 + 100;
        add(c);
        packet j6 = v6p().hop_by_hop().udp(1, 2).payload(9000);
        c = good("jumbo_ipv6_udp", j6,
                 {{"ip_total_len", 40 + 8 + 8 + 9000}, {"payload_len", 9000}, {"l4_off", 62}});
        c.data_len = 78;
        add(c);
        c = bad("jumbo_headers_past_first_segment", j, drop_reason::l4_truncated);
        c.data_len = 40;
        add(c);
        c = bad("jumbo_ipv6_ext_past_first_segment", j6, drop_reason::ipv6_ext_chain);
        c.data_len = 60;
        add(c);
    }
}

std::vector<parse_case> table() {
    std::vector<parse_case> t;
    add_l2_rows(t);
    add_ipv4_rows(t);
    add_tcp_rows(t);
    add_ipv6_rows(t);
    add_ipv6_fragment_rows(t);
    add_jumbo_rows(t);
    return t;
}

const std::vector<parse_case>& cases() {
    static const std::vector<parse_case> t = table();
    return t;
}

void check_case(const parse_case& c, const packet_meta& m, parse_result r) {
    if (!c.ok) {
        EXPECT_FALSE(r.ok);
        if (!r.ok) {
            EXPECT_EQ(name_of(r.reason), name_of(c.reason));
        }
        return;
    }
    ASSERT_TRUE(r.ok) << "dropped: " << name_of(r.reason);
    for (const want& w : c.fields) EXPECT_EQ(field_of(m, w.field), w.value) << w.field;
    if (!c.src.empty()) {
        EXPECT_EQ(test::to_string(m.src), c.src);
    }
    if (!c.dst.empty()) {
        EXPECT_EQ(test::to_string(m.dst), c.dst);
    }
}

class parse_table : public ::testing::TestWithParam<parse_case> {};

TEST_P(parse_table, fields_or_drop_reason) {
    const parse_case& c = GetParam();
    SCOPED_TRACE(c.desc);
    const uint32_t pkt_len = uint32_t(c.bytes.size());
    const uint32_t data_len = c.data_len ? c.data_len : pkt_len;
    packet_meta m;
    parse_result r = parse_exact(c.bytes, data_len, pkt_len, m);
    check_case(c, m, r);
}

INSTANTIATE_TEST_SUITE_P(rows, parse_table, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<parse_case>& i) {
                             return i.param.name;
                         });

TEST(parse_table_meta, covers_every_parser_drop_reason) {
    std::set<std::string_view> seen;
    for (const auto& c : cases())
        if (!c.ok) seen.insert(name_of(c.reason));
    for (drop_reason r : {drop_reason::l2_truncated, drop_reason::vlan_too_deep,
                          drop_reason::l3_truncated, drop_reason::ipv4_bad_version,
                          drop_reason::ipv4_bad_ihl, drop_reason::ipv4_bad_length,
                          drop_reason::ipv6_bad_version, drop_reason::ipv6_bad_length,
                          drop_reason::ipv6_ext_chain, drop_reason::ip_bad_fragment,
                          drop_reason::l4_truncated, drop_reason::tcp_bad_offset})
        EXPECT_TRUE(seen.count(name_of(r))) << "no table row for " << name_of(r);
}

// ---- prefix sweeps ---------------------------------------------------------------------

// The reason a frame cut to `len` bytes (data_len == pkt_len == len) must get, given the
// parse of the whole frame; ok (nullopt) once the whole IP datagram is there.
std::optional<drop_reason> expected_for_short_frame(const packet_meta& full, uint32_t len) {
    if (len < full.l2_len) return drop_reason::l2_truncated;
    const uint32_t l3 = full.l3_off;
    if (full.l3 == l3_kind::ipv4) {
        if (len < l3 + 20) return drop_reason::l3_truncated;
        if (len < l3 + full.l3_len) return drop_reason::ipv4_bad_ihl;
        if (len < l3 + full.ip_total_len) return drop_reason::ipv4_bad_length;
    } else if (full.l3 == l3_kind::ipv6) {
        if (len < l3 + 40) return drop_reason::l3_truncated;
        if (len < l3 + full.ip_total_len) return drop_reason::ipv6_bad_length;
    }
    return std::nullopt;
}

// Same, but only the first segment is short (data_len == len, pkt_len == whole frame).
std::optional<drop_reason> expected_for_short_segment(const packet_meta& full, uint32_t len) {
    if (len < full.l2_len) return drop_reason::l2_truncated;
    const uint32_t l3 = full.l3_off;
    if (full.l3 == l3_kind::ipv4) {
        if (len < l3 + 20) return drop_reason::l3_truncated;
        if (len < full.l4_off) return drop_reason::ipv4_bad_ihl;
    } else if (full.l3 == l3_kind::ipv6) {
        if (len < l3 + 40) return drop_reason::l3_truncated;
        if (len < full.l4_off) return drop_reason::ipv6_ext_chain;
    } else {
        return std::nullopt;
    }
    if (len < uint32_t(full.l4_off) + full.l4_len) return drop_reason::l4_truncated;
    return std::nullopt;
}

TEST(parse_prefix, every_prefix_of_every_valid_row) {
    size_t parsed = 0;
    for (const auto& c : cases()) {
        if (!c.ok || c.data_len) continue;
        SCOPED_TRACE(c.name + ": " + c.desc);
        packet_meta full;
        ASSERT_TRUE(parse_frame(c.bytes, full).ok);
        for (uint32_t len = 0; len < c.bytes.size(); ++len) {
            packet_meta m;
            parse_result r = parse_exact(c.bytes, len, len, m);
            ++parsed;
            auto want = expected_for_short_frame(full, len);
            if (want) {
                ASSERT_FALSE(r.ok) << "len " << len;
                ASSERT_EQ(name_of(r.reason), name_of(*want)) << "len " << len;
            } else {
                ASSERT_TRUE(r.ok) << "len " << len << " dropped: " << name_of(r.reason);
                ASSERT_EQ(std::memcmp(&m, &full, sizeof m), 0) << "len " << len;
            }
        }
    }
    EXPECT_GT(parsed, 5000u);
}

TEST(parse_prefix, every_first_segment_length_of_every_valid_row) {
    for (const auto& c : cases()) {
        if (!c.ok || c.data_len) continue;
        SCOPED_TRACE(c.name + ": " + c.desc);
        packet_meta full;
        ASSERT_TRUE(parse_frame(c.bytes, full).ok);
        const uint32_t pkt_len = uint32_t(c.bytes.size());
        for (uint32_t len = 0; len < pkt_len; ++len) {
            packet_meta m;
            parse_result r = parse_exact(c.bytes, len, pkt_len, m);
            auto want = expected_for_short_segment(full, len);
            if (want) {
                ASSERT_FALSE(r.ok) << "data_len " << len;
                ASSERT_EQ(name_of(r.reason), name_of(*want)) << "data_len " << len;
            } else {
                ASSERT_TRUE(r.ok) << "data_len " << len << " dropped: " << name_of(r.reason);
                ASSERT_EQ(std::memcmp(&m, &full, sizeof m), 0) << "data_len " << len;
            }
        }
    }
}

TEST(parse_packet_contract, zeroes_output_first) {
    packet_meta m;
    std::memset(&m, 0xa5, sizeof m);
    frame f = packet().eth().arp_request(ip4_a, ip4_b).bytes();
    ASSERT_TRUE(parse_frame(f, m).ok);
    packet_meta z;
    std::memset(&z, 0, sizeof z);
    z.tcp_wscale = 0xff;
    z.l3 = l3_kind::arp;
    z.ethertype = 0x0806;
    z.l2_len = z.l3_off = 14;
    EXPECT_EQ(std::memcmp(&m, &z, sizeof m), 0);

    std::memset(&m, 0xa5, sizeof m);
    EXPECT_FALSE(parse_frame(frame(5, 0), m).ok);
    EXPECT_EQ(m.sport, 0);
    EXPECT_EQ(m.l4_proto, 0);
}

TEST(parse_packet_contract, pkt_len_shorter_than_data_len_bounds_the_frame) {
    frame f = v4p().udp(1, 2).pad_to(60).bytes();
    packet_meta m;
    EXPECT_TRUE(parse_exact(f, 60, 42, m).ok);
    parse_result r = parse_exact(f, 60, 41, m);
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(name_of(r.reason), "ipv4_bad_length");
}

TEST(parse_packet_contract, unaligned_frame) {
    frame f = v6p().vlan(3).hop_by_hop().tcp(1, 2).mss(1400).bytes();
    std::vector<uint8_t> buf(f.size() + 1);
    std::memcpy(buf.data() + 1, f.data(), f.size());
    packet_meta m;
    ASSERT_TRUE(parse_packet(buf.data() + 1, uint32_t(f.size()), uint32_t(f.size()), m).ok);
    EXPECT_EQ(m.tcp_mss, 1400);
    EXPECT_EQ(test::to_string(m.src), ip6_a);
}

// ---- ICMP errors and parse_quoted ------------------------------------------------------

struct quote_case {
    std::string name;
    packet original;
    bool v6;
};

std::vector<quote_case> quote_cases() {
    return {
        {"v4_tcp", packet().eth().ipv4(ip4_a, ip4_b).tcp(40000, 443).seq(0xa0b0c0d0), false},
        {"v4_udp", packet().eth().ipv4(ip4_a, ip4_b).udp(5000, 53).payload(30), false},
        {"v4_udplite", packet().eth().ipv4(ip4_a, ip4_b).udplite(5, 6), false},
        {"v4_sctp", packet().eth().ipv4(ip4_a, ip4_b).sctp(7, 8).payload(8), false},
        {"v4_icmp_echo", packet().eth().ipv4(ip4_a, ip4_b).icmp(8, 0, 0x1111, 3), false},
        {"v4_options_tcp",
         packet().eth().ipv4(ip4_a, ip4_b).ipv4_options({0x94, 4, 0, 0}).tcp(1, 2).seq(9),
         false},
        {"v6_tcp", packet().eth().ipv6(ip6_a, ip6_b).tcp(40000, 443).seq(77), true},
        {"v6_udp_ext", packet().eth().ipv6(ip6_a, ip6_b).hop_by_hop().dest_opts().udp(5, 6),
         true},
        {"v6_frag_first_udp",
         packet().eth().ipv6(ip6_a, ip6_b).fragment(0, true, 3).udp(5, 6).payload(8), true},
        {"v6_icmpv6_echo", packet().eth().ipv6(ip6_a, ip6_b).icmpv6(128, 0, 0x2222, 1), true},
    };
}

TEST(parse_quoted, recovers_the_quoted_flow) {
    for (const auto& q : quote_cases()) {
        SCOPED_TRACE(q.name + ": " + q.original.summary());
        packet_meta orig;
        ASSERT_TRUE(parse_frame(q.original.bytes(), orig).ok);
        // Whole datagram, and the RFC 792 minimum (IP header + 8 bytes).
        for (size_t max_quote : {size_t(1500), size_t(orig.l3_len + 8)}) {
            packet err = q.v6 ? packet().eth().ipv6(ip6_c, ip6_a).icmpv6_error(1, 4, q.original,
                                                                              max_quote)
                              : packet().eth().ipv4(ip4_c, ip4_a).icmp_error(3, 3, q.original,
                                                                            max_quote);
            frame f = err.bytes();
            SCOPED_TRACE(err.describe());
            packet_meta outer;
            ASSERT_TRUE(parse_frame(f, outer).ok);
            ASSERT_NE(outer.quoted_off, 0);
            ASSERT_EQ(outer.quoted_off, outer.l4_off + 8);
            const uint32_t qlen = uint32_t(f.size() - outer.quoted_off);
            std::unique_ptr<uint8_t[]> buf(new uint8_t[qlen]);
            std::memcpy(buf.get(), f.data() + outer.quoted_off, qlen);
            packet_meta in;
            parse_result r = parse_quoted(buf.get(), qlen, outer.l3, in);
            ASSERT_TRUE(r.ok) << name_of(r.reason);
            EXPECT_EQ(in.l3, orig.l3);
            EXPECT_EQ(test::to_string(in.src), test::to_string(orig.src));
            EXPECT_EQ(test::to_string(in.dst), test::to_string(orig.dst));
            EXPECT_EQ(in.l4_proto, orig.l4_proto);
            EXPECT_EQ(in.sport, orig.sport);
            EXPECT_EQ(in.dport, orig.dport);
            EXPECT_EQ(in.icmp_type, orig.icmp_type);
            EXPECT_EQ(in.tcp_seq, orig.tcp_seq);
            EXPECT_EQ(in.l4_off, orig.l4_off - orig.l3_off);
            EXPECT_EQ(in.ip_total_len, orig.ip_total_len);
            EXPECT_EQ(in.frag_flags, orig.frag_flags);
            EXPECT_EQ(in.quoted_off, 0);
        }
    }
}

parse_result quoted(const frame& ip, size_t len, l3_kind kind, packet_meta& m) {
    std::unique_ptr<uint8_t[]> buf(new uint8_t[len ? len : 1]);
    if (len) std::memcpy(buf.get(), ip.data(), len);
    return parse_quoted(buf.get(), uint32_t(len), kind, m);
}

TEST(parse_quoted, short_quotes) {
    packet_meta m;
    frame tcp4 = packet().ipv4(ip4_a, ip4_b).tcp(1, 2).seq(5).ip_bytes();
    ASSERT_TRUE(quoted(tcp4, 24, l3_kind::ipv4, m).ok); // ports only
    EXPECT_EQ(m.sport, 1);
    EXPECT_EQ(m.dport, 2);
    EXPECT_EQ(m.tcp_seq, 0u);
    ASSERT_TRUE(quoted(tcp4, 28, l3_kind::ipv4, m).ok);
    EXPECT_EQ(m.tcp_seq, 5u);
    EXPECT_EQ(name_of(quoted(tcp4, 23, l3_kind::ipv4, m).reason), "l4_truncated");
    EXPECT_EQ(name_of(quoted(tcp4, 20, l3_kind::ipv4, m).reason), "l4_truncated");
    EXPECT_EQ(name_of(quoted(tcp4, 19, l3_kind::ipv4, m).reason), "l3_truncated");
    EXPECT_EQ(name_of(quoted(tcp4, 0, l3_kind::ipv4, m).reason), "l3_truncated");

    frame icmp4 = packet().ipv4(ip4_a, ip4_b).icmp(8, 0, 0x99, 1).ip_bytes();
    EXPECT_EQ(name_of(quoted(icmp4, 27, l3_kind::ipv4, m).reason), "l4_truncated");
    ASSERT_TRUE(quoted(icmp4, 28, l3_kind::ipv4, m).ok);
    EXPECT_EQ(m.sport, 0x99);

    // The quoted total length may exceed what is quoted.
    frame big = packet().ipv4(ip4_a, ip4_b).udp(1, 2).payload(1000).ip_bytes();
    ASSERT_TRUE(quoted(big, 28, l3_kind::ipv4, m).ok);
    EXPECT_EQ(m.ip_total_len, 1028u);

    // A quoted non-first fragment has no ports but is fine.
    frame frag = packet().ipv4(ip4_a, ip4_b).ipv4_fragment(8, true, 1).ip_proto(6).ip_bytes();
    ASSERT_TRUE(quoted(frag, 20, l3_kind::ipv4, m).ok);
    EXPECT_EQ(m.sport, 0);
    EXPECT_EQ(m.frag_flags, middle_frag);

    frame opts = packet().ipv4(ip4_a, ip4_b).ipv4_options(frame(8, 1)).udp(1, 2).ip_bytes();
    EXPECT_EQ(name_of(quoted(opts, 31, l3_kind::ipv4, m).reason), "l4_truncated");
    EXPECT_EQ(name_of(quoted(opts, 27, l3_kind::ipv4, m).reason), "ipv4_bad_ihl");
    ASSERT_TRUE(quoted(opts, 32, l3_kind::ipv4, m).ok);
    EXPECT_EQ(name_of(quoted(opts, 24, l3_kind::ipv4, m).reason), "ipv4_bad_ihl");

    frame udp6 = packet().ipv6(ip6_a, ip6_b).dest_opts().udp(1, 2).ip_bytes();
    EXPECT_EQ(name_of(quoted(udp6, 39, l3_kind::ipv6, m).reason), "l3_truncated");
    EXPECT_EQ(name_of(quoted(udp6, 47, l3_kind::ipv6, m).reason), "ipv6_ext_chain");
    EXPECT_EQ(name_of(quoted(udp6, 51, l3_kind::ipv6, m).reason), "l4_truncated");
    ASSERT_TRUE(quoted(udp6, 52, l3_kind::ipv6, m).ok);
    EXPECT_EQ(m.dport, 2);
}

TEST(parse_quoted, wrong_family) {
    packet_meta m;
    frame v6 = packet().ipv6(ip6_a, ip6_b).udp(1, 2).ip_bytes();
    frame v4 = packet().ipv4(ip4_a, ip4_b).udp(1, 2).ip_bytes();
    EXPECT_EQ(name_of(quoted(v6, v6.size(), l3_kind::ipv4, m).reason), "ipv4_bad_version");
    EXPECT_EQ(name_of(quoted(v4, v4.size(), l3_kind::ipv6, m).reason), "l3_truncated");
    frame v4_long = v4;
    v4_long.resize(48);
    EXPECT_EQ(name_of(quoted(v4_long, 48, l3_kind::ipv6, m).reason), "ipv6_bad_version");
    EXPECT_FALSE(quoted(v4, v4.size(), l3_kind::arp, m).ok);
    EXPECT_FALSE(quoted(v4, v4.size(), l3_kind::none, m).ok);
}

// ---- builder self-checks ---------------------------------------------------------------

TEST(packet_builder, ipv4_header_checksum_verifies) {
    frame ip = packet().ipv4(ip4_a, ip4_b).ipv4_options({0x94, 4, 0, 0}).tcp(1, 2).ip_bytes();
    EXPECT_EQ(csum_fold(csum_add(0, ip.data(), 24)), 0);
}

TEST(packet_builder, l4_checksums_verify) {
    for (packet p : {packet().ipv4(ip4_a, ip4_b).udp(1, 2).payload(11),
                     packet().ipv4(ip4_a, ip4_b).tcp(1, 2).mss(1460).payload(3),
                     packet().ipv6(ip6_a, ip6_b).udp(1, 2).payload(5),
                     packet().ipv6(ip6_a, ip6_b).icmpv6(128, 0, 1, 1)}) {
        SCOPED_TRACE(p.summary());
        frame f = p.bytes();
        packet_meta m;
        ASSERT_TRUE(parse_frame(f, m).ok);
        const uint32_t l4_bytes = m.ip_total_len - m.l3_len;
        uint32_t s = 0;
        if (m.l3 == l3_kind::ipv4) {
            s = csum_add(s, f.data() + m.l3_off + 12, 8);
        } else {
            s = csum_add(s, f.data() + m.l3_off + 8, 32);
        }
        s += m.l4_proto + l4_bytes;
        EXPECT_EQ(csum_fold(csum_add(s, f.data() + m.l4_off, l4_bytes)), 0);
    }
    frame icmp = packet().ipv4(ip4_a, ip4_b).icmp(8, 0, 1, 2).payload(7).ip_bytes();
    EXPECT_EQ(csum_fold(csum_add(0, icmp.data() + 20, icmp.size() - 20)), 0);
}

TEST(packet_builder, sctp_crc32c_known_value) {
    // RFC 3720 B.4: 32 bytes of zeros -> 0x8a9136aa.
    frame z(32, 0);
    EXPECT_EQ(crc32c(z.data(), z.size()), 0x8a9136aau);
}

TEST(packet_builder, describe_is_replayable_hex) {
    packet p = packet().eth().ipv4(ip4_a, ip4_b).udp(1, 2);
    std::string d = p.describe();
    EXPECT_NE(d.find("ipv4 192.0.2.1 > 198.51.100.2"), std::string::npos) << d;
    EXPECT_NE(d.find("000000 00 00 5e 00 53 02 00 00 5e 00 53 01 08 00 45"), std::string::npos)
        << d;
}

// ---- fuzz seed corpus ------------------------------------------------------------------

// Writes tests/fuzz/corpus/packet/. Run once after changing the builder or the parser:
//   SLUICE_CORPUS_DIR=tests/fuzz/corpus/packet ./build/tests/unit_packet
//       --gtest_also_run_disabled_tests --gtest_filter='*write_fuzz_corpus*'
TEST(packet_corpus, DISABLED_write_fuzz_corpus) {
    const char* dir = std::getenv("SLUICE_CORPUS_DIR");
    ASSERT_NE(dir, nullptr) << "set SLUICE_CORPUS_DIR";
    std::filesystem::create_directories(dir);
    const packet v4tcp = packet().eth().ipv4(ip4_a, ip4_b).tcp(1234, 80).seq(1);
    const packet v6udp = packet().eth().ipv6(ip6_a, ip6_b).udp(5353, 53).payload(4);
    const std::vector<std::pair<std::string, frame>> seeds = {
        {"ipv4_tcp_syn_opts",
         packet().eth().ipv4(ip4_a, ip4_b).tcp(1234, 80).mss(1460).sack_perm()
             .timestamps(1, 0).wscale(7).bytes()},
        {"ipv4_udp_vlan", packet().eth().vlan(10).ipv4(ip4_a, ip4_b).udp(5, 53).payload(8).bytes()},
        {"ipv4_qinq_sctp",
         packet().eth().qinq(100, 200).ipv4(ip4_a, ip4_b).sctp(1, 2).payload(4).bytes()},
        {"ipv4_options_udplite",
         packet().eth().ipv4(ip4_a, ip4_b).ipv4_options({0x94, 4, 0, 0, 1, 1, 1, 0})
             .udplite(1, 2).bytes()},
        {"ipv4_frag_first",
         packet().eth().ipv4(ip4_a, ip4_b).ipv4_fragment(0, true, 9).udp(1, 2).payload(16).bytes()},
        {"ipv4_frag_middle",
         packet().eth().ipv4(ip4_a, ip4_b).ipv4_fragment(24, true, 9).ip_proto(17).payload(16)
             .bytes()},
        {"ipv4_icmp_echo", packet().eth().ipv4(ip4_a, ip4_b).icmp(8, 0, 7, 1).payload(8).bytes()},
        {"ipv4_icmp_error_tcp",
         packet().eth().ipv4(ip4_c, ip4_a).icmp_error(3, 3, v4tcp).bytes()},
        {"ipv4_gre", packet().eth().ipv4(ip4_a, ip4_b).gre().payload(8).bytes()},
        {"arp", packet().eth().arp_request(ip4_a, ip4_b).bytes()},
        {"ipv6_tcp_ext",
         packet().eth().ipv6(ip6_a, ip6_b).hop_by_hop().routing({ip6_c}).dest_opts().ah()
             .tcp(1, 2).mss(1220).bytes()},
        {"ipv6_frag_first",
         packet().eth().ipv6(ip6_a, ip6_b).fragment(0, true, 0xabcdef).udp(1, 2).payload(8)
             .bytes()},
        {"ipv6_frag_middle",
         packet().eth().ipv6(ip6_a, ip6_b).fragment(8, true, 1).ip_proto(6).payload(8).bytes()},
        {"ipv6_icmpv6_error_udp",
         packet().eth().vlan(4).ipv6(ip6_c, ip6_a).icmpv6_error(1, 3, v6udp).bytes()},
        {"ipv6_icmpv6_echo", packet().eth().ipv6(ip6_a, ip6_b).icmpv6(128, 0, 3, 4).bytes()},
        {"ipv6_esp", packet().eth().ipv6(ip6_a, ip6_b).esp().payload(16).bytes()},
    };
    for (const auto& [name, f] : seeds) {
        std::ofstream out(std::filesystem::path(dir) / (name + ".bin"), std::ios::binary);
        out.write(reinterpret_cast<const char*>(f.data()), std::streamsize(f.size()));
    }
}

} // namespace
