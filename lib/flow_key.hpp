// Flow key: the canonical, direction-free name of a connection, and its hash.
//
// A connection is named by its two endpoints, ordered canonically (the "lo" endpoint is the
// smaller (address, port) pair under a fixed total order), plus the L4 protocol, the
// conntrack zone and the L3 family. Both directions of a connection therefore build the
// same key and the same hash; `make_flow_key` also reports which endpoint sent the packet
// (`flow_side`), and a flow-table entry remembers which side sent the first (ORIGINAL
// direction) packet, so a single lookup yields both the entry and the packet's direction.
//
// ICMP/ICMPv6 queries (echo, timestamp, info, address mask, node information) are keyed
// by (addresses, identifier, request type) and by which endpoint is the *requester*
// (a flag bit): a request and its reply build the same key, while a request with the same
// identifier sent the other way is a different conversation, as in netfilter where the
// reply tuple carries the reply type. Their direction is given by the message type
// (request = ORIGINAL), which also works when both addresses are equal.
//
// Protocols without ports (GRE, ESP, ...) are keyed by (addresses, protocol) only, like
// netfilter's generic tracker.
//
// The hash is CRC32C over the 40 key bytes when the compiler targets SSE4.2 (`__SSE4_2__`,
// e.g. -march=native), else a portable folded-multiply mix (wyhash-style); both are symmetric
// because the key is. `symmetric_hash` is what a software-RSS redirect uses to pick the
// worker that owns a connection.
//
// Thread safety: pure functions of their inputs; call from any thread.
#pragma once

#include "packet.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

namespace sluice {

inline constexpr uint8_t ipproto_icmp = 1, ipproto_tcp = 6, ipproto_udp = 17,
                         ipproto_dccp = 33, ipproto_icmpv6 = 58, ipproto_sctp = 132,
                         ipproto_udplite = 136;

// Layout (byte offsets), 40 bytes, 2-byte aligned:
//
//    0                               16                              32      36  38  39
//   +-------------------------------+-------------------------------+---+---+---+---+-+-+
//   | lo address (16)               | hi address (16)               |plo|phi|zone|pr|fl|
//   +-------------------------------+-------------------------------+---+---+---+---+-+-+
//    32 port_lo (2): port of the lo endpoint; ICMP query: identifier; generic: 0
//    34 port_hi (2): port of the hi endpoint; ICMP query: request type; generic: 0
//    36 zone (2):    conntrack zone (VLAN id when configured, else 0)
//    38 proto (1):   IPPROTO_*
//    39 flags (1):   flow_key_flag::*
//
// Ports are host order. The key is compared and hashed as five 64-bit words.
namespace flow_key_flag {
inline constexpr uint8_t ipv6 = 1;          // L3 family is IPv6 (else IPv4, mapped)
inline constexpr uint8_t requester_hi = 2;  // ICMP query: the hi endpoint is the requester
} // namespace flow_key_flag

struct flow_key {
    ip_addr lo;
    ip_addr hi;
    uint16_t port_lo;
    uint16_t port_hi;
    uint16_t zone;
    uint8_t proto;
    uint8_t flags;

    friend bool operator==(const flow_key& a, const flow_key& b) noexcept {
        uint64_t x[5], y[5];
        std::memcpy(x, &a, sizeof x);
        std::memcpy(y, &b, sizeof y);
        return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) |
                (x[4] ^ y[4])) == 0;
    }
};
static_assert(sizeof(flow_key) == 40, "flow_key layout changed: update the diagram");
static_assert(offsetof(flow_key, port_lo) == 32 && offsetof(flow_key, zone) == 36 &&
              offsetof(flow_key, proto) == 38 && offsetof(flow_key, flags) == 39);

// Which endpoint of the key sent a packet.
enum class flow_side : uint8_t { lo = 0, hi = 1 };

// What kind of tracking a packet gets, decided from its headers alone.
enum class flow_class : uint8_t {
    ports,       // TCP, UDP, UDP-Lite, SCTP, DCCP: key has ports
    icmp_query,  // ICMP/ICMPv6 request or reply: key has identifier and request type
    icmp_error,  // ICMP/ICMPv6 error: the key is that of the quoted packet
    icmp_other,  // any other ICMP type (v4: router advert etc.; v6: ND): not trackable
    icmp_untracked,  // ICMPv6 MLD: netfilter marks it UNTRACKED
    generic,     // other IP protocols: (addresses, proto)
    not_ip,      // ARP, unknown ethertype
};

namespace detail {

inline bool is_icmp_proto(uint8_t p) noexcept { return p == ipproto_icmp || p == ipproto_icmpv6; }

// Request type for an ICMP query type, or -1 if `type` is not a query/reply.
// Sets `is_reply` when `type` is the reply half.
inline int icmp_request_type(uint8_t proto, uint8_t type, bool& is_reply) noexcept {
    is_reply = false;
    if (proto == ipproto_icmp) {
        switch (type) {
        case 8: case 13: case 15: case 17: return type;          // echo, tstamp, info, mask
        case 0: is_reply = true; return 8;
        case 14: case 16: case 18: is_reply = true; return type - 1;
        default: return -1;
        }
    }
    switch (type) {
    case 128: case 139: return type;                             // echo request, NI query
    case 129: case 140: is_reply = true; return type - 1;
    default: return -1;
    }
}

inline bool icmp_is_error(uint8_t proto, uint8_t type) noexcept {
    if (proto == ipproto_icmp)
        return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
    return type >= 1 && type <= 4; // ICMPv6 errors are 0..127; 1-4 are defined
}

inline bool icmpv6_is_mld(uint8_t type) noexcept {
    return type == 130 || type == 131 || type == 132 || type == 143;
}

inline bool has_ports(uint8_t p) noexcept {
    return p == ipproto_tcp || p == ipproto_udp || p == ipproto_udplite || p == ipproto_sctp ||
           p == ipproto_dccp;
}

// A fixed total order on addresses (not lexicographic; only consistency matters).
inline int addr_cmp(const ip_addr& a, const ip_addr& b) noexcept {
    uint64_t a0, a1, b0, b1;
    std::memcpy(&a0, a.b, 8);
    std::memcpy(&a1, a.b + 8, 8);
    std::memcpy(&b0, b.b, 8);
    std::memcpy(&b1, b.b + 8, 8);
    if (a1 != b1) return a1 < b1 ? -1 : 1;
    if (a0 != b0) return a0 < b0 ? -1 : 1;
    return 0;
}

inline uint64_t fold_mul(uint64_t a, uint64_t b) noexcept {
    __extension__ typedef unsigned __int128 u128;  // GCC/Clang extension
    const u128 p = u128(a) * b;
    return uint64_t(p) ^ uint64_t(p >> 64);
}

} // namespace detail

inline flow_class classify_headers(const packet_meta& m) noexcept {
    if (m.l3 != l3_kind::ipv4 && m.l3 != l3_kind::ipv6) return flow_class::not_ip;
    const uint8_t p = m.l4_proto;
    if (detail::has_ports(p)) return flow_class::ports;
    if ((p == ipproto_icmp && m.l3 == l3_kind::ipv4) ||
        (p == ipproto_icmpv6 && m.l3 == l3_kind::ipv6)) {
        bool reply;
        if (detail::icmp_request_type(p, m.icmp_type, reply) >= 0) return flow_class::icmp_query;
        if (detail::icmp_is_error(p, m.icmp_type)) return flow_class::icmp_error;
        if (p == ipproto_icmpv6 && detail::icmpv6_is_mld(m.icmp_type))
            return flow_class::icmp_untracked;
        return flow_class::icmp_other;
    }
    return flow_class::generic;
}

// Build the canonical key of `m` (any class but not_ip / icmp_other / icmp_error: for an
// ICMP error pass the quoted packet's meta). `use_ports` = false builds the
// (addresses, proto) key used for fragments by `symmetric_hash_l3`. Returns the side of
// the key that sent the packet; for ICMP queries, the requester side XOR is-reply, so
// that direction = side XOR entry's original side = is-reply.
inline flow_side make_flow_key(const packet_meta& m, uint16_t zone, flow_key& k,
                               bool use_ports = true) noexcept {
    const bool swap = detail::addr_cmp(m.src, m.dst) > 0 ||
                      (detail::addr_cmp(m.src, m.dst) == 0 && m.sport > m.dport);
    k.lo = swap ? m.dst : m.src;
    k.hi = swap ? m.src : m.dst;
    k.zone = zone;
    k.proto = m.l4_proto;
    k.flags = m.l3 == l3_kind::ipv6 ? flow_key_flag::ipv6 : 0;
    k.port_lo = k.port_hi = 0;
    if (!use_ports) return swap ? flow_side::hi : flow_side::lo;
    if (detail::has_ports(m.l4_proto)) {
        k.port_lo = swap ? m.dport : m.sport;
        k.port_hi = swap ? m.sport : m.dport;
        return swap ? flow_side::hi : flow_side::lo;
    }
    if (detail::is_icmp_proto(m.l4_proto)) {
        bool reply = false;
        const int req = detail::icmp_request_type(m.l4_proto, m.icmp_type, reply);
        if (req >= 0) {
            // Sender is hi iff swapped; the requester is the sender unless this is a reply.
            // With equal addresses the requester is always "lo" and the type alone tells
            // the direction.
            const int c = detail::addr_cmp(m.src, m.dst);
            const bool requester_hi = c != 0 && ((c > 0) != reply);
            k.port_lo = m.sport;
            k.port_hi = uint16_t(req);
            if (requester_hi) k.flags |= flow_key_flag::requester_hi;
            return (requester_hi != reply) ? flow_side::hi : flow_side::lo;
        }
    }
    return swap ? flow_side::hi : flow_side::lo;
}

// Hash of a key; equal keys hash equally, and so do both directions of a connection.
inline uint32_t flow_hash(const flow_key& k) noexcept {
    uint64_t w[5];
    std::memcpy(w, &k, sizeof w);
#if defined(__SSE4_2__)
    uint64_t h = 0x9e3779b9;
    for (uint64_t x : w) h = _mm_crc32_u64(h, x);
    return uint32_t(h);
#else
    // Folded 64x64->128 multiplies (as in wyhash): three independent ones, then one more,
    // so the dependency chain is two multiplies deep.
    const uint64_t a = detail::fold_mul(w[0] ^ 0xa0761d6478bd642fULL, w[1] ^ 0xe7037ed1a0b428dbULL);
    const uint64_t b = detail::fold_mul(w[2] ^ 0x8ebc6af09c88c6e3ULL, w[3] ^ 0x589965cc75374cc3ULL);
    const uint64_t c = detail::fold_mul(w[4] ^ 0x1d8e4e27c47d124fULL, 0x9e3779b97f4a7c15ULL);
    const uint64_t h = detail::fold_mul(a ^ c, b ^ 0xa0761d6478bd642fULL);
    return uint32_t(h ^ (h >> 32));
#endif
}

// Hash for steering a packet to the worker that owns its connection: the same value for
// both directions. Zone is not included (both directions travel on the same VLAN).
// ICMP errors: pass the meta of the quoted packet (parse_quoted) so the error reaches the
// worker that owns the flow it quotes. Fragments (first or not) hash on addresses and
// protocol only, so all fragments of a datagram reach one worker's fragment cache; a
// deployment that must see fragmented and unfragmented packets of one flow on one worker
// should steer every packet with `symmetric_hash_l3`.
inline uint32_t symmetric_hash(const packet_meta& m) noexcept {
    flow_key k;
    make_flow_key(m, 0, k, (m.frag_flags & frag::is_fragment) == 0);
    return flow_hash(k);
}

inline uint32_t symmetric_hash_l3(const packet_meta& m) noexcept {
    flow_key k;
    make_flow_key(m, 0, k, false);
    return flow_hash(k);
}

} // namespace sluice
