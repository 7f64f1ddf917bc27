// REJECT replies: the frame iptables' REJECT target sends back for a rejected packet, built
// the way the Linux kernel builds it (net/ipv4/netfilter/nf_reject_ipv4.c nf_send_reset /
// nf_send_unreach -> icmp_send, net/ipv6/netfilter/nf_reject_ipv6.c nf_send_reset6 /
// nf_send_unreach6 -> icmpv6_send), for a bump-in-the-wire that transmits the reply back
// out of the port the packet came in on.
//
// What the reply looks like:
//  - L2: the original Ethernet header with source and destination MAC swapped (the reply
//    goes to whoever sent the packet, as the kernel's bridged REJECT path does); VLAN tags
//    are kept, same order, same PCP/DEI. Frames are not padded to 60 bytes (the NIC does).
//  - tcp-reset (both families): IP src/dst and ports swapped; if the segment had ACK, the
//    RST carries seq = its ack_seq and no ACK; otherwise seq 0, ACK set, ack_seq = seq +
//    SYN + FIN + payload length. Window 0, no options. IPv4: TOS 0, id 0, DF, TTL 64.
//    IPv6: traffic class 0, flow label 0, hop limit 64.
//  - ICMP destination unreachable (IPv4 kinds on IPv4 packets): type 3 with the kind's
//    code, quoting the original datagram from its IP header on, cut so the reply's IP
//    length is at most 576 bytes (icmp_send). IP header as icmp_send makes it: TOS =
//    (original TOS & 0x1e) | 0xc0, DF clear, TTL 64, id 0, no options.
//  - ICMPv6 destination unreachable (IPv6 kinds on IPv6 packets): type 1 with the kind's
//    code, quoting the original so the reply is at most 1280 bytes (icmpv6_send).
//
// When nothing is sent (returns 0), mirroring the kernel: a tcp-reset for a non-TCP packet
// or for a RST; anything for a non-first fragment; an ICMP error in reply to an ICMP error
// (IPv4 types 3, 4, 5, 11, 12 and unknown types > 18; ICMPv6 types < 128); source or
// destination not a single unicast host (IPv4: 0/8, 127/8, 224/4, 255.255.255.255;
// IPv6: ::, ::1, ff00::/8, ::ffff:0:0/96) or an Ethernet group address on either side
// (the kernel's pkt_type != PACKET_HOST / martian checks); a transport checksum that does
// not verify (TCP, UDP with a checksum, ICMP, ICMPv6 — the kernel's nf_ip_checksum); an
// IPv4 kind on an IPv6 packet or the reverse; a packet that is not IPv4/IPv6; `out_cap`
// too small for the reply.
//
// Deviations from the kernel, each forced by having no IP stack of our own:
//  - Source address of ICMP errors: the kernel uses its own address on the egress
//    interface; a bump-in-the-wire has none, so the reply comes from the original
//    destination address (as a host at that address would answer). TCP resets come from
//    the original destination in the kernel too.
//  - No routing: TTL/hop limit are the defaults (64), not the route's; there is no rate
//    limiting (icmp_ratelimit / icmpv6_global_allow) — callers that want it meter replies
//    themselves; IPv4 options (record route, source route) are not echoed.
//  - IPv4 id is always 0 and the IPv6 flow label 0; the kernel picks an id for ICMP
//    errors (sent without DF) and may auto-generate flow labels.
//  - Checksums are verified only when the whole datagram lies in `frame` and it is not a
//    fragment; otherwise the packet is trusted, as the kernel trusts CHECKSUM_UNNECESSARY
//    from the NIC. Other protocols (GRE, ESP, SCTP, UDP-Lite, unknown) are not checked;
//    the kernel skips most of them too (nf_reject_verify_csum) and sums unknown ones only
//    when the NIC gave no checksum help. UDP with checksum 0 gets a reply, as in kernels
//    since nf_reject_verify_csum learnt about it.
//  - Fragments: for a first fragment (the kernel reassembles first when conntrack is
//    loaded) the RST's ack_seq counts only this fragment's payload, and an ICMP error
//    quotes only what is in `frame`.
//
// Lifecycle: no state. Thread safety: a pure function of its arguments; call from any
// thread. No allocation, exceptions, locks or logging; safe on the fast path.
#pragma once

#include "packet.hpp"
#include "ruleset.hpp" // reject_kind

#include <cstddef>
#include <cstdint>

namespace sluice {

// The longest reply build_reject can produce: Ethernet + two VLAN tags + an ICMPv6 error
// of IPV6_MIN_MTU bytes. An `out_cap` of at least this always suffices.
inline constexpr size_t reject_max_frame_len = 14 + 2 * 4 + 1280;

// Build into `out` the reply the kernel's REJECT --reject-with `kind` would send for the
// frame `frame[0, frame_len)`, which `m` describes (the result of a successful
// parse_packet of that frame). Returns the reply's length in bytes, or 0 when the kernel
// would send nothing (see the file comment) or the reply does not fit in `out_cap`. Never
// reads past `frame_len` even if `m` does not match the frame; `out` must not overlap
// `frame`. Thread safety: pure; any thread.
size_t build_reject(const uint8_t* frame, uint32_t frame_len, const packet_meta& m,
                    reject_kind kind, uint8_t* out, size_t out_cap) noexcept;

} // namespace sluice
