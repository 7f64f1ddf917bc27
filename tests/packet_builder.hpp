// Packet builder for tests: frames are described with a chain of calls and serialised by
// `bytes()`, which computes lengths and checksums then, so the order of the calls does not
// matter except where the wire order does (VLAN tags, IPv6 extension headers).
//
//   auto f = packet().eth(mac_a, mac_b).vlan(10)
//                    .ipv4("192.0.2.1", "198.51.100.2")
//                    .tcp(1234, 80, tcp_flag::syn).mss(1460).wscale(7).sack_perm()
//                    .payload(100)
//                    .bytes();
//
//   auto err = packet().ipv4("203.0.113.1", "192.0.2.1")
//                      .icmp_error(3, 3, original);       // quotes original's IP part
//
// Defaults give a valid frame: documentation MAC addresses (RFC 7042), TTL/hop limit 64,
// IPv4 DF clear, TCP window 65535. Lengths (IPv4 total length, IPv6 payload length, UDP
// length, TCP data offset) and checksums (IPv4 header, TCP/UDP/UDP-Lite/ICMP/ICMPv6 over
// the bytes present, SCTP CRC32c) are computed unless a test overrides them to build a
// malformed frame (`ipv4_ihl`, `ipv4_total_length`, `ipv6_payload_length`, `tcp_doff`,
// `ip_version`, `ip_proto`, `ipv4_checksum`, `ext_raw`).
//
// Checksum caveats: for fragments, the L4 checksum covers only the bytes in this fragment;
// for IPv6 with a routing header, the pseudo-header uses the IPv6 destination field.
//
// `describe()` prints a one-line summary plus a hex dump in the offset/hex format that
// `text2pcap` reads, so a failing test shows a packet that can be replayed in Wireshark or
// through sluice-gen.
//
// Test-only code: throws std::invalid_argument on malformed addresses or impossible
// requests; not for the fast path.
#pragma once

#include "packet.hpp" // sluice::tcp_flag

#include <arpa/inet.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::test {

using frame = std::vector<uint8_t>;

// Documentation MAC addresses (RFC 7042: 00-00-5E-00-53-00 .. 00-00-5E-00-53-FF).
inline constexpr std::string_view mac_a = "00:00:5e:00:53:01";
inline constexpr std::string_view mac_b = "00:00:5e:00:53:02";

// Documentation IP addresses, for tables that want names.
inline constexpr std::string_view ip4_a = "192.0.2.1";
inline constexpr std::string_view ip4_b = "198.51.100.2";
inline constexpr std::string_view ip4_c = "203.0.113.3";
inline constexpr std::string_view ip6_a = "2001:db8::1";
inline constexpr std::string_view ip6_b = "2001:db8:1::2";
inline constexpr std::string_view ip6_c = "2001:db8:2::3";

namespace ipproto {
inline constexpr uint8_t hopopts = 0, icmp = 1, tcp = 6, udp = 17, routing = 43, fragment = 44,
                         gre = 47, esp = 50, ah = 51, icmpv6 = 58, none = 59, dstopts = 60,
                         sctp = 132, udplite = 136;
}

namespace eth_type {
inline constexpr uint16_t ipv4 = 0x0800, arp = 0x0806, ipv6 = 0x86dd, vlan = 0x8100,
                          qinq = 0x88a8, qinq_old = 0x9100, lldp = 0x88cc;
}

// ---------------------------------------------------------------------------------------
// Small helpers, usable on their own.

inline std::array<uint8_t, 6> parse_mac(std::string_view s) {
    std::array<uint8_t, 6> m{};
    unsigned v[6];
    std::string str(s);
    if (std::sscanf(str.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4],
                    &v[5]) != 6)
        throw std::invalid_argument("bad MAC address: " + str);
    for (int i = 0; i < 6; ++i) {
        if (v[i] > 0xff) throw std::invalid_argument("bad MAC address: " + str);
        m[size_t(i)] = uint8_t(v[i]);
    }
    return m;
}

inline std::array<uint8_t, 4> parse_ip4(std::string_view s) {
    std::array<uint8_t, 4> a{};
    std::string str(s);
    if (inet_pton(AF_INET, str.c_str(), a.data()) != 1)
        throw std::invalid_argument("bad IPv4 address: " + str);
    return a;
}

inline std::array<uint8_t, 16> parse_ip6(std::string_view s) {
    std::array<uint8_t, 16> a{};
    std::string str(s);
    if (inet_pton(AF_INET6, str.c_str(), a.data()) != 1)
        throw std::invalid_argument("bad IPv6 address: " + str);
    return a;
}

// The 16-byte form packet_meta uses: IPv4 addresses IPv4-mapped (::ffff:a.b.c.d).
inline ip_addr make_addr(std::string_view s) {
    ip_addr a{};
    if (s.find(':') == std::string_view::npos) {
        auto v4 = parse_ip4(s);
        a.b[10] = a.b[11] = 0xff;
        for (int i = 0; i < 4; ++i) a.b[12 + i] = v4[size_t(i)];
    } else {
        auto v6 = parse_ip6(s);
        for (int i = 0; i < 16; ++i) a.b[i] = v6[size_t(i)];
    }
    return a;
}

// "192.0.2.1" for IPv4-mapped addresses, RFC 5952 text otherwise.
inline std::string to_string(const ip_addr& a) {
    char buf[INET6_ADDRSTRLEN];
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    bool v4 = true;
    for (int i = 0; i < 12; ++i) v4 = v4 && a.b[i] == mapped[i];
    if (v4) return inet_ntop(AF_INET, a.b + 12, buf, sizeof buf);
    return inet_ntop(AF_INET6, a.b, buf, sizeof buf);
}

// Offset + 16 hex bytes per line: the format text2pcap reads (`text2pcap dump.txt x.pcap`).
inline std::string hex_dump(const uint8_t* p, size_t n) {
    std::string out;
    char buf[32];
    for (size_t i = 0; i < n; i += 16) {
        std::snprintf(buf, sizeof buf, "%06zx", i);
        out += buf;
        for (size_t j = i; j < n && j < i + 16; ++j) {
            std::snprintf(buf, sizeof buf, " %02x", p[j]);
            out += buf;
        }
        out += '\n';
    }
    return out;
}
inline std::string hex_dump(const frame& f) { return hex_dump(f.data(), f.size()); }

// One's-complement sum (RFC 1071), not yet folded or inverted.
inline uint32_t csum_add(uint32_t sum, const uint8_t* p, size_t n) {
    for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i] << 8 | p[i + 1]);
    if (n & 1) sum += uint32_t(p[n - 1] << 8);
    return sum;
}
inline uint16_t csum_fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(~sum);
}

// CRC32c (Castagnoli), bitwise; only used to make SCTP test packets valid.
inline uint32_t crc32c(const uint8_t* p, size_t n) {
    uint32_t crc = 0xffffffff;
    for (size_t i = 0; i < n; ++i) {
        crc ^= p[i];
        for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82f63b78 & (0u - (crc & 1)));
    }
    return ~crc;
}

// ---------------------------------------------------------------------------------------

class packet {
  public:
    // ---- L2 -----------------------------------------------------------------------------
    packet& eth(std::string_view src = mac_a, std::string_view dst = mac_b) {
        src_mac_ = parse_mac(src);
        dst_mac_ = parse_mac(dst);
        return *this;
    }
    // Appends a tag (outermost first).
    packet& vlan(uint16_t vid, uint8_t pcp = 0, uint16_t tpid = eth_type::vlan) {
        vlans_.push_back({tpid, uint16_t((pcp & 7) << 13 | (vid & 0x0fff))});
        return *this;
    }
    // 802.1ad service tag then 802.1Q customer tag.
    packet& qinq(uint16_t outer, uint16_t inner, uint16_t outer_tpid = eth_type::qinq) {
        return vlan(outer, 0, outer_tpid).vlan(inner);
    }
    // Innermost ethertype; normally implied by the L3 call.
    packet& ethertype(uint16_t t) {
        ethertype_ = t;
        return *this;
    }
    // ARP request "who has target_ip, tell sender_ip" (Ethernet/IPv4, 28 bytes); the
    // sender hardware address is the Ethernet source. Use eth(src, "ff:ff:ff:ff:ff:ff")
    // for a broadcast.
    packet& arp_request(std::string_view sender_ip, std::string_view target_ip) {
        l3_ = l3_type::arp;
        src4_ = parse_ip4(sender_ip);
        dst4_ = parse_ip4(target_ip);
        return *this;
    }

    // ---- IPv4 ---------------------------------------------------------------------------
    packet& ipv4(std::string_view src, std::string_view dst, uint8_t ttl = 64) {
        l3_ = l3_type::v4;
        src4_ = parse_ip4(src);
        dst4_ = parse_ip4(dst);
        ttl_ = ttl;
        return *this;
    }
    // Raw option bytes; padded with end-of-list to a multiple of 4 (max 40).
    packet& ipv4_options(frame opts) {
        while (opts.size() % 4) opts.push_back(0);
        if (opts.size() > 40) throw std::invalid_argument("IPv4 options longer than 40 bytes");
        v4_options_ = std::move(opts);
        return *this;
    }
    // Fragment: offset in bytes (multiple of 8), more-fragments flag, identification.
    packet& ipv4_fragment(uint16_t offset_bytes, bool more, uint16_t id) {
        if (offset_bytes % 8) throw std::invalid_argument("fragment offset not a multiple of 8");
        frag_offset_ = offset_bytes;
        frag_more_ = more;
        ip_id_ = id;
        return *this;
    }
    packet& ipv4_id(uint16_t id) {
        ip_id_ = id;
        return *this;
    }
    packet& ipv4_df(bool df = true) {
        df_ = df;
        return *this;
    }
    packet& tos(uint8_t t) {
        tos_ = t;
        return *this;
    }

    // ---- IPv6 ---------------------------------------------------------------------------
    packet& ipv6(std::string_view src, std::string_view dst, uint8_t hop_limit = 64) {
        l3_ = l3_type::v6;
        src6_ = parse_ip6(src);
        dst6_ = parse_ip6(dst);
        ttl_ = hop_limit;
        return *this;
    }
    packet& flow_label(uint32_t fl) {
        flow_label_ = fl & 0xfffff;
        return *this;
    }
    // Extension headers, appended in wire order. Options headers are (units8 + 1) * 8
    // bytes, filled with PadN.
    packet& hop_by_hop(uint8_t units8 = 0) { return options_ext(ipproto::hopopts, units8); }
    packet& dest_opts(uint8_t units8 = 0) { return options_ext(ipproto::dstopts, units8); }
    // Segment routing header (type 4) listing `segments`.
    packet& routing(const std::vector<std::string_view>& segments = {},
                    uint8_t segments_left = 0) {
        frame h = {0, uint8_t(segments.size() * 2), 4, segments_left,
                   uint8_t(segments.empty() ? 0 : segments.size() - 1), 0, 0, 0};
        for (auto s : segments) {
            auto a = parse_ip6(s);
            h.insert(h.end(), a.begin(), a.end());
        }
        ext_.push_back({ipproto::routing, std::move(h)});
        return *this;
    }
    // Fragment header: offset in bytes (multiple of 8), M flag, 32-bit identification.
    packet& fragment(uint16_t offset_bytes, bool more, uint32_t id) {
        if (offset_bytes % 8) throw std::invalid_argument("fragment offset not a multiple of 8");
        uint16_t x = uint16_t(offset_bytes | (more ? 1 : 0));
        ext_.push_back({ipproto::fragment,
                        {0, 0, uint8_t(x >> 8), uint8_t(x), uint8_t(id >> 24), uint8_t(id >> 16),
                         uint8_t(id >> 8), uint8_t(id)}});
        return *this;
    }
    // Authentication header with an `icv_len`-byte ICV (12: HMAC-SHA1-96).
    packet& ah(uint32_t spi = 0x100, uint32_t seq = 1, size_t icv_len = 12) {
        frame h = {0, uint8_t((12 + icv_len) / 4 - 2), 0, 0};
        put32(h, spi);
        put32(h, seq);
        h.insert(h.end(), icv_len, 0xa5);
        ext_.push_back({ipproto::ah, std::move(h)});
        return *this;
    }
    // Any extension header as raw bytes; byte 0 (next header) is filled in unless
    // `keep_next` (for building chains that lie).
    packet& ext_raw(uint8_t type, frame raw, bool keep_next = false) {
        ext_.push_back({type, std::move(raw), keep_next});
        return *this;
    }

    // ---- L4 -----------------------------------------------------------------------------
    packet& tcp(uint16_t sport, uint16_t dport, uint8_t flags = tcp_flag::syn) {
        l4_ = l4_type::tcp;
        sport_ = sport;
        dport_ = dport;
        tcp_flags_ = flags;
        return *this;
    }
    packet& seq(uint32_t s) {
        seq_ = s;
        return *this;
    }
    packet& ack_seq(uint32_t a) {
        ack_ = a;
        return *this;
    }
    packet& window(uint16_t w) {
        window_ = w;
        return *this;
    }
    // TCP options, in the order added; padded with NOP... EOL to a multiple of 4.
    packet& mss(uint16_t v) { return tcp_option({2, 4, uint8_t(v >> 8), uint8_t(v)}); }
    packet& wscale(uint8_t shift) { return tcp_option({1, 3, 3, shift}); } // NOP + WS
    packet& sack_perm() { return tcp_option({4, 2}); }
    packet& timestamps(uint32_t val, uint32_t ecr) {
        frame o = {1, 1, 8, 10};
        put32(o, val);
        put32(o, ecr);
        return tcp_option(std::move(o));
    }
    packet& tcp_option(const frame& raw) {
        tcp_opts_.insert(tcp_opts_.end(), raw.begin(), raw.end());
        return *this;
    }
    packet& udp(uint16_t sport, uint16_t dport) {
        l4_ = l4_type::udp;
        sport_ = sport;
        dport_ = dport;
        return *this;
    }
    packet& udplite(uint16_t sport, uint16_t dport) {
        l4_ = l4_type::udplite;
        sport_ = sport;
        dport_ = dport;
        return *this;
    }
    packet& sctp(uint16_t sport, uint16_t dport, uint32_t vtag = 0) {
        l4_ = l4_type::sctp;
        sport_ = sport;
        dport_ = dport;
        vtag_ = vtag;
        return *this;
    }
    // ICMP message with an (id, seq) rest-of-header, e.g. echo request icmp(8, 0, id, 1).
    packet& icmp(uint8_t type, uint8_t code, uint16_t id = 0, uint16_t seq = 0) {
        l4_ = l4_type::icmp;
        icmp_type_ = type;
        icmp_code_ = code;
        icmp_rest_ = uint32_t(id) << 16 | seq;
        return *this;
    }
    packet& icmpv6(uint8_t type, uint8_t code, uint16_t id = 0, uint16_t seq = 0) {
        icmp(type, code, id, seq);
        l4_ = l4_type::icmpv6;
        return *this;
    }
    // ICMP error quoting `quoted` (an IP datagram, e.g. other.ip_bytes()) as the payload;
    // `rest` is the 4-byte rest-of-header (next-hop MTU, pointer, unused).
    packet& icmp_error(uint8_t type, uint8_t code, const frame& quoted, uint32_t rest = 0) {
        l4_ = l4_type::icmp;
        icmp_type_ = type;
        icmp_code_ = code;
        icmp_rest_ = rest;
        payload_ = quoted;
        return *this;
    }
    // Quotes the IP part of another built packet, at most `max_quote` bytes of it.
    packet& icmp_error(uint8_t type, uint8_t code, const packet& original,
                       size_t max_quote = std::numeric_limits<size_t>::max()) {
        return icmp_error(type, code, truncated(original.ip_bytes(), max_quote));
    }
    packet& icmpv6_error(uint8_t type, uint8_t code, const frame& quoted, uint32_t rest = 0) {
        icmp_error(type, code, quoted, rest);
        l4_ = l4_type::icmpv6;
        return *this;
    }
    packet& icmpv6_error(uint8_t type, uint8_t code, const packet& original,
                         size_t max_quote = std::numeric_limits<size_t>::max()) {
        return icmpv6_error(type, code, truncated(original.ip_bytes(), max_quote));
    }
    packet& gre(uint16_t protocol = eth_type::ipv4) {
        return l4_raw(ipproto::gre, {0, 0, uint8_t(protocol >> 8), uint8_t(protocol)});
    }
    packet& esp(uint32_t spi = 0x100, uint32_t seq = 1) {
        frame h;
        put32(h, spi);
        put32(h, seq);
        return l4_raw(ipproto::esp, std::move(h));
    }
    // Any other protocol: `header` goes between the IP header(s) and the payload.
    packet& l4_raw(uint8_t proto, frame header = {}) {
        l4_ = l4_type::raw;
        raw_proto_ = proto;
        l4_raw_ = std::move(header);
        return *this;
    }

    // ---- payload and trailer ------------------------------------------------------------
    packet& payload(size_t n) { // deterministic pattern
        payload_.clear();
        for (size_t i = 0; i < n; ++i) payload_.push_back(uint8_t(i * 7 + 1));
        return *this;
    }
    packet& payload(frame bytes) {
        payload_ = std::move(bytes);
        return *this;
    }
    packet& payload(std::string_view text) {
        payload_.assign(text.begin(), text.end());
        return *this;
    }
    // Ethernet padding: zero bytes after the IP datagram up to `frame_len` (e.g. 60).
    packet& pad_to(size_t frame_len) {
        pad_to_ = frame_len;
        return *this;
    }

    // ---- overrides for malformed frames -------------------------------------------------
    packet& ip_version(uint8_t v) {
        version_ = v;
        return *this;
    }
    packet& ipv4_ihl(uint8_t ihl) { // raw 4-bit field
        ihl_ = ihl;
        return *this;
    }
    packet& ipv4_total_length(uint16_t len) {
        total_len_ = len;
        return *this;
    }
    packet& ipv4_checksum(uint16_t c) {
        ip_csum_ = c;
        return *this;
    }
    packet& ipv6_payload_length(uint16_t len) {
        total_len_ = len;
        return *this;
    }
    // Protocol field of the last IP header (IPv4 protocol / last IPv6 next header).
    packet& ip_proto(uint8_t p) {
        proto_override_ = p;
        return *this;
    }
    packet& tcp_doff(uint8_t words) { // raw 4-bit field
        doff_ = words;
        return *this;
    }

    // ---- output -------------------------------------------------------------------------
    frame bytes() const {
        size_t l2 = 0;
        return build(l2);
    }
    // From the IP header to the end of the datagram (no L2, no Ethernet padding).
    frame ip_bytes() const {
        size_t l2 = 0;
        frame f = build(l2, /*with_pad=*/false);
        return frame(f.begin() + long(l2), f.end());
    }
    // Summary line plus a text2pcap-readable hex dump (the first `max_dump` bytes; jumbo
    // frames would otherwise bury the failure message).
    std::string describe(size_t max_dump = 2048) const {
        frame f = bytes();
        std::string s = summary() + " (" + std::to_string(f.size()) + " bytes)\n";
        s += hex_dump(f.data(), f.size() < max_dump ? f.size() : max_dump);
        if (f.size() > max_dump) s += "... (dump cut at " + std::to_string(max_dump) + " bytes)\n";
        return s;
    }

    std::string summary() const {
        std::string s = "eth";
        for (auto& v : vlans_) s += " vlan(" + hex16(v.tpid) + ")" + std::to_string(v.tci & 0xfff);
        char buf[INET6_ADDRSTRLEN];
        if (l3_ == l3_type::v4) {
            s += " | ipv4 " + std::string(inet_ntop(AF_INET, src4_.data(), buf, sizeof buf));
            s += " > " + std::string(inet_ntop(AF_INET, dst4_.data(), buf, sizeof buf));
            if (!v4_options_.empty()) s += " opts " + std::to_string(v4_options_.size());
            if (frag_offset_ || frag_more_)
                s += " frag off " + std::to_string(frag_offset_) + (frag_more_ ? " MF" : "") +
                     " id " + std::to_string(ip_id_);
        } else if (l3_ == l3_type::v6) {
            s += " | ipv6 " + std::string(inet_ntop(AF_INET6, src6_.data(), buf, sizeof buf));
            s += " > " + std::string(inet_ntop(AF_INET6, dst6_.data(), buf, sizeof buf));
            for (auto& e : ext_) s += " ext " + std::to_string(e.type);
        } else if (l3_ == l3_type::arp) {
            s += " | arp who-has " + std::string(inet_ntop(AF_INET, dst4_.data(), buf, sizeof buf));
            s += " tell " + std::string(inet_ntop(AF_INET, src4_.data(), buf, sizeof buf));
        } else if (ethertype_) {
            s += " | ethertype " + hex16(ethertype_);
        }
        switch (l4_) {
        case l4_type::tcp:
            s += " | tcp " + std::to_string(sport_) + " > " + std::to_string(dport_) + " [" +
                 tcp_flag_string(tcp_flags_) + "] seq " + std::to_string(seq_);
            break;
        case l4_type::udp: s += " | udp " + ports(); break;
        case l4_type::udplite: s += " | udplite " + ports(); break;
        case l4_type::sctp: s += " | sctp " + ports(); break;
        case l4_type::icmp:
        case l4_type::icmpv6:
            s += std::string(l4_ == l4_type::icmp ? " | icmp" : " | icmpv6") + " type " +
                 std::to_string(icmp_type_) + " code " + std::to_string(icmp_code_);
            break;
        case l4_type::raw: s += " | proto " + std::to_string(raw_proto_); break;
        case l4_type::none: break;
        }
        if (!payload_.empty()) s += " | payload " + std::to_string(payload_.size());
        return s;
    }

  private:
    enum class l3_type { none, v4, v6, arp };
    enum class l4_type { none, tcp, udp, udplite, sctp, icmp, icmpv6, raw };
    struct vlan_tag {
        uint16_t tpid, tci;
    };
    struct ext_header {
        uint8_t type;
        frame raw;
        bool keep_next = false;
    };

    static void put16(frame& f, uint16_t v) {
        f.push_back(uint8_t(v >> 8));
        f.push_back(uint8_t(v));
    }
    static void put32(frame& f, uint32_t v) {
        put16(f, uint16_t(v >> 16));
        put16(f, uint16_t(v));
    }
    static void set16(frame& f, size_t at, uint16_t v) {
        f[at] = uint8_t(v >> 8);
        f[at + 1] = uint8_t(v);
    }
    static frame truncated(frame f, size_t max) {
        if (f.size() > max) f.resize(max);
        return f;
    }
    static std::string hex16(uint16_t v) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "0x%04x", v);
        return buf;
    }
    static std::string tcp_flag_string(uint8_t f) {
        static const char names[] = "FSRPAUEC";
        std::string s;
        for (int i = 0; i < 8; ++i)
            if (f & (1 << i)) s += names[i];
        return s.empty() ? "." : s;
    }
    std::string ports() const { return std::to_string(sport_) + " > " + std::to_string(dport_); }

    packet& options_ext(uint8_t type, uint8_t units8) {
        size_t total = (size_t(units8) + 1) * 8;
        frame h = {0, units8};
        size_t pad = total - 2;
        while (pad > 0) {
            if (pad == 1) {
                h.push_back(0); // Pad1
                pad = 0;
            } else {
                size_t n = pad - 2 > 255 ? 255 : pad - 2;
                h.push_back(1); // PadN
                h.push_back(uint8_t(n));
                h.insert(h.end(), n, 0);
                pad -= n + 2;
            }
        }
        ext_.push_back({type, std::move(h)});
        return *this;
    }

    uint8_t l4_proto() const {
        switch (l4_) {
        case l4_type::tcp: return ipproto::tcp;
        case l4_type::udp: return ipproto::udp;
        case l4_type::udplite: return ipproto::udplite;
        case l4_type::sctp: return ipproto::sctp;
        case l4_type::icmp: return ipproto::icmp;
        case l4_type::icmpv6: return ipproto::icmpv6;
        case l4_type::raw: return raw_proto_;
        case l4_type::none: break;
        }
        return l3_ == l3_type::v6 ? ipproto::none : 253; // 253: RFC 3692 experimental
    }

    // Transport header + payload, checksum left zero.
    frame l4_bytes() const {
        frame f;
        switch (l4_) {
        case l4_type::tcp: {
            frame opts = tcp_opts_;
            while (opts.size() % 4) opts.push_back(opts.size() % 4 == 3 ? 0 : 1);
            put16(f, sport_);
            put16(f, dport_);
            put32(f, seq_);
            put32(f, ack_);
            uint8_t doff = doff_ >= 0 ? uint8_t(doff_) : uint8_t((20 + opts.size()) / 4);
            f.push_back(uint8_t(doff << 4));
            f.push_back(tcp_flags_);
            put16(f, window_);
            put16(f, 0); // checksum
            put16(f, 0); // urgent pointer
            f.insert(f.end(), opts.begin(), opts.end());
            break;
        }
        case l4_type::udp:
        case l4_type::udplite:
            put16(f, sport_);
            put16(f, dport_);
            // UDP length; UDP-Lite checksum coverage (0 = whole datagram).
            put16(f, l4_ == l4_type::udp ? uint16_t(8 + payload_.size()) : 0);
            put16(f, 0);
            break;
        case l4_type::sctp:
            put16(f, sport_);
            put16(f, dport_);
            put32(f, vtag_);
            put32(f, 0);
            break;
        case l4_type::icmp:
        case l4_type::icmpv6:
            f.push_back(icmp_type_);
            f.push_back(icmp_code_);
            put16(f, 0);
            put32(f, icmp_rest_);
            break;
        case l4_type::raw: f = l4_raw_; break;
        case l4_type::none: break;
        }
        f.insert(f.end(), payload_.begin(), payload_.end());
        return f;
    }

    void fill_l4_checksum(frame& l4, uint32_t pseudo) const {
        size_t at;
        switch (l4_) {
        case l4_type::tcp: at = 16; break;
        case l4_type::udp:
        case l4_type::udplite: at = 6; break;
        case l4_type::icmp: at = 2; pseudo = 0; break;
        case l4_type::icmpv6: at = 2; break;
        case l4_type::sctp: {
            uint32_t c = crc32c(l4.data(), l4.size());
            l4[8] = uint8_t(c);
            l4[9] = uint8_t(c >> 8);
            l4[10] = uint8_t(c >> 16);
            l4[11] = uint8_t(c >> 24);
            return;
        }
        default: return;
        }
        if (l4.size() < at + 2) return; // overridden into something too short
        uint16_t c = csum_fold(csum_add(pseudo, l4.data(), l4.size()));
        if (c == 0 && l4_ != l4_type::icmp && l4_ != l4_type::icmpv6) c = 0xffff;
        set16(l4, at, c);
    }

    frame build(size_t& l2_len, bool with_pad = true) const {
        frame f(dst_mac_.begin(), dst_mac_.end());
        f.insert(f.end(), src_mac_.begin(), src_mac_.end());
        for (auto& v : vlans_) {
            put16(f, v.tpid);
            put16(f, v.tci);
        }
        uint16_t et = ethertype_;
        if (!et) {
            et = l3_ == l3_type::v6    ? eth_type::ipv6
                 : l3_ == l3_type::arp ? eth_type::arp
                                       : eth_type::ipv4;
        }
        put16(f, et);
        l2_len = f.size();

        frame l4 = l4_bytes();
        const uint8_t proto = proto_override_ >= 0 ? uint8_t(proto_override_) : l4_proto();
        const bool first_frag = l3_ != l3_type::v4 || frag_offset_ == 0;

        if (l3_ == l3_type::v4) {
            uint32_t pseudo = csum_add(0, src4_.data(), 4);
            pseudo = csum_add(pseudo, dst4_.data(), 4);
            pseudo += proto + uint32_t(l4.size());
            if (first_frag) fill_l4_checksum(l4, pseudo);

            const size_t hlen = 20 + v4_options_.size();
            const size_t h = f.size();
            f.push_back(uint8_t((version_ >= 0 ? version_ : 4) << 4 |
                                (ihl_ >= 0 ? ihl_ & 0x0f : int(hlen / 4))));
            f.push_back(tos_);
            put16(f, total_len_ >= 0 ? uint16_t(total_len_) : uint16_t(hlen + l4.size()));
            put16(f, ip_id_);
            put16(f, uint16_t((df_ ? 0x4000 : 0) | (frag_more_ ? 0x2000 : 0) |
                              (frag_offset_ / 8)));
            f.push_back(ttl_);
            f.push_back(proto);
            put16(f, 0);
            f.insert(f.end(), src4_.begin(), src4_.end());
            f.insert(f.end(), dst4_.begin(), dst4_.end());
            f.insert(f.end(), v4_options_.begin(), v4_options_.end());
            set16(f, h + 10,
                  ip_csum_ >= 0 ? uint16_t(ip_csum_) : csum_fold(csum_add(0, &f[h], hlen)));
        } else if (l3_ == l3_type::v6) {
            // Extension headers, each pointing at the next; the last at the L4 protocol.
            frame exts;
            bool frag_seen = false, l4_here = true;
            for (size_t i = 0; i < ext_.size(); ++i) {
                frame raw = ext_[i].raw;
                uint8_t next = i + 1 < ext_.size() ? ext_[i + 1].type : proto;
                if (!ext_[i].keep_next && !raw.empty()) raw[0] = next;
                if (ext_[i].type == ipproto::fragment && !frag_seen) {
                    frag_seen = true;
                    if (raw.size() >= 4 && ((raw[2] << 8 | raw[3]) & 0xfff8) != 0) l4_here = false;
                }
                exts.insert(exts.end(), raw.begin(), raw.end());
            }
            uint32_t pseudo = csum_add(0, src6_.data(), 16);
            pseudo = csum_add(pseudo, dst6_.data(), 16);
            pseudo += uint32_t(l4.size()) + proto;
            if (l4_here) fill_l4_checksum(l4, pseudo);

            const uint32_t vtf = uint32_t(version_ >= 0 ? version_ : 6) << 28 |
                                 uint32_t(tos_) << 20 | flow_label_;
            put32(f, vtf);
            put16(f, total_len_ >= 0 ? uint16_t(total_len_) : uint16_t(exts.size() + l4.size()));
            f.push_back(ext_.empty() ? proto : ext_[0].type);
            f.push_back(ttl_);
            f.insert(f.end(), src6_.begin(), src6_.end());
            f.insert(f.end(), dst6_.begin(), dst6_.end());
            f.insert(f.end(), exts.begin(), exts.end());
        } else if (l3_ == l3_type::arp) {
            const uint8_t hdr[] = {0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01};
            f.insert(f.end(), std::begin(hdr), std::end(hdr));
            f.insert(f.end(), src_mac_.begin(), src_mac_.end());
            f.insert(f.end(), src4_.begin(), src4_.end());
            f.insert(f.end(), 6, 0);
            f.insert(f.end(), dst4_.begin(), dst4_.end());
        }
        f.insert(f.end(), l4.begin(), l4.end());
        if (with_pad && f.size() < pad_to_) f.resize(pad_to_, 0);
        return f;
    }

    std::array<uint8_t, 6> src_mac_ = parse_mac(mac_a);
    std::array<uint8_t, 6> dst_mac_ = parse_mac(mac_b);
    std::vector<vlan_tag> vlans_;
    uint16_t ethertype_ = 0; // 0: implied by L3

    l3_type l3_ = l3_type::none;
    std::array<uint8_t, 4> src4_{}, dst4_{};
    std::array<uint8_t, 16> src6_{}, dst6_{};
    uint8_t ttl_ = 64;
    uint8_t tos_ = 0;
    uint16_t ip_id_ = 0x1234;
    bool df_ = false;
    bool frag_more_ = false;
    uint16_t frag_offset_ = 0;
    frame v4_options_;
    uint32_t flow_label_ = 0;
    std::vector<ext_header> ext_;

    l4_type l4_ = l4_type::none;
    uint16_t sport_ = 0, dport_ = 0;
    uint8_t tcp_flags_ = 0;
    uint32_t seq_ = 1000, ack_ = 0;
    uint16_t window_ = 65535;
    frame tcp_opts_;
    uint32_t vtag_ = 0;
    uint8_t icmp_type_ = 0, icmp_code_ = 0;
    uint32_t icmp_rest_ = 0;
    uint8_t raw_proto_ = 0;
    frame l4_raw_;
    frame payload_;
    size_t pad_to_ = 0;

    // Overrides; -1 = compute.
    int version_ = -1, ihl_ = -1, total_len_ = -1, ip_csum_ = -1, proto_override_ = -1,
        doff_ = -1;
};

} // namespace sluice::test
