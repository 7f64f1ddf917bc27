// Fuzz target for lib/packet.cpp: the input is one Ethernet frame. It is parsed twice, as
// a single-segment frame (data_len == pkt_len == size) and as the first segment of a
// jumbo frame (pkt_len = 65535), and any ICMP error's quoted packet is parsed too. Beyond
// "no crash, no over-read" (ASan), the invariants below must hold for every accepted
// frame; a violation traps so the fuzzer records the input.
//
// Seeds: tests/fuzz/corpus/packet/ (written by the DISABLED_write_fuzz_corpus test in
// tests/unit/packet_test.cpp).
#include "packet.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>

using namespace sluice;

namespace {

inline void require(bool c) {
    if (!c) __builtin_trap();
}

void check(const uint8_t* data, uint32_t data_len, uint32_t pkt_len, const packet_meta& m,
           parse_result r) {
    // Deterministic: a second parse gives the same bytes.
    packet_meta again;
    parse_result r2 = parse_packet(data, data_len, pkt_len, again);
    require(r2.ok == r.ok && std::memcmp(&again, &m, sizeof m) == 0);
    if (!r.ok) {
        require(static_cast<std::size_t>(r.reason) < drop_reason_count);
        return;
    }
    require(r.reason == drop_reason{});

    // L2
    require(m.n_vlans <= 2);
    require(m.l2_len == 14 + 4 * m.n_vlans);
    require(m.l3_off == m.l2_len && m.l2_len <= data_len);
    if (m.n_vlans < 2) require(m.vlan_inner == 0);
    if (m.n_vlans < 1) require(m.vlan_outer == 0);
    require(m.vlan_outer <= 0x0fff && m.vlan_inner <= 0x0fff);
    require(m.tcp_wscale == 0xff || m.tcp_wscale <= 14);

    if (m.l3 != l3_kind::ipv4 && m.l3 != l3_kind::ipv6) {
        require(m.l3 == l3_kind::arp || m.l3 == l3_kind::other);
        require(m.l4_off == 0 && m.l4_proto == 0 && m.sport == 0 && m.dport == 0);
        require(m.ip_total_len == 0 && m.frag_flags == 0 && m.quoted_off == 0);
        return;
    }

    // L3: offsets chain, everything inside the data and the datagram.
    require(m.ethertype == (m.l3 == l3_kind::ipv4 ? 0x0800 : 0x86dd));
    require(m.l4_off == m.l3_off + m.l3_len);
    require(m.l3_len >= (m.l3 == l3_kind::ipv4 ? 20 : 40));
    require(m.l4_off <= data_len);
    require(m.ip_total_len <= pkt_len - m.l3_off);
    require(m.l3_len <= m.ip_total_len);
    require(uint32_t(m.l4_off) + m.l4_len <= data_len);
    require(uint32_t(m.l3_len) + m.l4_len <= m.ip_total_len);
    require(m.payload_len == m.ip_total_len - m.l3_len - m.l4_len);

    // Fragments.
    const bool is_frag = m.frag_flags & frag::is_fragment;
    require((m.frag_flags & ~(frag::is_fragment | frag::first | frag::more)) == 0);
    require(bool(m.frag_flags & frag::first) == (m.frag_offset == 0));
    if (!is_frag) require(!(m.frag_flags & frag::more) && m.frag_offset == 0);
    if (is_frag) require(m.frag_offset + (m.ip_total_len - m.l3_len) <= 65535u);
    if (!(m.frag_flags & frag::first)) {
        require(m.l4_len == 0 && m.sport == 0 && m.dport == 0 && m.quoted_off == 0);
        require(m.tcp_flags == 0 && m.icmp_type == 0);
    }

    // L4 header lengths are the fixed ones (TCP: data offset).
    switch (m.l4_proto) {
    case 6:
        require(!(m.frag_flags & frag::first) || (m.l4_len >= 20 && m.l4_len <= 60));
        break;
    case 17:
    case 136:
        require(m.l4_len == 0 || m.l4_len == 8);
        break;
    case 132:
        require(m.l4_len == 0 || m.l4_len == 12);
        break;
    case 1:
    case 58:
        require(m.l4_len == 0 || m.l4_len == 8);
        break;
    default:
        require(m.l4_len == 0 && m.sport == 0 && m.dport == 0);
    }

    // ICMP error: the quoted packet lies after the ICMP header and parses safely.
    if (m.quoted_off) {
        require(m.l4_proto == 1 || m.l4_proto == 58);
        require(m.quoted_off == m.l4_off + 8 && m.quoted_off <= data_len);
        packet_meta q;
        const uint32_t qlen = data_len - m.quoted_off;
        parse_result qr = parse_quoted(data + m.quoted_off, qlen, m.l3, q);
        if (qr.ok) {
            require(q.l3 == m.l3);
            require(q.l4_off <= qlen && q.l4_off == q.l3_len);
            require(q.quoted_off == 0 && q.l2_len == 0);
        } else {
            require(static_cast<std::size_t>(qr.reason) < drop_reason_count);
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 65535) return 0;
    const uint32_t n = uint32_t(size);
    packet_meta m;
    parse_result r = parse_packet(data, n, n, m);
    check(data, n, n, m, r);

    // The same bytes as the first segment of a larger frame.
    r = parse_packet(data, n, 65535, m);
    check(data, n, 65535, m, r);

    // Parse the whole input as a quoted packet of each family, too.
    packet_meta q;
    r = parse_quoted(data, n, l3_kind::ipv4, q);
    if (r.ok) require(q.l4_off <= n);
    r = parse_quoted(data, n, l3_kind::ipv6, q);
    if (r.ok) require(q.l4_off <= n);
    return 0;
}
