// Packet fate: the one table of reasons a packet leaves the fast path other than by
// being forwarded. Code, CLI, logs and metrics all use these names (STYLE.md habit 8).
//
// Adding a reason: append one X(...) line; the enum, the name table and the counters
// arrays follow. Names are snake_case and never reused for a different meaning.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace sluice {

#define SLUICE_DROP_REASONS(X)                                                                     \
    X(l2_truncated, "frame shorter than its Ethernet/VLAN header")                                 \
    X(vlan_too_deep, "more than two VLAN tags")                                                    \
    X(l3_truncated, "IP header cut short by the end of the frame")                                 \
    X(ipv4_bad_version, "IPv4 ethertype with version != 4")                                        \
    X(ipv4_bad_ihl, "IPv4 IHL < 5 or beyond the frame")                                            \
    X(ipv4_bad_length, "IPv4 total length smaller than the header or larger than the frame")       \
    X(ipv6_bad_version, "IPv6 ethertype with version != 6")                                        \
    X(ipv6_bad_length, "IPv6 payload length larger than the frame")                                \
    X(ipv6_ext_chain, "IPv6 extension header chain too long, looping or truncated")                \
    X(ip_bad_fragment, "fragment with impossible offset/length")                                   \
    X(l4_truncated, "transport header cut short")                                                  \
    X(tcp_bad_offset, "TCP data offset < 5 or beyond the segment")                                 \
    X(policy_drop, "dropped by the ruleset: a DROP rule or a chain policy")                        \
    X(policy_reject, "rejected by the ruleset: a REJECT rule (a reply goes back out the ingress port)") \
    X(ct_table_full, "conntrack table full: new flow refused")                                      \
    X(frag_timeout, "fragment of a datagram not complete within 30 s")                            \
    X(frag_overlap, "fragment overlapping another of its datagram: the whole datagram dropped")   \
    X(frag_duplicate, "exact duplicate of a fragment already held")                               \
    X(frag_no_room, "fragment cache full (fragments held per worker)")                            \
    X(tx_full, "transmit queue full (back-pressure)")                                              \
    X(redirect_ring_full, "software-RSS redirect ring to another worker full")                     \
    X(no_egress, "no egress port configured for the ingress port")                                 \
    X(egress_link_down, "egress port link is down")                                              \
    X(exception_ring_full, "ring to sluice-control full (control not running or too slow): "      \
                           "a frame for the appliance or a LOG copy dropped")

enum class drop_reason : uint8_t {
#define SLUICE_X(name, text) name,
    SLUICE_DROP_REASONS(SLUICE_X)
#undef SLUICE_X
};

inline constexpr std::size_t drop_reason_count = 0
#define SLUICE_X(name, text) +1
    SLUICE_DROP_REASONS(SLUICE_X)
#undef SLUICE_X
    ;

struct drop_reason_info {
    std::string_view name;
    std::string_view text;
};

inline constexpr std::array<drop_reason_info, drop_reason_count> drop_reasons{{
#define SLUICE_X(name, text) {#name, text},
    SLUICE_DROP_REASONS(SLUICE_X)
#undef SLUICE_X
}};

constexpr std::string_view name_of(drop_reason r) noexcept {
    return drop_reasons[static_cast<std::size_t>(r)].name;
}

// Per-reason drop counters; owned by one writer (a worker), read by anyone.
using drop_counters = std::array<uint64_t, drop_reason_count>;

} // namespace sluice
