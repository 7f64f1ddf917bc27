// Traffic specifications of sluice-gen: a stateless stream (`--stream`) or a stateful TCP
// workload (`--tcp`), each written as one line of comma-separated key=value pairs, e.g.
//   tx=west,rx=east,proto=udp,size=64,rate=1m,src=192.0.2.1-192.0.2.100,dport=9-10
//   client=west,server=east,cps=5k,conns=50k,src=192.0.2.1-192.0.2.254,sport=1024-65535
// parse_*() fill a spec from such a line and check everything that can be checked without
// knowing the ports (ranges, sizes against the headers they must hold, address families);
// format_*() write the canonical line back (parse(format(s)) == s).
//
// Flows: a spec's flows are the product of its ranges (src × dst × sport × dport), numbered
// 0..flows-1 in mixed radix with dport varying fastest; packet k of a stream uses flow
// k mod flows, connection k of a TCP workload flow k mod flows. Deterministic, no state.
//
// Thread safety: pure functions; call from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::gen {

enum class l4_kind : uint8_t { udp, tcp, icmp };

// A contiguous range of addresses, `first` in network byte order (IPv4 in bytes 0..3).
struct addr_range {
    bool v6 = false;
    std::array<uint8_t, 16> first{};
    uint32_t count = 1;
    // Address number k (0 <= k < count), network order, into out[0..3] or out[0..15].
    void at(uint32_t k, uint8_t* out) const noexcept;
    bool operator==(const addr_range&) const = default;
};

struct port_range {
    uint16_t first = 0;
    uint32_t count = 1; // first + count - 1 <= 65535
    bool operator==(const port_range&) const = default;
};

using mac_addr = std::array<uint8_t, 6>;

// The Simple IMIX, 7:4:1 of 64, 594 and 1518 byte frames, interleaved.
inline constexpr std::array<uint16_t, 12> imix_sizes{64, 594, 64, 64, 594, 64, 1518, 64, 594, 64, 64, 594};

inline constexpr unsigned signature_len = 16; // see frame_builder.hpp
inline constexpr unsigned min_frame = 64, max_frame = 9000;

struct stream_spec {
    std::string name;               // default s<index>, set by the configuration
    std::string tx, rx;             // port names; rx empty: packets are not expected back
    unsigned ip = 4;                // 4 or 6
    l4_kind proto = l4_kind::udp;
    bool imix = false;
    uint16_t size = 64;             // frame size incl. the 4-byte FCS, when !imix
    uint64_t rate_pps = 0;          // 0: unlimited
    uint64_t count = 0;             // 0: until the run's duration ends
    addr_range src, dst;
    port_range sport, dport;        // ICMP: sport is the echo identifier, dport unused
    int vlan = -1;                  // 802.1Q VLAN id, -1: untagged
    uint8_t ttl = 64;
    uint8_t tcp_flags = 0x10;       // proto=tcp: TCP flags of every packet (default ACK)
    std::optional<mac_addr> smac, dmac; // default: tx port's MAC / rx port's MAC (or broadcast)
    bool operator==(const stream_spec&) const = default;

    uint64_t flows() const noexcept;
    uint16_t header_len() const noexcept;   // Ethernet (+VLAN) + IP + L4 header
    uint16_t min_size() const noexcept;     // headers + signature + FCS
    uint16_t largest_size() const noexcept; // the largest frame it sends
    // Frame size of packet k (imix: the 12-entry sequence, 64 raised to min_size()).
    uint16_t size_of(uint64_t k) const noexcept {
        if (!imix) return size;
        uint16_t s = imix_sizes[k % imix_sizes.size()];
        return s < min_size() ? min_size() : s;
    }
};

struct tcp_spec {
    std::string client, server;     // port names; they must differ
    unsigned ip = 4;
    addr_range src, dst;            // client addresses, server addresses
    port_range sport, dport;
    uint64_t cps = 1000;            // new connections per second
    uint64_t conns = 0;             // connections to open in all; 0: until the duration ends
    uint16_t request = 64;          // client payload bytes (one segment)
    uint16_t response = 256;        // server payload bytes (one segment; 0: a bare ACK)
    uint32_t timeout_ms = 1000;     // a connection not finished by then is lost
    int vlan = -1;
    bool operator==(const tcp_spec&) const = default;

    uint64_t flows() const noexcept;
    uint16_t header_len() const noexcept;
};

inline constexpr uint64_t max_tcp_flows = 1u << 22;

// "" on success, else one line naming the key and the value.
std::string parse_stream_spec(std::string_view text, stream_spec& out);
std::string parse_tcp_spec(std::string_view text, tcp_spec& out);
std::string format_stream_spec(const stream_spec& s);
std::string format_tcp_spec(const tcp_spec& s);

std::string format_addr(const addr_range& r, uint32_t k);
const char* l4_name(l4_kind k);

} // namespace sluice::gen
