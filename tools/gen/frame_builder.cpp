// See frame_builder.hpp. Checksums are RFC 1071 one's-complement sums of big-endian 16-bit
// words; every summed region starts at an even offset from the start of its header, so
// partial sums (pseudo-header, header, signature, fill) add up.
#include "frame_builder.hpp"

#include <algorithm>
#include <cstring>

namespace sluice::gen {

namespace {

constexpr uint8_t proto_tcp = 6, proto_udp = 17, proto_icmp = 1, proto_icmp6 = 58;

inline uint32_t raw_sum(const uint8_t* p, uint32_t len, uint32_t sum = 0) noexcept {
    for (; len >= 2; p += 2, len -= 2) sum += uint32_t(p[0]) << 8 | p[1];
    if (len) sum += uint32_t(p[0]) << 8;
    return sum;
}

inline uint16_t fold(uint64_t sum) noexcept {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(~sum);
}

inline void put16(uint8_t* p, uint16_t v) noexcept {
    p[0] = uint8_t(v >> 8);
    p[1] = uint8_t(v);
}

inline void put32(uint8_t* p, uint32_t v) noexcept {
    p[0] = uint8_t(v >> 24);
    p[1] = uint8_t(v >> 16);
    p[2] = uint8_t(v >> 8);
    p[3] = uint8_t(v);
}

// The two 16-bit halves of a host-order value, summed.
inline uint32_t sum32(uint32_t v) noexcept { return (v >> 16) + (v & 0xffff); }

inline uint32_t get32(const uint8_t* p) noexcept {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

inline uint16_t get16(const uint8_t* p) noexcept { return uint16_t(p[0] << 8 | p[1]); }

// Ethernet (+VLAN) and the fixed part of the IP header; returns the L3 offset.
uint16_t write_l2_l3(uint8_t* h, const mac_addr& dmac, const mac_addr& smac, int vlan, unsigned ip,
                     uint8_t proto, uint8_t ttl) {
    std::memcpy(h, dmac.data(), 6);
    std::memcpy(h + 6, smac.data(), 6);
    uint16_t off = 12;
    if (vlan >= 0) {
        put16(h + off, 0x8100);
        put16(h + off + 2, uint16_t(vlan));
        off += 4;
    }
    put16(h + off, ip == 6 ? 0x86dd : 0x0800);
    off += 2;
    uint8_t* l3 = h + off;
    if (ip == 4) {
        std::memset(l3, 0, 20);
        l3[0] = 0x45;
        l3[8] = ttl;
        l3[9] = proto;
    } else {
        std::memset(l3, 0, 40);
        l3[0] = 0x60;
        l3[6] = proto;
        l3[7] = ttl;
    }
    return off;
}

// Lengths, addresses, IPv4 id and header checksum; returns the pseudo-header sum.
uint32_t finish_l3(uint8_t* l3, unsigned ip, const uint8_t* src, const uint8_t* dst, uint16_t l4_len,
                   uint16_t ip_id, uint8_t proto) noexcept {
    if (ip == 4) {
        put16(l3 + 2, uint16_t(20 + l4_len));
        put16(l3 + 4, ip_id);
        std::memcpy(l3 + 12, src, 4);
        std::memcpy(l3 + 16, dst, 4);
        put16(l3 + 10, 0);
        put16(l3 + 10, fold(raw_sum(l3, 20)));
        return raw_sum(l3 + 12, 8) + proto + l4_len;
    }
    put16(l3 + 4, l4_len);
    std::memcpy(l3 + 8, src, 16);
    std::memcpy(l3 + 24, dst, 16);
    return raw_sum(l3 + 8, 32) + proto + l4_len;
}

// Offset of `a` from the range's first address when inside the range (128-bit arithmetic
// on two halves; ranges hold fewer than 2^32 addresses).
std::optional<uint32_t> offset_in(const addr_range& r, const ip_addr& a) noexcept {
    const uint8_t* p = r.v6 ? a.b : a.b + 12;
    unsigned len = r.v6 ? 16 : 4;
    uint64_t ph = 0, pl = 0, fh = 0, fl = 0;
    for (unsigned i = 0; i < len; ++i) {
        bool low = len - i <= 8;
        (low ? pl : ph) = (low ? pl : ph) << 8 | p[i];
        (low ? fl : fh) = (low ? fl : fh) << 8 | r.first[i];
    }
    if (ph < fh || (ph == fh && pl < fl)) return std::nullopt;
    uint64_t dl = pl - fl, dh = ph - fh - (pl < fl ? 1 : 0);
    if (dh != 0 || dl >= r.count) return std::nullopt;
    return uint32_t(dl);
}

} // namespace

void write_fill(uint8_t* buf, uint32_t from, uint32_t to) noexcept {
    for (uint32_t i = from; i < to; ++i) buf[i] = uint8_t(i);
}

std::optional<signature> read_signature(const uint8_t* p, uint32_t len) noexcept {
    if (len < signature_len || get16(p) != signature_magic) return std::nullopt;
    signature s;
    s.stream = get16(p + 2);
    s.seq = uint32_t(p[4]) << 24 | uint32_t(p[5]) << 16 | uint32_t(p[6]) << 8 | p[7];
    std::memcpy(&s.tsc, p + 8, 8);
    return s;
}

std::optional<signature> frame_signature(const uint8_t* p, uint32_t len) noexcept {
    uint32_t off = 12;
    if (len < off + 2) return std::nullopt;
    uint16_t type = get16(p + off);
    if (type == 0x8100) {
        off += 4;
        if (len < off + 2) return std::nullopt;
        type = get16(p + off);
    }
    off += 2;
    uint8_t proto;
    if (type == 0x0800) {
        if (len < off + 20 || p[off] != 0x45 || (get16(p + off + 6) & 0x3fff) != 0) return std::nullopt;
        proto = p[off + 9];
        off += 20;
    } else if (type == 0x86dd) {
        if (len < off + 40) return std::nullopt;
        proto = p[off + 6];
        off += 40;
    } else {
        return std::nullopt;
    }
    if (proto == proto_tcp) {
        if (len < off + 20) return std::nullopt;
        off += (p[off + 12] >> 4) * 4u;
    } else if (proto == proto_udp || proto == proto_icmp || proto == proto_icmp6) {
        off += 8;
    } else {
        return std::nullopt;
    }
    if (off > len) return std::nullopt;
    return read_signature(p + off, len - off);
}

flow_indices split_flow(uint64_t f, uint32_t n_src, uint32_t n_dst, uint32_t n_sport, uint32_t n_dport) noexcept {
    flow_indices x;
    x.dport = uint32_t(f % n_dport);
    f /= n_dport;
    x.sport = uint32_t(f % n_sport);
    f /= n_sport;
    x.dst = uint32_t(f % n_dst);
    x.src = uint32_t(f / n_dst % n_src);
    return x;
}

stream_frames::stream_frames(const stream_spec& spec, uint16_t stream_index, const mac_addr& smac,
                             const mac_addr& dmac, uint32_t dirty_end)
    : spec_(spec), index_(stream_index) {
    std::memset(header_, 0, sizeof header_);
    uint8_t proto = spec.proto == l4_kind::tcp ? proto_tcp
                    : spec.proto == l4_kind::udp ? proto_udp
                    : spec.ip == 6               ? proto_icmp6
                                                 : proto_icmp;
    l3_off_ = write_l2_l3(header_, dmac, smac, spec.vlan, spec.ip, proto, spec.ttl);
    l4_off_ = uint16_t(l3_off_ + (spec.ip == 6 ? 40 : 20));
    uint8_t* l4 = header_ + l4_off_;
    if (spec.proto == l4_kind::tcp) {
        l4[12] = 5 << 4;
        l4[13] = spec.tcp_flags;
        put16(l4 + 14, 65535);
        payload_off_ = uint16_t(l4_off_ + 20);
    } else {
        if (spec.proto == l4_kind::icmp) l4[0] = spec.ip == 6 ? 128 : 8; // echo request
        payload_off_ = uint16_t(l4_off_ + 8);
    }
    rewrite_end_ = std::min(dirty_end, fill_rewrite_end);
    proto_ = proto;
    // The template's sums: lengths, id, addresses, ports, sequence and checksums are 0 in it.
    ip_sum_ = spec.ip == 4 ? raw_sum(header_ + l3_off_, 20) : 0;
    l4_fixed_sum_ = raw_sum(l4, payload_off_ - l4_off_);
    if (spec.ip == 4) {
        uint8_t a[4];
        spec.src.at(0, a);
        src4_ = get32(a);
        spec.dst.at(0, a);
        dst4_ = get32(a);
    }
    // The fill of every size slot, summed once (it starts after the signature, at an even
    // offset from the L4 header).
    uint8_t frame[max_frame];
    write_fill(frame, 0, max_frame);
    uint32_t fill_from = payload_off_ + signature_len;
    for (unsigned i = 0; i < imix_sizes.size(); ++i) {
        uint32_t len = spec.size_of(i) - 4u;
        fill_sum_[i] = raw_sum(frame + fill_from, len - fill_from);
    }
}

uint16_t stream_frames::build(uint64_t k, const flow_indices& f, uint64_t tsc, uint8_t* buf) const noexcept {
    // The checksums are summed from the values written, not read back from buf: reading
    // bytes just stored in pieces stalls on store forwarding.
    const stream_spec& s = spec_;
    uint16_t len = uint16_t(s.size_of(k) - 4);
    std::memcpy(buf, header_, payload_off_);
    uint8_t* l3 = buf + l3_off_;
    uint8_t* l4 = buf + l4_off_;
    uint16_t l4_len = uint16_t(len - l4_off_);
    uint64_t pseudo;
    if (s.ip == 4) {
        uint32_t src = src4_ + f.src, dst = dst4_ + f.dst;
        put32(l3 + 12, src);
        put32(l3 + 16, dst);
        put16(l3 + 2, uint16_t(20 + l4_len));
        put16(l3 + 4, uint16_t(k));
        uint32_t addrs = sum32(src) + sum32(dst);
        put16(l3 + 10, fold(uint64_t(ip_sum_) + 20u + l4_len + uint16_t(k) + addrs));
        pseudo = addrs + proto_ + l4_len;
    } else {
        put16(l3 + 4, l4_len);
        s.src.at(f.src, l3 + 8);
        s.dst.at(f.dst, l3 + 24);
        pseudo = raw_sum(l3 + 8, 32) + proto_ + l4_len;
    }

    uint8_t* sig = buf + payload_off_;
    // Other streams' (longer) headers may have overwritten the fill of this buffer here.
    write_fill(buf, payload_off_ + signature_len, std::min<uint32_t>(len, rewrite_end_));
    put16(sig, signature_magic);
    put16(sig + 2, index_);
    put32(sig + 4, uint32_t(k));
    std::memcpy(sig + 8, &tsc, 8);
    uint64_t sum = fill_sum_[s.imix ? k % imix_sizes.size() : 0] + l4_fixed_sum_ + signature_magic + index_ +
                   sum32(uint32_t(k));
    for (unsigned i = 0; i < 8; i += 2) sum += uint32_t(sig[8 + i]) << 8 | sig[8 + i + 1];

    uint16_t sport = uint16_t(s.sport.first + f.sport), dport = uint16_t(s.dport.first + f.dport);
    switch (s.proto) {
    case l4_kind::udp:
        put16(l4, sport);
        put16(l4 + 2, dport);
        put16(l4 + 4, l4_len);
        sum += pseudo + sport + dport + l4_len;
        put16(l4 + 6, fold(sum) ? fold(sum) : 0xffff);
        break;
    case l4_kind::tcp:
        put16(l4, sport);
        put16(l4 + 2, dport);
        put32(l4 + 4, uint32_t(k));
        sum += pseudo + sport + dport + sum32(uint32_t(k));
        put16(l4 + 16, fold(sum));
        break;
    case l4_kind::icmp:
        put16(l4 + 4, sport);        // identifier
        put16(l4 + 6, uint16_t(k)); // sequence
        sum += sport + uint16_t(k) + (s.ip == 6 ? pseudo : 0);
        put16(l4 + 2, fold(sum));
        break;
    }
    return len;
}

tcp_frames::tcp_frames(const tcp_spec& spec, const mac_addr& client_mac, const mac_addr& server_mac)
    : spec_(spec), client_mac_(client_mac), server_mac_(server_mac) {}

uint16_t tcp_frames::build(bool from_client, uint64_t flow, uint32_t seq, uint32_t ack, uint8_t flags,
                           uint16_t payload, uint8_t* buf) const noexcept {
    const tcp_spec& s = spec_;
    uint16_t l3 = write_l2_l3(buf, from_client ? server_mac_ : client_mac_, from_client ? client_mac_ : server_mac_,
                              s.vlan, s.ip, proto_tcp, 64);
    uint16_t l4_off = uint16_t(l3 + (s.ip == 6 ? 40 : 20));
    auto f = split_flow(flow, s.src.count, s.dst.count, s.sport.count, s.dport.count);
    uint8_t client[16], server[16];
    s.src.at(f.src, client);
    s.dst.at(f.dst, server);
    uint16_t cport = uint16_t(s.sport.first + f.sport), sport = uint16_t(s.dport.first + f.dport);
    uint16_t l4_len = uint16_t(20 + payload);
    uint32_t pseudo = finish_l3(buf + l3, s.ip, from_client ? client : server, from_client ? server : client, l4_len,
                                uint16_t(seq), proto_tcp);
    uint8_t* l4 = buf + l4_off;
    put16(l4, from_client ? cport : sport);
    put16(l4 + 2, from_client ? sport : cport);
    put32(l4 + 4, seq);
    put32(l4 + 8, ack);
    l4[12] = 5 << 4;
    l4[13] = flags;
    put16(l4 + 14, 65535);
    put16(l4 + 16, 0);
    put16(l4 + 18, 0);
    uint32_t data = uint32_t(l4_off) + 20;
    write_fill(buf, data, data + payload);
    put16(l4 + 16, fold(uint64_t(pseudo) + raw_sum(l4, l4_len)));
    return uint16_t(data + payload);
}

std::optional<uint64_t> tcp_frames::flow_of(const packet_meta& m, bool from_client) const noexcept {
    const tcp_spec& s = spec_;
    if (m.l3 != (s.ip == 6 ? l3_kind::ipv6 : l3_kind::ipv4) || m.l4_proto != proto_tcp) return std::nullopt;
    const ip_addr& client = from_client ? m.src : m.dst;
    const ip_addr& server = from_client ? m.dst : m.src;
    uint16_t cport = from_client ? m.sport : m.dport, sport = from_client ? m.dport : m.sport;
    auto si = offset_in(s.src, client);
    auto di = offset_in(s.dst, server);
    if (!si || !di) return std::nullopt;
    uint32_t cp = uint16_t(cport - s.sport.first), sp = uint16_t(sport - s.dport.first);
    if (cp >= s.sport.count || sp >= s.dport.count) return std::nullopt;
    return ((uint64_t(*si) * s.dst.count + *di) * s.sport.count + cp) * s.dport.count + sp;
}

} // namespace sluice::gen
