// packet_filter: one worker's stateful filter stage. For a burst of parsed packets it runs
// connection tracking, the policy's FORWARD classifier and the fragment cache, in the
// order netfilter does (conntrack lookup and update → filter hook → confirm), and returns
// each packet's fate: forward, drop (with its named reason) or reject (with the kind of
// reply to send back out of the ingress port).
//
//   conntrack.classify(burst)            state NEW/ESTABLISHED/RELATED/INVALID/UNTRACKED
//   per packet: fate tracked  → classifier (skipped for ESTABLISHED when the policy proves
//                                it would accept them: classifier::established_bypass_safe)
//               fate table_full → drop ct_table_full
//   conntrack.commit(burst, accepted)     NEW flows accepted by the ruleset get an entry,
//                                         stamped with the policy generation that judged it
//   deferred packets (their flow is created by an earlier packet of the same burst) go
//   round again, in order, until none is left.
// IP fragments do not go through this directly: they are held in the fragment cache
// (action `hold`: the caller keeps nothing) until their datagram is complete; then the
// datagram's first fragment is judged as above and every fragment of it is handed back
// through released() with that verdict — as netfilter judges the reassembled datagram.
// Fragments that time out, overlap or find no room are handed back to be dropped.
// Frames that are not IPv4/IPv6 (ARP, LLDP, ...) are forwarded untouched: iptables never
// sees them (a bridge hands only IP to br_netfilter). In monitor mode every would-be drop
// is counted (would_drop[reason], and the rule counters) and the packet is forwarded, its
// flow tracked as if accepted; in bypass mode nothing is looked at.
//
// Lifecycle: built on the control thread before the worker starts (allocates the flow
// table and fragment cache); afterwards used only by its worker. Thread safety: one
// packet_filter per worker; run() never allocates, locks, throws or logs.
#pragma once

#include "conntrack.hpp"
#include "counter.hpp"
#include "frag_cache.hpp"
#include "packet.hpp"
#include "packet_fate.hpp"
#include "policy.hpp"

#include <array>
#include <memory>
#include <cstdint>
#include <span>

namespace sluice {

enum class filter_action : uint8_t { forward, drop, reject, hold };

// What the caller knows about each packet besides its parsed headers.
struct filter_input {
    const uint8_t* frame = nullptr; // first segment: for ICMP error quotes
    uint32_t frame_len = 0;         // bytes available at `frame`
    uint32_t wire_len = 0;          // whole frame length (rule byte counters)
    const uint8_t* src_mac = nullptr; // 6 bytes, for -m mac; null if not Ethernet
    void* cookie = nullptr;         // the caller's handle on the packet (held fragments)
    uint8_t in_port = port_none;    // classifier port index (-i)
    uint8_t out_port = port_none;   // classifier port index (-o)
};

struct filter_decision {
    filter_action action = filter_action::forward;
    drop_reason reason = drop_reason::policy_drop; // when action == drop
    reject_kind reject = reject_kind::icmp_port_unreachable; // when action == reject
    // The first LOG/NFLOG rule the packet matched (classifier global index in its family's
    // ruleset), or no_rule. Set whatever the action; the fast path hands a copy of such a
    // packet to sluice-control (fastpath/exception.hpp).
    uint32_t log_rule = no_rule;
};

// A held fragment handed back with its datagram's fate. `meta` (the first fragment's
// parse, for a REJECT reply; null for the other fragments) stays valid until the next
// run()/expire().
struct filter_release {
    void* cookie;
    filter_decision decision;
    const packet_meta* meta;
};

struct filter_counters {
    std::array<counter, drop_reason_count> would_drop; // monitor mode
    counter classified;           // packets the classifier ran on
    counter established_bypass;   // ESTABLISHED packets accepted without classification
    counter not_ip;               // forwarded without filtering (not IPv4/IPv6)
};

class packet_filter {
public:
    static constexpr uint32_t max_burst = 256;

    // frag_datagrams: datagrams the fragment cache holds at most (4 fragments each).
    packet_filter(const conntrack_config& ct, uint32_t flow_capacity, uint32_t frag_datagrams,
                  unsigned worker_index);

    // Decide out[i] for pkts[i] under `policy` (all spans of equal length <= max_burst).
    // `now_s`: coarse clock for conntrack and fragments; `now_ns` for -m limit.
    void run(const policy_snapshot& policy, std::span<const packet_meta> pkts,
             std::span<const filter_input> in, std::span<filter_decision> out, uint32_t now_s,
             uint64_t now_ns) noexcept;

    // Incremental expiry of conntrack entries and held fragments, bounded by `budget`
    // (call per loop iteration). Timed-out fragments appear in released().
    void expire(const policy_snapshot& policy, uint32_t now_s, uint32_t budget) noexcept;

    // Held fragments handed back by the last run()/expire()/drain(); the caller acts on
    // each (forward / drop / reject) and must do so before the next call.
    std::span<const filter_release> released() const noexcept { return {released_.get(), n_released_}; }
    // Hand back every held fragment, to be dropped (shutdown).
    void drain() noexcept;

    const conntrack& tracker() const noexcept { return ct_; }
    // The owning worker's mutable access (conntrack commands and events between bursts).
    conntrack& tracker() noexcept { return ct_; }
    const frag_cache& fragments() const noexcept { return frags_; }
    const filter_counters& counters() const noexcept { return counters_; }

private:
    // One pass of classify → ruleset → commit over `n` packets at pkts/in/out (contiguous);
    // indices of deferred packets (into these arrays) are written to `deferred`.
    uint32_t pass(const policy_snapshot& policy, const packet_meta* pkts, const filter_input* in,
                  filter_decision* out, uint32_t n, uint32_t* deferred, uint32_t now_s,
                  uint64_t now_ns) noexcept;
    void judge(const policy_snapshot& policy, const packet_meta& m, const filter_input& in,
               uint8_t ct_bits, filter_decision& out, uint64_t now_ns) noexcept;
    // Conntrack + ruleset over the packets at map[0..n) of pkts/in/out, deferred rounds included.
    void judge_all(const policy_snapshot& policy, const packet_meta* pkts, const filter_input* in,
                   filter_decision* out, const uint32_t* map, uint32_t n, uint32_t now_s,
                   uint64_t now_ns) noexcept;
    filter_decision hold_fragment(const policy_snapshot& policy, const packet_meta& m,
                                  const filter_input& in, uint32_t now_s) noexcept;
    void release_datagram(uint32_t d, filter_decision first, filter_decision others,
                          const packet_meta* meta) noexcept;
    void decide(const policy_snapshot& policy, filter_decision& out, filter_action a,
                drop_reason r) noexcept;
    uint32_t next_random() noexcept;

    conntrack ct_;
    frag_cache frags_;
    unsigned worker_;
    uint32_t random_;
    filter_counters counters_;
    // Scratch for one pass, and for the deferred rounds (compacted copies).
    std::array<ct_result, max_burst> ct_res_;
    std::array<uint8_t, max_burst> accepted_;
    std::array<packet_meta, max_burst> quoted_;
    std::array<const packet_meta*, max_burst> quoted_ptr_;
    std::array<packet_meta, max_burst> round_pkts_;
    std::array<filter_input, max_burst> round_in_;
    std::array<filter_decision, max_burst> round_out_;
    std::array<uint32_t, max_burst> round_map_, deferred_, plain_map_, cls_idx_;
    // Datagrams completed in this burst, and their first fragments' parses.
    std::array<uint32_t, max_burst> completed_;
    uint32_t n_completed_ = 0;
    std::array<packet_meta, max_burst> released_meta_;
    uint32_t n_released_meta_ = 0;
    std::unique_ptr<filter_release[]> released_;
    uint32_t n_released_ = 0;
    uint32_t max_released_ = 0;
};

} // namespace sluice
