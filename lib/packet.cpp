// Packet parser: Ethernet II / 802.1Q / QinQ, IPv4 / IPv6 (with extension headers), and
// the transport headers the filter keys on (TCP, UDP, UDP-Lite, SCTP, ICMP, ICMPv6).
//
// What: `parse_packet` walks the headers of one frame once, front to back, and fills a
// packet_meta; `parse_quoted` does the same for the IP header an ICMP error quotes, so that
// conntrack can find the flow the error is RELATED to. Every length is checked before the
// bytes it covers are read: against `data_len` (what we may touch) and against the lengths
// the headers themselves claim (what the datagram says it holds). Fields are read with
// byte loads, so the frame needs no particular alignment.
//
// Lifecycle: no state. The caller owns `data` and `out`; `out` is fully overwritten.
//
// Thread safety: pure functions of their arguments; call from any thread, any number of
// threads at once. No allocation, exceptions, locks or logging: safe on the fast path.
//
// Conventions worth knowing when reading packet_meta:
//  - frag_flags follow the bit definitions literally: `first` means "fragment offset is 0,
//    so the L4 header is here", which is also true of unfragmented datagrams. Test
//    `is_fragment` to ask "is this a fragment".
//  - tcp_wscale is clamped to 14 (RFC 7323, as Linux does), so 0xff unambiguously means
//    "option absent".
//  - ICMP query messages that carry an identifier (echo, timestamp, information, address
//    mask) put it in sport, as netfilter's ICMP tuple does.
#include "packet.hpp"

#include <cstring>

namespace sluice {
namespace {

constexpr uint16_t eth_hlen = 14;
constexpr uint16_t ethertype_ipv4 = 0x0800;
constexpr uint16_t ethertype_arp = 0x0806;
constexpr uint16_t ethertype_ipv6 = 0x86dd;
constexpr uint16_t tpid_8021q = 0x8100;
constexpr uint16_t tpid_8021ad = 0x88a8;
constexpr uint16_t tpid_qinq_old = 0x9100;
constexpr unsigned max_vlans = 2;

constexpr uint8_t proto_hopopts = 0;
constexpr uint8_t proto_icmp = 1;
constexpr uint8_t proto_tcp = 6;
constexpr uint8_t proto_udp = 17;
constexpr uint8_t proto_routing = 43;
constexpr uint8_t proto_fragment = 44;
constexpr uint8_t proto_ah = 51;
constexpr uint8_t proto_icmpv6 = 58;
constexpr uint8_t proto_dstopts = 60;
constexpr uint8_t proto_sctp = 132;
constexpr uint8_t proto_udplite = 136;

constexpr uint32_t ipv4_min_hlen = 20;
constexpr uint32_t ipv6_hlen = 40;
constexpr uint32_t ip_max_datagram = 65535;
// RFC 8200 allows each extension header once (destination options twice), so a legitimate
// chain has at most 6; 8 leaves room and bounds the work an attacker can ask for.
constexpr unsigned ipv6_max_ext_headers = 8;
constexpr uint8_t tcp_max_wscale = 14;

inline uint16_t load16(const uint8_t* p) noexcept { return uint16_t((p[0] << 8) | p[1]); }
inline uint32_t load32(const uint8_t* p) noexcept {
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

inline parse_result pass() noexcept { return {true, drop_reason{}}; }
inline parse_result fail(drop_reason r) noexcept { return {false, r}; }

inline void store_v4_mapped(ip_addr& a, const uint8_t* p) noexcept {
    std::memset(a.b, 0, 10);
    a.b[10] = 0xff;
    a.b[11] = 0xff;
    std::memcpy(a.b + 12, p, 4);
}

inline uint8_t frag_flags_of(uint32_t offset_bytes, bool more) noexcept {
    uint8_t f = 0;
    if (offset_bytes != 0 || more) f |= frag::is_fragment;
    if (offset_bytes == 0) f |= frag::first;
    if (more) f |= frag::more;
    return f;
}

// TCP options between the fixed header and doff*4. Malformed options end the walk (the
// segment is still parsed), as Linux's tcp_parse_options does.
void parse_tcp_options(const uint8_t* p, uint32_t len, packet_meta& m) noexcept {
    uint32_t i = 0;
    while (i < len) {
        uint8_t kind = p[i];
        if (kind == 0) break; // end of option list
        if (kind == 1) {      // no-operation
            ++i;
            continue;
        }
        if (i + 1 >= len) break;
        uint8_t olen = p[i + 1];
        if (olen < 2 || olen > len - i) break;
        switch (kind) {
        case 2:
            if (olen == 4) m.tcp_mss = load16(p + i + 2);
            break;
        case 3:
            if (olen == 3) m.tcp_wscale = p[i + 2] > tcp_max_wscale ? tcp_max_wscale : p[i + 2];
            break;
        case 4:
            if (olen == 2) m.tcp_sack_perm = 1;
            break;
        default:
            break;
        }
        i += olen;
    }
}

inline bool icmp_has_id(uint8_t type) noexcept {
    switch (type) {
    case 0: case 8:   // echo reply / request
    case 13: case 14: // timestamp
    case 15: case 16: // information
    case 17: case 18: // address mask
        return true;
    default:
        return false;
    }
}

inline bool icmp_is_error(uint8_t type) noexcept {
    return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

inline bool icmpv6_is_error(uint8_t type) noexcept { return type >= 1 && type <= 4; }

// Transport header at `p`. `ip_avail` is how many L4 bytes the IP header says exist,
// `data_avail` how many we may read. In quoted mode (ICMP error payloads) only
// `data_avail` counts and a partial header is fine as long as the ports (ICMP: type, code
// and id) are there; nothing beyond the first 8 bytes is interpreted.
parse_result parse_l4(const uint8_t* p, uint32_t ip_avail, uint32_t data_avail, l3_kind l3,
                      bool quoted, packet_meta& m) noexcept {
    const uint32_t avail = quoted ? data_avail : (ip_avail < data_avail ? ip_avail : data_avail);
    auto need = [&](uint32_t n) noexcept { return avail >= n; };

    switch (m.l4_proto) {
    case proto_tcp: {
        if (!need(quoted ? 4 : 20)) return fail(drop_reason::l4_truncated);
        m.sport = load16(p);
        m.dport = load16(p + 2);
        if (quoted) {
            if (avail >= 8) m.tcp_seq = load32(p + 4);
            if (avail >= 14) m.tcp_flags = p[13];
            return pass();
        }
        m.tcp_seq = load32(p + 4);
        m.tcp_ack = load32(p + 8);
        m.tcp_flags = p[13];
        m.tcp_window = load16(p + 14);
        uint32_t hlen = uint32_t(p[12] >> 4) * 4;
        if (hlen < 20 || hlen > ip_avail) return fail(drop_reason::tcp_bad_offset);
        if (hlen > data_avail) return fail(drop_reason::l4_truncated);
        parse_tcp_options(p + 20, hlen - 20, m);
        m.l4_len = uint16_t(hlen);
        return pass();
    }
    case proto_udp:
    case proto_udplite:
        if (!need(quoted ? 4 : 8)) return fail(drop_reason::l4_truncated);
        m.sport = load16(p);
        m.dport = load16(p + 2);
        m.l4_len = quoted ? 0 : 8;
        return pass();
    case proto_sctp:
        if (!need(quoted ? 4 : 12)) return fail(drop_reason::l4_truncated);
        m.sport = load16(p);
        m.dport = load16(p + 2);
        m.l4_len = quoted ? 0 : 12;
        return pass();
    case proto_icmp:
    case proto_icmpv6: {
        const bool v6 = m.l4_proto == proto_icmpv6;
        // ICMP in IPv6 / ICMPv6 in IPv4 are nonsense; leave them unparsed like any
        // unknown protocol rather than misreading them.
        if (v6 != (l3 == l3_kind::ipv6)) return pass();
        if (!need(8)) return fail(drop_reason::l4_truncated);
        const uint8_t type = p[0], code = p[1];
        m.icmp_type = type;
        m.icmp_code = code;
        m.dport = uint16_t((type << 8) | code);
        const bool has_id = v6 ? (type == 128 || type == 129) : icmp_has_id(type);
        if (has_id) m.sport = load16(p + 4);
        if (!quoted) {
            m.l4_len = 8;
            const bool err = v6 ? icmpv6_is_error(type) : icmp_is_error(type);
            if (err) m.quoted_off = uint16_t(m.l4_off + 8);
        }
        return pass();
    }
    default:
        return pass(); // GRE, ESP, AH (IPv4), anything else: no ports
    }
}

// IPv6 extension header chain starting at `off` (just after the fixed header) with next
// header `nh`; headers must end by `limit`. On success `off` is the L4 offset and
// m.l4_proto the final next header. Sets the fragment fields from a fragment header and,
// for a non-first fragment, stops there (what follows is not a header).
parse_result parse_ipv6_ext(const uint8_t* d, uint32_t& off, uint32_t limit, uint8_t nh,
                            packet_meta& m, uint32_t& frag_end) noexcept {
    bool seen_frag = false;
    frag_end = 0;
    for (unsigned n = 0;; ++n) {
        uint32_t hlen;
        switch (nh) {
        case proto_hopopts:
            if (n != 0) return fail(drop_reason::ipv6_ext_chain); // only allowed first
            [[fallthrough]];
        case proto_routing:
        case proto_dstopts:
            if (limit - off < 2) return fail(drop_reason::ipv6_ext_chain);
            hlen = (uint32_t(d[off + 1]) + 1) * 8;
            break;
        case proto_ah:
            if (limit - off < 2) return fail(drop_reason::ipv6_ext_chain);
            hlen = (uint32_t(d[off + 1]) + 2) * 4;
            break;
        case proto_fragment:
            if (seen_frag) return fail(drop_reason::ipv6_ext_chain);
            seen_frag = true;
            hlen = 8;
            break;
        default: // ESP (50), no next header (59), a transport protocol, or unknown
            m.l4_proto = nh;
            return pass();
        }
        if (n >= ipv6_max_ext_headers) return fail(drop_reason::ipv6_ext_chain);
        if (hlen > limit - off) return fail(drop_reason::ipv6_ext_chain);
        const uint8_t* h = d + off;
        uint8_t next = h[0];
        off += hlen;
        if (nh == proto_fragment) {
            uint16_t x = load16(h + 2);
            m.frag_offset = uint16_t(x & 0xfff8);
            m.frag_id = load32(h + 4);
            m.frag_flags = frag_flags_of(m.frag_offset, x & 1);
            frag_end = off;
            if (m.frag_offset != 0) {
                m.l4_proto = next;
                return pass();
            }
        }
        nh = next;
    }
}

parse_result parse_ipv4(const uint8_t* d, uint32_t data_len, uint32_t pkt_len,
                        packet_meta& m) noexcept {
    const uint32_t off = m.l3_off;
    if (data_len - off < ipv4_min_hlen) return fail(drop_reason::l3_truncated);
    const uint8_t* ip = d + off;
    if ((ip[0] >> 4) != 4) return fail(drop_reason::ipv4_bad_version);
    const uint32_t hlen = uint32_t(ip[0] & 0x0f) * 4;
    if (hlen < ipv4_min_hlen || hlen > data_len - off) return fail(drop_reason::ipv4_bad_ihl);
    const uint32_t total = load16(ip + 2);
    if (total < hlen || total > pkt_len - off) return fail(drop_reason::ipv4_bad_length);

    m.l3 = l3_kind::ipv4;
    m.l3_len = uint16_t(hlen);
    m.ip_total_len = total;
    m.ttl = ip[8];
    m.l4_proto = ip[9];
    store_v4_mapped(m.src, ip + 12);
    store_v4_mapped(m.dst, ip + 16);
    m.frag_id = load16(ip + 4);
    const uint16_t ff = load16(ip + 6);
    m.frag_offset = uint16_t((ff & 0x1fff) * 8);
    m.frag_flags = frag_flags_of(m.frag_offset, ff & 0x2000);
    m.l4_off = uint16_t(off + hlen);

    const uint32_t l4_ip = total - hlen;
    m.payload_len = l4_ip;
    if ((m.frag_flags & frag::is_fragment) && m.frag_offset + l4_ip > ip_max_datagram)
        return fail(drop_reason::ip_bad_fragment);
    if (!(m.frag_flags & frag::first)) return pass();

    parse_result r = parse_l4(ip + hlen, l4_ip, data_len - m.l4_off, m.l3, false, m);
    m.payload_len = l4_ip - m.l4_len;
    return r;
}

parse_result parse_ipv6(const uint8_t* d, uint32_t data_len, uint32_t pkt_len,
                        packet_meta& m) noexcept {
    const uint32_t l3 = m.l3_off;
    if (data_len - l3 < ipv6_hlen) return fail(drop_reason::l3_truncated);
    const uint8_t* ip = d + l3;
    if ((ip[0] >> 4) != 6) return fail(drop_reason::ipv6_bad_version);
    const uint32_t total = ipv6_hlen + load16(ip + 4);
    if (total > pkt_len - l3) return fail(drop_reason::ipv6_bad_length);

    m.l3 = l3_kind::ipv6;
    m.ip_total_len = total;
    m.ttl = ip[7];
    std::memcpy(m.src.b, ip + 8, 16);
    std::memcpy(m.dst.b, ip + 24, 16);
    m.frag_flags = frag::first;

    // Extension headers must lie inside both the datagram and the first segment.
    const uint32_t dgram_end = l3 + total;
    const uint32_t limit = dgram_end < data_len ? dgram_end : data_len;
    uint32_t off = l3 + ipv6_hlen;
    uint32_t frag_end = 0;
    parse_result r = parse_ipv6_ext(d, off, limit, ip[6], m, frag_end);
    if (!r.ok) return r;
    m.l3_len = uint16_t(off - l3);
    m.l4_off = uint16_t(off);

    const uint32_t l4_ip = dgram_end - off;
    m.payload_len = l4_ip;
    if (m.frag_flags & frag::is_fragment) {
        // RFC 8200 4.5: non-last fragments are multiples of 8 bytes; nothing past 65535.
        const uint32_t frag_len = dgram_end - frag_end;
        if ((m.frag_flags & frag::more) && (frag_len & 7) != 0)
            return fail(drop_reason::ip_bad_fragment);
        if (m.frag_offset + frag_len > ip_max_datagram) return fail(drop_reason::ip_bad_fragment);
    }
    if (!(m.frag_flags & frag::first)) return pass();

    r = parse_l4(d + off, l4_ip, data_len - off, m.l3, false, m);
    m.payload_len = l4_ip - m.l4_len;
    return r;
}

} // namespace

parse_result parse_packet(const uint8_t* data, uint32_t data_len, uint32_t pkt_len,
                          packet_meta& out) noexcept {
    std::memset(&out, 0, sizeof out);
    out.tcp_wscale = 0xff;
    // The frame ends at pkt_len; a first segment claiming more is not read past it.
    if (data_len > pkt_len) data_len = pkt_len;
    if (data_len < eth_hlen) return fail(drop_reason::l2_truncated);

    uint32_t off = 12;
    uint16_t type = load16(data + off);
    off += 2;
    while (type == tpid_8021q || type == tpid_8021ad || type == tpid_qinq_old) {
        if (out.n_vlans == max_vlans) return fail(drop_reason::vlan_too_deep);
        if (data_len - off < 4) return fail(drop_reason::l2_truncated);
        const uint16_t vid = load16(data + off) & 0x0fff;
        if (out.n_vlans == 0)
            out.vlan_outer = vid;
        else
            out.vlan_inner = vid;
        ++out.n_vlans;
        type = load16(data + off + 2);
        off += 4;
    }
    out.ethertype = type;
    out.l2_len = uint16_t(off);
    out.l3_off = uint16_t(off);

    switch (type) {
    case ethertype_ipv4:
        return parse_ipv4(data, data_len, pkt_len, out);
    case ethertype_ipv6:
        return parse_ipv6(data, data_len, pkt_len, out);
    case ethertype_arp:
        out.l3 = l3_kind::arp;
        return pass();
    default:
        out.l3 = l3_kind::other;
        return pass();
    }
}

parse_result parse_quoted(const uint8_t* data, uint32_t len, l3_kind kind,
                          packet_meta& out) noexcept {
    std::memset(&out, 0, sizeof out);
    out.tcp_wscale = 0xff;
    uint32_t l4;
    if (kind == l3_kind::ipv4) {
        if (len < ipv4_min_hlen) return fail(drop_reason::l3_truncated);
        if ((data[0] >> 4) != 4) return fail(drop_reason::ipv4_bad_version);
        const uint32_t hlen = uint32_t(data[0] & 0x0f) * 4;
        if (hlen < ipv4_min_hlen || hlen > len) return fail(drop_reason::ipv4_bad_ihl);
        out.l3_len = uint16_t(hlen);
        out.ip_total_len = load16(data + 2);
        out.ttl = data[8];
        out.l4_proto = data[9];
        store_v4_mapped(out.src, data + 12);
        store_v4_mapped(out.dst, data + 16);
        out.frag_id = load16(data + 4);
        const uint16_t ff = load16(data + 6);
        out.frag_offset = uint16_t((ff & 0x1fff) * 8);
        out.frag_flags = frag_flags_of(out.frag_offset, ff & 0x2000);
        l4 = hlen;
    } else if (kind == l3_kind::ipv6) {
        if (len < ipv6_hlen) return fail(drop_reason::l3_truncated);
        if ((data[0] >> 4) != 6) return fail(drop_reason::ipv6_bad_version);
        out.ip_total_len = ipv6_hlen + load16(data + 4);
        out.ttl = data[7];
        std::memcpy(out.src.b, data + 8, 16);
        std::memcpy(out.dst.b, data + 24, 16);
        out.frag_flags = frag::first;
        uint32_t off = ipv6_hlen, frag_end = 0;
        parse_result r = parse_ipv6_ext(data, off, len, data[6], out, frag_end);
        if (!r.ok) return r;
        out.l3_len = uint16_t(off);
        l4 = off;
    } else {
        return fail(drop_reason::l3_truncated); // nothing an ICMP error can quote
    }
    out.l3 = kind;
    out.l4_off = uint16_t(l4);
    if (!(out.frag_flags & frag::first)) return pass();
    return parse_l4(data + l4, len - l4, len - l4, kind, true, out);
}

} // namespace sluice
