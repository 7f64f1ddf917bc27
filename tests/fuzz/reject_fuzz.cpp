// Fuzz target for lib/reject.cpp: the input is one Ethernet frame. If it parses, every
// reject kind is built for it into a fixed buffer, twice: once as given (the transport
// checksum is almost always wrong, so mostly "no reply") and once with the transport
// checksum repaired so the builders themselves run. The input is also offered as the first
// segment of a jumbo frame. Beyond "no crash, no over-read" (ASan), each reply must fit
// its buffer, parse, be an IPv4/IPv6 reply of the right family and protocol with the
// addresses swapped, and carry valid checksums; a smaller buffer must get no reply. A
// violation traps so the fuzzer records the input.
//
// Seeds: tests/fuzz/corpus/reject/ (written by the DISABLED_write_fuzz_corpus test in
// tests/unit/reject_test.cpp).
#include "packet.hpp"
#include "reject.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

using namespace sluice;

namespace {

inline void require(bool c) {
    if (!c) __builtin_trap();
}

constexpr reject_kind all_kinds[] = {
    reject_kind::icmp_net_unreachable,  reject_kind::icmp_host_unreachable,
    reject_kind::icmp_port_unreachable, reject_kind::icmp_proto_unreachable,
    reject_kind::icmp_net_prohibited,   reject_kind::icmp_host_prohibited,
    reject_kind::icmp_admin_prohibited, reject_kind::tcp_reset,
    reject_kind::icmp6_no_route,        reject_kind::icmp6_adm_prohibited,
    reject_kind::icmp6_addr_unreachable, reject_kind::icmp6_port_unreachable,
    reject_kind::icmp6_policy_fail,     reject_kind::icmp6_reject_route,
};

uint16_t load16(const uint8_t* p) { return uint16_t((p[0] << 8) | p[1]); }

uint32_t sum(uint32_t s, const uint8_t* p, size_t n) {
    for (size_t i = 0; i + 1 < n; i += 2) s += load16(p + i);
    if (n & 1) s += uint32_t(p[n - 1]) << 8;
    return s;
}
uint16_t fold(uint32_t s) {
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return uint16_t(s);
}

// Sum of the pseudo-header (if the protocol has one) and the transport bytes.
uint32_t l4_sum(const uint8_t* f, const packet_meta& m, uint32_t end) {
    const uint8_t* ip = f + m.l3_off;
    const uint32_t len = end - m.l4_off;
    uint32_t s = 0;
    if (m.l3 == l3_kind::ipv4) {
        if (m.l4_proto != 1) s = sum(0, ip + 12, 8) + m.l4_proto + len;
    } else {
        s = sum(0, ip + 8, 32) + (len >> 16) + (len & 0xffff) + m.l4_proto;
    }
    return sum(s, f + m.l4_off, len);
}

// Make the transport checksum of `f` valid where build_reject would check it.
void repair_checksum(std::vector<uint8_t>& f, const packet_meta& m) {
    if (m.frag_flags & frag::is_fragment) return;
    const uint32_t end = uint32_t(m.l3_off) + m.ip_total_len;
    if (end > f.size()) return;
    size_t at;
    switch (m.l4_proto) {
    case 6: at = 16; break;
    case 17: at = 6; break;
    case 1: at = 2; break;
    case 58: at = 2; break;
    default: return;
    }
    if (m.l4_off + at + 2 > end) return;
    f[m.l4_off + at] = f[m.l4_off + at + 1] = 0;
    uint16_t c = uint16_t(~fold(l4_sum(f.data(), m, end)));
    if (c == 0 && m.l4_proto == 17) c = 0xffff;
    f[m.l4_off + at] = uint8_t(c >> 8);
    f[m.l4_off + at + 1] = uint8_t(c);
}

void check_reply(const uint8_t* in, uint32_t in_len, const packet_meta& om, reject_kind k,
                 const uint8_t* r, size_t n) {
    require(n <= reject_max_frame_len);
    packet_meta rm;
    parse_result pr = parse_packet(r, uint32_t(n), uint32_t(n), rm);
    require(pr.ok);
    require(rm.l3 == om.l3 && rm.l2_len == om.l2_len && rm.n_vlans == om.n_vlans);
    require(std::memcmp(r, in + 6, 6) == 0 && std::memcmp(r + 6, in, 6) == 0);
    require(std::memcmp(r + 12, in + 12, om.l2_len - 12u) == 0);
    require(std::memcmp(rm.src.b, om.dst.b, 16) == 0 && std::memcmp(rm.dst.b, om.src.b, 16) == 0);
    require(size_t(rm.l3_off) + rm.ip_total_len == n);
    require(rm.ttl == 64 && !(rm.frag_flags & frag::is_fragment));
    if (rm.l3 == l3_kind::ipv4) require(fold(sum(0, r + rm.l3_off, rm.l3_len)) == 0xffff);
    require(fold(l4_sum(r, rm, uint32_t(n))) == 0xffff);
    if (k == reject_kind::tcp_reset) {
        require(rm.l4_proto == 6 && rm.l4_len == 20 && rm.payload_len == 0);
        require(rm.sport == om.dport && rm.dport == om.sport);
        require(rm.tcp_flags == tcp_flag::rst || rm.tcp_flags == (tcp_flag::rst | tcp_flag::ack));
        require(!(om.tcp_flags & tcp_flag::rst));
    } else {
        const bool v6 = rm.l3 == l3_kind::ipv6;
        require(rm.l4_proto == (v6 ? 58 : 1) && rm.icmp_type == (v6 ? 1 : 3));
        require(rm.ip_total_len <= (v6 ? 1280u : 576u));
        const size_t quoted = n - rm.l4_off - 8;
        require(quoted <= om.ip_total_len && om.l3_off + quoted <= in_len);
        require(std::memcmp(r + rm.l4_off + 8, in + om.l3_off, quoted) == 0);
    }
}

void run(const uint8_t* in, uint32_t in_len, uint32_t pkt_len) {
    packet_meta m;
    if (!parse_packet(in, in_len, pkt_len, m).ok) return;
    uint8_t out[reject_max_frame_len];
    for (reject_kind k : all_kinds) {
        const size_t n = build_reject(in, in_len, m, k, out, sizeof out);
        if (n == 0) continue;
        check_reply(in, in_len, m, k, out, n);
        // Deterministic, and one byte short of room means no reply.
        uint8_t again[reject_max_frame_len];
        require(build_reject(in, in_len, m, k, again, n) == n);
        require(std::memcmp(out, again, n) == 0);
        require(build_reject(in, in_len, m, k, again, n - 1) == 0);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 65535) return 0;
    // An exact-size copy: reads past the end are ASan errors even under the driver.
    std::vector<uint8_t> f(data, data + size);
    const uint32_t n = uint32_t(size);
    run(f.data(), n, n);
    run(f.data(), n, 65535);
    packet_meta m;
    if (parse_packet(f.data(), n, n, m).ok && (m.l3 == l3_kind::ipv4 || m.l3 == l3_kind::ipv6)) {
        repair_checksum(f, m);
        run(f.data(), n, n);
    }
    return 0;
}
