// Packet parsing: one pass over the headers of a frame, filling a packet_meta that every
// later stage (flow key, conntrack, classifier) reads instead of touching the bytes again.
//
// The parser never reads past `data_len` bytes of `data` and never allocates, throws or
// logs. Headers must lie in the contiguous first segment (`data_len`); `pkt_len` is the
// whole frame (all segments) and is what IP lengths are checked against, so jumbo frames
// in multi-segment mbufs parse correctly. A frame it cannot make sense of gets a
// drop_reason (see packet_fate.hpp) and `ok == false`.
//
// Thread safety: pure function of its inputs; call from any thread.
#pragma once

#include "packet_fate.hpp"

#include <cstddef>
#include <cstdint>

namespace sluice {

enum class l3_kind : uint8_t { none = 0, ipv4, ipv6, arp, other };

// IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d) so that one 16-byte key type
// serves both families; `ip_addr::v4()` returns the host-order IPv4 address.
struct ip_addr {
    uint8_t b[16];
    uint32_t v4() const noexcept {
        return (uint32_t(b[12]) << 24) | (uint32_t(b[13]) << 16) | (uint32_t(b[14]) << 8) | b[15];
    }
};
static_assert(sizeof(ip_addr) == 16);

namespace frag {
inline constexpr uint8_t is_fragment = 1;   // offset != 0 or more-fragments set
inline constexpr uint8_t first = 2;         // offset == 0 (has the L4 header)
inline constexpr uint8_t more = 4;          // more-fragments flag set
} // namespace frag

namespace tcp_flag {
inline constexpr uint8_t fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10,
                         urg = 0x20, ece = 0x40, cwr = 0x80;
}

// Layout (byte offsets), 96 bytes:
//   0 src ip (16)            16 dst ip (16)
//  32 sport/icmp id (2)      34 dport (2)       36 l2_len (2)   38 l3_off (2)
//  40 l4_off (2)             42 l4_len (2)      44 payload_len (4)
//  48 ethertype (2)          50 vlan_outer (2)  52 vlan_inner (2)
//  54 n_vlans  55 l3  56 l4_proto  57 frag_flags  58 ttl  59 tcp_flags
//  60 tcp_seq (4)  64 tcp_ack (4)  68 tcp_window (2)  70 tcp_wscale  71 icmp_type
//  72 icmp_code  73 tcp_sack_perm  74 frag_offset (2)  76 frag_id (4)
//  80 l3_len (2)  82 tcp_mss (2) 84 ip_total_len (4) 88 quoted_off (2) 90 pad (6)
struct packet_meta {
    ip_addr src;               // IPv4-mapped for IPv4
    ip_addr dst;
    uint16_t sport;            // host order; ICMP/ICMPv6 echo: identifier; else 0
    uint16_t dport;            // host order; ICMP: (type << 8) | code
    uint16_t l2_len;           // Ethernet + VLAN tags
    uint16_t l3_off;           // == l2_len
    uint16_t l4_off;           // offset of the L4 header (after IPv6 extension headers)
    uint16_t l4_len;           // L4 header length (TCP doff*4, 8 for UDP/ICMP, 12 for SCTP)
    uint32_t payload_len;      // L4 payload bytes (per IP length, not frame length)
    uint16_t ethertype;        // innermost ethertype, host order
    uint16_t vlan_outer;       // VLAN id (12 bits) of the outer tag, 0 if none
    uint16_t vlan_inner;       // VLAN id of the inner tag (QinQ), 0 if none
    uint8_t n_vlans;           // 0, 1 or 2
    l3_kind l3;
    uint8_t l4_proto;          // IPPROTO_* (final next-header for IPv6); 0 if none
    uint8_t frag_flags;        // frag::*
    uint8_t ttl;               // IPv4 TTL / IPv6 hop limit
    uint8_t tcp_flags;         // tcp_flag::*
    uint32_t tcp_seq;          // host order
    uint32_t tcp_ack;
    uint16_t tcp_window;       // raw (unscaled) window
    uint8_t tcp_wscale;        // window scale option value, 0xff if absent
    uint8_t icmp_type;
    uint8_t icmp_code;
    uint8_t tcp_sack_perm;     // 1 if SACK-permitted option present
    uint16_t frag_offset;      // fragment offset in bytes
    uint32_t frag_id;          // IPv4 id or IPv6 fragment identification
    uint16_t l3_len;           // IPv4 header (IHL*4) or IPv6 fixed + extension headers
    uint16_t tcp_mss;          // MSS option value, 0 if absent
    uint32_t ip_total_len;     // IP datagram length (header + payload) per the IP header
    uint16_t quoted_off;       // ICMP error: offset of the quoted IP header, 0 if none
    uint8_t pad_[6];
};
static_assert(sizeof(packet_meta) == 96, "packet_meta layout changed: update the diagram");

struct parse_result {
    bool ok;
    drop_reason reason; // meaningful only when !ok
};

// Parse one frame. See the file comment for the contract.
parse_result parse_packet(const uint8_t* data, uint32_t data_len, uint32_t pkt_len,
                          packet_meta& out) noexcept;

// Parse the IP header (and the first 8 bytes of its transport header, where present) that
// an ICMP/ICMPv6 error quotes, starting at `data` (the quoted IP header), `len` bytes
// available. Fills addresses, l4_proto, ports / ICMP id+type+code, tcp_seq; lengths in the
// quoted header are not checked against `len` (errors quote truncated datagrams). Returns
// !ok if not even the IP header and 8 L4 bytes (4 for ports) are there.
parse_result parse_quoted(const uint8_t* data, uint32_t len, l3_kind kind,
                          packet_meta& out) noexcept;

} // namespace sluice
