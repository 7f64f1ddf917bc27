// REJECT reply construction; see reject.hpp for what is built, when nothing is, and where
// this departs from the kernel. Everything here reads the original frame with bounds
// checked against `frame_len` (never trusting `m` alone), writes the reply front to back
// into `out` and fills checksums last.
//
// Lifecycle: no state. Thread safety: pure; call from any thread.
#include "reject.hpp"

#include <cstring>

namespace sluice {
namespace {

constexpr uint32_t eth_hlen = 14;
constexpr uint32_t ipv4_hlen = 20;
constexpr uint32_t ipv6_hlen = 40;
constexpr uint32_t tcp_hlen = 20;
constexpr uint32_t icmp_hlen = 8;
constexpr uint8_t proto_icmp = 1;
constexpr uint8_t proto_tcp = 6;
constexpr uint8_t proto_udp = 17;
constexpr uint8_t proto_icmpv6 = 58;
constexpr uint8_t default_ttl = 64;      // sysctl ip_default_ttl / IPv6 default hop limit
constexpr uint32_t icmp_max_len = 576;   // icmp_send: reply IP length at most 576
constexpr uint32_t ipv6_min_mtu = 1280;  // icmpv6_send: reply at most IPV6_MIN_MTU
constexpr uint8_t nr_icmp_types = 18;    // NR_ICMP_TYPES: larger types get no error
constexpr uint8_t iptos_tos_mask = 0x1e; // IPTOS_TOS_MASK
constexpr uint8_t iptos_prec_internetcontrol = 0xc0;
constexpr uint16_t ip_df = 0x4000;

inline uint16_t load16(const uint8_t* p) noexcept { return uint16_t((p[0] << 8) | p[1]); }
inline void store16(uint8_t* p, uint16_t v) noexcept {
    p[0] = uint8_t(v >> 8);
    p[1] = uint8_t(v);
}
inline void store32(uint8_t* p, uint32_t v) noexcept {
    store16(p, uint16_t(v >> 16));
    store16(p + 2, uint16_t(v));
}
inline uint32_t load32(const uint8_t* p) noexcept {
    return (uint32_t(load16(p)) << 16) | load16(p + 2);
}

// RFC 1071 one's-complement sum of big-endian 16-bit words; an odd trailing byte is the
// high byte of a zero-padded word. Only the last block summed may have odd length.
inline uint64_t sum_words(uint64_t sum, const uint8_t* p, size_t n) noexcept {
    size_t i = 0;
    for (; i + 1 < n; i += 2) sum += load16(p + i);
    if (n & 1) sum += uint64_t(p[n - 1]) << 8;
    return sum;
}
inline uint16_t fold(uint64_t sum) noexcept {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(sum);
}
// The checksum field value: complement of the folded sum.
inline uint16_t finish(uint64_t sum) noexcept { return uint16_t(~fold(sum)); }

// Pseudo-header sum: addresses (4 or 16 bytes each), upper-layer length, protocol. The
// IPv4 and IPv6 layouts sum to the same value given the same fields.
inline uint64_t pseudo_sum(const uint8_t* src, const uint8_t* dst, size_t alen, uint32_t len,
                           uint8_t proto) noexcept {
    uint64_t s = sum_words(0, src, alen);
    s = sum_words(s, dst, alen);
    return s + (len >> 16) + (len & 0xffff) + proto;
}

// ---- who gets a reply ---------------------------------------------------------------

// IPv4 addresses that do not name a single host, or that the kernel's input route lookup
// treats as martian (ip_route_input_slow) so a REJECT rule never sees them.
inline bool v4_not_unicast(uint32_t a) noexcept {
    const uint32_t top = a >> 24;
    return top == 0            // 0.0.0.0/8 (ipv4_is_zeronet)
           || top == 127       // loopback
           || (top & 0xf0) == 0xe0 // 224.0.0.0/4 multicast
           || a == 0xffffffffu;    // limited broadcast
}

// IPv6: not IPV6_ADDR_UNICAST per ipv6_addr_type (unspecified, multicast, v4-mapped), or
// loopback, which ip6_rcv_core drops when it arrives on a real interface.
inline bool v6_not_unicast(const uint8_t* a) noexcept {
    if (a[0] == 0xff) return true; // multicast
    for (int i = 0; i < 10; ++i)
        if (a[i] != 0) return false;
    if (a[10] == 0xff && a[11] == 0xff) return true; // ::ffff:0:0/96
    if (a[10] != 0 || a[11] != 0) return false;
    for (int i = 12; i < 15; ++i)
        if (a[i] != 0) return false;
    return a[15] == 0 || a[15] == 1; // :: or ::1
}

// The kernel's nf_reject_verify_csum + nf_ip_checksum / nf_ip6_checksum, for the protocols
// whose checksum covers the whole payload: true if it verifies or cannot be checked here
// (fragment, datagram not entirely in the frame, UDP without a checksum, other protocols).
bool l4_checksum_ok(const uint8_t* frame, uint32_t frame_len, const packet_meta& m) noexcept {
    if (m.frag_flags & frag::is_fragment) return true;
    const uint32_t end = uint32_t(m.l3_off) + m.ip_total_len;
    if (end > frame_len || m.l4_off > end) return true;
    const bool v6 = m.l3 == l3_kind::ipv6;
    const uint8_t* ip = frame + m.l3_off;
    const uint8_t* l4 = frame + m.l4_off;
    const uint32_t len = end - m.l4_off;
    const uint8_t* src = v6 ? ip + 8 : ip + 12;
    const uint8_t* dst = v6 ? ip + 24 : ip + 16;
    const size_t alen = v6 ? 16 : 4;
    uint64_t s;
    switch (m.l4_proto) {
    case proto_tcp:
        s = pseudo_sum(src, dst, alen, len, proto_tcp);
        break;
    case proto_udp:
        if (len < 8 || load16(l4 + 6) == 0) return true; // no checksum: nothing to verify
        s = pseudo_sum(src, dst, alen, len, proto_udp);
        break;
    case proto_icmp:
        if (v6) return true;
        s = 0;
        break;
    case proto_icmpv6:
        if (!v6) return true;
        s = pseudo_sum(src, dst, alen, len, proto_icmpv6);
        break;
    default:
        return true;
    }
    return fold(sum_words(s, l4, len)) == 0xffff;
}

// Header sanity against the frame itself, so that a meta that does not describe `frame`
// cannot make us read out of bounds. Also the L2 and address checks common to both kinds.
bool reply_allowed(const uint8_t* frame, uint32_t frame_len, const packet_meta& m) noexcept {
    if (m.l2_len < eth_hlen || m.l3_off != m.l2_len || m.l2_len > frame_len) return false;
    if ((frame[0] & 1) || (frame[6] & 1)) return false; // group MAC on either side
    if (m.l4_off < m.l3_off || m.l4_off > frame_len) return false;
    const uint8_t* ip = frame + m.l3_off;
    const uint32_t avail = frame_len - m.l3_off;
    if (m.l3 == l3_kind::ipv4) {
        if (avail < ipv4_hlen || (ip[0] >> 4) != 4) return false;
        if (uint32_t(m.l4_off - m.l3_off) < ipv4_hlen) return false;
        if (v4_not_unicast(load32(ip + 12)) || v4_not_unicast(load32(ip + 16))) return false;
    } else if (m.l3 == l3_kind::ipv6) {
        if (avail < ipv6_hlen || (ip[0] >> 4) != 6) return false;
        if (uint32_t(m.l4_off - m.l3_off) < ipv6_hlen) return false;
        if (v6_not_unicast(ip + 8) || v6_not_unicast(ip + 24)) return false;
    } else {
        return false;
    }
    if (!(m.frag_flags & frag::first)) return false; // non-first fragment
    return l4_checksum_ok(frame, frame_len, m);
}

// ---- writing ------------------------------------------------------------------------

// Original L2 header with the MACs swapped; returns its length.
uint32_t put_l2(const uint8_t* frame, const packet_meta& m, uint8_t* out) noexcept {
    for (uint32_t i = 0; i < 6; ++i) {
        out[i] = frame[6 + i];
        out[6 + i] = frame[i];
    }
    std::memcpy(out + 12, frame + 12, m.l2_len - 12u); // VLAN tags, ethertype
    return m.l2_len;
}

// IPv4 header, addresses swapped relative to the original header `oip`.
void put_ipv4(uint8_t* ip, const uint8_t* oip, uint8_t tos, uint16_t total, uint16_t frag_off,
              uint8_t proto) noexcept {
    ip[0] = 0x45;
    ip[1] = tos;
    store16(ip + 2, total);
    store16(ip + 4, 0); // id
    store16(ip + 6, frag_off);
    ip[8] = default_ttl;
    ip[9] = proto;
    store16(ip + 10, 0);
    std::memcpy(ip + 12, oip + 16, 4);
    std::memcpy(ip + 16, oip + 12, 4);
    store16(ip + 10, finish(sum_words(0, ip, ipv4_hlen)));
}

// IPv6 header (traffic class 0, flow label 0), addresses swapped relative to `oip`.
void put_ipv6(uint8_t* ip, const uint8_t* oip, uint16_t payload_len, uint8_t proto) noexcept {
    store32(ip, 0x60000000u);
    store16(ip + 4, payload_len);
    ip[6] = proto;
    ip[7] = default_ttl;
    std::memcpy(ip + 8, oip + 24, 16);
    std::memcpy(ip + 24, oip + 8, 16);
}

size_t build_reset(const uint8_t* frame, uint32_t frame_len, const packet_meta& m, uint8_t* out,
                   size_t out_cap) noexcept {
    if (m.l4_proto != proto_tcp || m.l4_len < tcp_hlen) return 0;
    if (uint32_t(m.l4_off) + tcp_hlen > frame_len) return 0;
    const uint8_t* oth = frame + m.l4_off;
    const uint8_t oflags = oth[13];
    if (oflags & tcp_flag::rst) return 0; // no RST for a RST
    if (!reply_allowed(frame, frame_len, m)) return 0;

    const bool v6 = m.l3 == l3_kind::ipv6;
    const uint32_t l3 = v6 ? ipv6_hlen : ipv4_hlen;
    const size_t n = size_t(m.l2_len) + l3 + tcp_hlen;
    if (n > out_cap) return 0;

    const uint8_t* oip = frame + m.l3_off;
    uint32_t off = put_l2(frame, m, out);
    uint8_t* ip = out + off;
    if (v6)
        put_ipv6(ip, oip, uint16_t(tcp_hlen), proto_tcp);
    else
        put_ipv4(ip, oip, 0, uint16_t(l3 + tcp_hlen), ip_df, proto_tcp);

    uint8_t* th = ip + l3;
    std::memset(th, 0, tcp_hlen);
    std::memcpy(th, oth + 2, 2); // source port = original destination port
    std::memcpy(th + 2, oth, 2);
    uint8_t flags = tcp_flag::rst;
    if (oflags & tcp_flag::ack) {
        std::memcpy(th + 4, oth + 8, 4); // seq = original ack_seq
    } else {
        const uint32_t ack = load32(oth + 4) + ((oflags & tcp_flag::syn) ? 1u : 0u) +
                             ((oflags & tcp_flag::fin) ? 1u : 0u) + m.payload_len;
        store32(th + 8, ack);
        flags |= tcp_flag::ack;
    }
    th[12] = uint8_t((tcp_hlen / 4) << 4);
    th[13] = flags;
    // window, checksum, urgent pointer: 0
    const uint8_t* src = v6 ? ip + 8 : ip + 12;
    const uint8_t* dst = v6 ? ip + 24 : ip + 16;
    const uint64_t s = pseudo_sum(src, dst, v6 ? 16 : 4, tcp_hlen, proto_tcp);
    store16(th + 16, finish(sum_words(s, th, tcp_hlen)));
    return n;
}

// ICMP type/code for an unreachable kind; false for tcp_reset.
bool icmp_code_of(reject_kind k, bool& v6, uint8_t& type, uint8_t& code) noexcept {
    v6 = false;
    type = 3;
    switch (k) {
    case reject_kind::icmp_net_unreachable: code = 0; return true;
    case reject_kind::icmp_host_unreachable: code = 1; return true;
    case reject_kind::icmp_proto_unreachable: code = 2; return true;
    case reject_kind::icmp_port_unreachable: code = 3; return true;
    case reject_kind::icmp_net_prohibited: code = 9; return true;
    case reject_kind::icmp_host_prohibited: code = 10; return true;
    case reject_kind::icmp_admin_prohibited: code = 13; return true;
    default: break;
    }
    v6 = true;
    type = 1;
    switch (k) {
    case reject_kind::icmp6_no_route: code = 0; return true;
    case reject_kind::icmp6_adm_prohibited: code = 1; return true;
    case reject_kind::icmp6_addr_unreachable: code = 3; return true;
    case reject_kind::icmp6_port_unreachable: code = 4; return true;
    case reject_kind::icmp6_policy_fail: code = 5; return true;
    case reject_kind::icmp6_reject_route: code = 6; return true;
    default: return false;
    }
}

inline bool icmp_is_error(uint8_t type) noexcept {
    return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

size_t build_unreach(const uint8_t* frame, uint32_t frame_len, const packet_meta& m,
                     bool v6, uint8_t type, uint8_t code, uint8_t* out,
                     size_t out_cap) noexcept {
    if (m.l3 != (v6 ? l3_kind::ipv6 : l3_kind::ipv4)) return 0;
    if (!reply_allowed(frame, frame_len, m)) return 0;

    // Never an error about an error (icmp_send / is_ineligible): the type must be readable.
    if (!v6 && m.l4_proto == proto_icmp) {
        if (m.l4_off >= frame_len) return 0;
        const uint8_t t = frame[m.l4_off];
        if (t > nr_icmp_types || icmp_is_error(t)) return 0;
    }
    if (v6 && m.l4_proto == proto_icmpv6) {
        if (m.l4_off >= frame_len) return 0;
        if (!(frame[m.l4_off] & 0x80)) return 0; // ICMPV6_INFOMSG_MASK clear: an error
    }

    const uint32_t l3 = v6 ? ipv6_hlen : ipv4_hlen;
    const uint32_t room = (v6 ? ipv6_min_mtu : icmp_max_len) - l3 - icmp_hlen;
    uint32_t quote = m.ip_total_len;
    if (quote > frame_len - m.l3_off) quote = frame_len - m.l3_off;
    if (quote > room) quote = room;
    const uint32_t icmp_len = icmp_hlen + quote;
    const size_t n = size_t(m.l2_len) + l3 + icmp_len;
    if (n > out_cap) return 0;

    const uint8_t* oip = frame + m.l3_off;
    uint32_t off = put_l2(frame, m, out);
    uint8_t* ip = out + off;
    if (v6) {
        put_ipv6(ip, oip, uint16_t(icmp_len), proto_icmpv6);
    } else {
        const uint8_t tos = uint8_t((oip[1] & iptos_tos_mask) | iptos_prec_internetcontrol);
        put_ipv4(ip, oip, tos, uint16_t(l3 + icmp_len), 0, proto_icmp);
    }
    uint8_t* ic = ip + l3;
    ic[0] = type;
    ic[1] = code;
    std::memset(ic + 2, 0, 6); // checksum, then 4 unused bytes
    std::memcpy(ic + icmp_hlen, oip, quote);
    const uint64_t s = v6 ? pseudo_sum(ip + 8, ip + 24, 16, icmp_len, proto_icmpv6) : 0;
    store16(ic + 2, finish(sum_words(s, ic, icmp_len)));
    return n;
}

} // namespace

size_t build_reject(const uint8_t* frame, uint32_t frame_len, const packet_meta& m,
                    reject_kind kind, uint8_t* out, size_t out_cap) noexcept {
    if (frame == nullptr || out == nullptr) return 0;
    if (kind == reject_kind::tcp_reset) return build_reset(frame, frame_len, m, out, out_cap);
    bool v6;
    uint8_t type, code;
    if (!icmp_code_of(kind, v6, type, code)) return 0;
    return build_unreach(frame, frame_len, m, v6, type, code, out, out_cap);
}

} // namespace sluice
