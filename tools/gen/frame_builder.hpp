// Frame building for sluice-gen: the bytes of every packet it sends, written straight into
// the caller's buffer (an mbuf's data area) without allocating.
//
// A stateless stream's frames are Ethernet [802.1Q] IPv4|IPv6 UDP|TCP|ICMP(v6 echo request)
// then a 16-byte signature, then fill up to the frame size (size - 4 bytes are written; the
// NIC adds the FCS). The signature lets the receiver attribute a packet to its stream and
// measure its latency:
//     0 magic 0x5c1e (BE 16)   2 stream index (BE 16)   4 sequence number (BE 32)
//     8 TSC when built (host order, 64; sender and receiver are one process)
// Fill byte at frame offset i is uint8_t(i) (write_fill). Buffers are expected to hold the
// fill already beyond the first `fill_rewrite_end` bytes (the TX mbuf pool is filled once
// at start; a frame of any stream writes its headers and signature only below that mark,
// and build() rewrites the fill below it), so a packet costs a few dozen byte writes; the L4
// checksum adds a precomputed sum of the fill.
//
// TCP workload frames (tcp_frames) carry no signature: headers, then `payload` fill bytes.
//
// Thread safety: the classes are immutable after construction; build() may run on any
// number of threads at once.
#pragma once

#include "stream_spec.hpp"

#include "packet.hpp"

#include <cstdint>
#include <optional>

namespace sluice::gen {

inline constexpr uint16_t signature_magic = 0x5c1e;
// Largest headers (Ethernet + VLAN + IPv6 + TCP) plus the signature.
inline constexpr uint32_t fill_rewrite_end = 18 + 40 + 20 + signature_len;

struct signature {
    uint16_t stream;
    uint32_t seq;
    uint64_t tsc;
};

// Fill buf[from..to) with the pattern (byte i = uint8_t(i)).
void write_fill(uint8_t* buf, uint32_t from, uint32_t to) noexcept;

// The signature at the start of an L4 payload of `len` bytes, if it is one.
std::optional<signature> read_signature(const uint8_t* payload, uint32_t len) noexcept;

// The signature of a frame of `len` bytes laid out as stream_frames builds them (Ethernet
// [802.1Q] IPv4 without options or IPv6 without extension headers, then UDP, TCP, ICMP or
// ICMPv6), found without the full packet parser: the receiver's per-packet fast path.
std::optional<signature> frame_signature(const uint8_t* frame, uint32_t len) noexcept;

// Flow number -> indices into the ranges (dport varies fastest).
struct flow_indices {
    uint32_t src, dst, sport, dport;
};
flow_indices split_flow(uint64_t flow, uint32_t n_src, uint32_t n_dst, uint32_t n_sport, uint32_t n_dport) noexcept;

// The flow indices of packets 0, 1, 2 ... of a stream (split_flow(k mod flows)), advanced
// by one packet without dividing.
class flow_cursor {
public:
    explicit flow_cursor(const stream_spec& s) noexcept
        : n_{s.src.count, s.dst.count, s.sport.count, s.dport.count} {}
    const flow_indices& operator*() const noexcept { return f_; }
    void advance() noexcept {
        if (++f_.dport < n_.dport) return;
        f_.dport = 0;
        if (++f_.sport < n_.sport) return;
        f_.sport = 0;
        if (++f_.dst < n_.dst) return;
        f_.dst = 0;
        if (++f_.src < n_.src) return;
        f_.src = 0;
    }

private:
    flow_indices n_, f_{0, 0, 0, 0};
};

class stream_frames {
public:
    // dirty_end: how far other frames built into the same buffers may have overwritten the
    // fill (the longest headers + signature among them; at most fill_rewrite_end).
    stream_frames(const stream_spec& spec, uint16_t stream_index, const mac_addr& smac, const mac_addr& dmac,
                  uint32_t dirty_end = fill_rewrite_end);

    // Packet k of the stream, of flow f (split_flow(k mod flows)), into buf (room for
    // spec.largest_size() - 4 bytes, holding the fill beyond dirty_end). Returns the frame
    // length written (size - 4).
    uint16_t build(uint64_t k, const flow_indices& f, uint64_t tsc, uint8_t* buf) const noexcept;

    const stream_spec& spec() const noexcept { return spec_; }

private:
    stream_spec spec_;
    uint16_t index_;
    uint8_t header_[96];        // Ethernet..L4 (at most 18 + 40 + 20) with the fixed fields set
    uint16_t l3_off_, l4_off_, payload_off_;
    uint32_t rewrite_end_;      // the fill below this is rewritten by build()
    uint8_t proto_;
    uint32_t ip_sum_;           // raw sums of the IPv4 and L4 headers' fixed fields
    uint32_t l4_fixed_sum_;
    uint32_t src4_ = 0, dst4_ = 0; // IPv4: the ranges' first addresses, host order
    uint32_t fill_sum_[imix_sizes.size()]; // raw 16-bit sums of the fill for each size slot
};

class tcp_frames {
public:
    tcp_frames(const tcp_spec& spec, const mac_addr& client_mac, const mac_addr& server_mac);

    // One segment of flow `flow`, client -> server when from_client, else server -> client,
    // with `payload` fill bytes. Returns the frame length. buf needs header_len() + payload.
    uint16_t build(bool from_client, uint64_t flow, uint32_t seq, uint32_t ack, uint8_t flags,
                   uint16_t payload, uint8_t* buf) const noexcept;

    // The flow a parsed frame belongs to, for a segment travelling client -> server
    // (from_client) or back; nullopt if its addresses/ports are not the workload's.
    std::optional<uint64_t> flow_of(const packet_meta& m, bool from_client) const noexcept;

    const tcp_spec& spec() const noexcept { return spec_; }

private:
    tcp_spec spec_;
    mac_addr client_mac_, server_mac_;
};

} // namespace sluice::gen
