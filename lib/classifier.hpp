// The compiled classifier: one hook (INPUT, FORWARD or OUTPUT) of a filter table turned
// into flat arrays that a worker runs for every packet of a new flow, with exactly the
// semantics of the reference evaluator (rule_eval.hpp): same verdict, same list of matched
// rules, same order of side effects (limit tokens, statistic draws).
//
// How it avoids walking thousands of rules. Every chain gets an index. Each rule is put
// in exactly one bucket of it: the bucket of its most selective "indexable" match — a
// non-negated -s or -d prefix (hash per prefix length, at most four lengths per chain; a
// rule whose prefix is longer than the chosen length is filed under its address masked to
// that length), a non-negated --sport/--dport range (interval array), a non-negated -p
// (table by protocol), a non-negated -i/-o (table by port) — or, when it has none worth
// indexing, in the chain's `always` list. A port match written after -m limit or -m
// statistic is not indexable: skipping the rule would skip the token or random draw the
// kernel takes before the port test. Each bucket is a sorted list of the rule's
// positions. For a packet, each dimension yields at most one list per lookup (the bucket
// the packet's value falls in); the lists are disjoint and a k-way merge of their heads
// produces the candidate rules in rule order. Each candidate is then tested completely
// (core matches from a fixed-layout struct; match modules from a flat op array, in rule
// order, stopping at the first failure) — an index only ever narrows, it never decides.
// Chains of a few rules get no index. Jumps, gotos, RETURN and policies are executed with
// an explicit stack of merge cursors, as ipt_do_table does.
//
// Sets are looked up (`ip_set::match`) per candidate, never expanded into rules, so set
// contents change without recompiling. Interfaces are resolved at compile time: -i tap+
// becomes the bitmask of known port indices whose names start with "tap".
//
// Lifecycle: the control thread calls `compile` (allocates, may fail with a message); the
// result is immutable and lives inside a policy snapshot, shared read-only by all workers
// and freed after a QSBR grace period. It holds a reference (`ip_set::ref`) on every set
// it uses, so `set_table::destroy` refuses those sets while it lives; it must be destroyed
// before the set_table itself.
//
// Thread safety: `classify`/`classify_burst` are const, noexcept, reentrant and may run on
// any number of workers at once; they never allocate, lock, throw, log or touch strings.
// -m limit token buckets are mutable: each worker owns a `limit_bucket` array (sized by
// `limit_count()`, set up with `init_limits`) and passes it in; a rate is therefore per
// worker (total = rate x workers) — the documented deviation from the kernel's shared
// bucket. -m statistic uses the caller's random number: the n-th statistic draw of one
// classification is `statistic_draw(random, n)`.
#pragma once

#include "packet.hpp"
#include "rule_eval.hpp"
#include "ruleset.hpp"
#include "set_table.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

enum class hook : uint8_t { input = 0, forward = 1, output = 2 };

// Ports the classifier knows: index 0..max_port_index, names as -i/-o spell them.
inline constexpr uint8_t max_port_index = 62;
// The port index meaning "no interface" (out in INPUT, in in OUTPUT).
inline constexpr uint8_t port_none = 63;

struct port_binding {
    std::string name;
    uint8_t index = 0;
};

// What the caller knows about a packet besides its headers. 16 bytes.
struct classify_input {
    const uint8_t* src_mac = nullptr; // 6 bytes, or nullptr: not received on Ethernet
    uint32_t random = 0;              // for -m statistic (see statistic_draw)
    uint8_t ct = ct_bit(ct_state::new_); // ct_state bit(s) of the flow
    uint8_t in_port = port_none;
    uint8_t out_port = port_none;
    uint8_t pad_ = 0;
};
static_assert(sizeof(classify_input) == 16);

// The n-th (0-based) random number a classification draws for -m statistic: draw 0 is
// the caller's number, later ones are derived from it. Pure.
constexpr uint32_t statistic_draw_next(uint32_t x) noexcept {
    return x * 1664525u + 1013904223u;
}

// xt_limit's token bucket, kept in nanoseconds: a packet costs period*100000 ns of
// credit, the bucket holds burst packets and starts full.
struct limit_bucket {
    uint64_t credit = 0;
    uint64_t last_ns = 0;
};
void limit_init(limit_bucket& b, const limit_match& m, uint64_t now_ns) noexcept;
// Takes a token if there is one; returns whether the packet is within the limit.
bool limit_take(limit_bucket& b, const limit_match& m, uint64_t now_ns) noexcept;

// Per-worker mutable state passed to classify. Owned by one worker.
struct classify_worker {
    std::span<limit_bucket> limits; // limit_count() buckets, set up by init_limits
    uint64_t now_ns = 0;            // current time for -m limit
};

inline constexpr uint32_t no_rule = 0xffffffffu;
inline constexpr size_t max_recorded_matches = 29;

// 128 bytes.
//   0 v  1 reject  2 by_policy  3 pad  4 terminal (4)  8 n_matched (4)  12 matched[29]
struct classify_result {
    verdict v = verdict::accept;
    reject_kind reject = reject_kind::icmp_port_unreachable; // when v == reject
    uint8_t by_policy = 0; // decided by the hook chain's policy (or the family mismatch)
    uint8_t pad_ = 0;
    uint32_t terminal = no_rule; // global index of the rule that decided, no_rule: policy
    uint32_t n_matched = 0;      // rules that matched, may exceed max_recorded_matches
    uint32_t matched[max_recorded_matches]; // their global indices, the first ones in order
};
static_assert(sizeof(classify_result) == 128);

namespace cls_detail {
struct compiled_rule;
struct ext_op;
struct chain_index;
struct addr_slot4;
struct addr_slot6;
} // namespace cls_detail

class classifier {
  public:
    ~classifier();
    classifier(const classifier&) = delete;
    classifier& operator=(const classifier&) = delete;

    // Classify one packet. `w` is the calling worker's own state. Any thread; reentrant.
    void classify(const packet_meta& pkt, const classify_input& in, classify_worker& w,
                  classify_result& out) const noexcept;
    // out[i] = classify(pkts[i], in[i]); spans of equal length. Any thread; reentrant.
    void classify_burst(std::span<const packet_meta> pkts, std::span<const classify_input> in,
                        classify_worker& w, std::span<classify_result> out) const noexcept;

    // Two-stage prefetch for a burst (STYLE: prepare pass, then lookups): call
    // prefetch_index on every packet about to be classified, then prefetch_candidates on
    // each, then classify them; the address-index slots and first candidate rules are then
    // in cache instead of each lookup paying its misses in turn. classify_burst does this.
    // IPv4 address indexes only. Any thread; reentrant.
    void prefetch_index(const packet_meta& pkt) const noexcept;
    void prefetch_candidates(const packet_meta& pkt) const noexcept;

    // True when every packet whose ct state is ESTABLISHED is provably accepted by the hook
    // chain with no side effect other than the accepting rule's counter: the fast path may
    // then skip classification for established flows.
    bool established_bypass_safe() const noexcept { return established_bypass_safe_; }
    // When established_bypass_safe(): the global indices of the rules such a packet
    // matches on its way to the accept (the bypass still counts them), in order.
    std::span<const uint32_t> established_path() const noexcept { return established_path_; }

    // Global rule indices number every rule of the ruleset (all chains, in order), so per-
    // rule counters can be one array of rule_count() entries shared by all hooks.
    uint32_t rule_count() const noexcept { return uint32_t(rule_at_.size()); }
    rule_ref rule_at(uint32_t global) const noexcept { return rule_at_[global]; }
    uint32_t global_index(rule_ref r) const noexcept { return chain_first_[r.chain] + r.rule; }

    // Token buckets each worker must own.
    uint32_t limit_count() const noexcept { return uint32_t(limits_.size()); }
    void init_limits(std::span<limit_bucket> buckets, uint64_t now_ns) const noexcept;
    // Which rule each bucket belongs to (for tests and the CLI).
    rule_ref limit_rule(uint32_t i) const noexcept { return rule_at_[limit_rule_[i]]; }

    hook which_hook() const noexcept { return hook_; }

    // Size of the compiled form in bytes (for `sluicectl show policy`).
    size_t memory_bytes() const noexcept;

  private:
    friend struct compiler;
    classifier();

    hook hook_ = hook::forward;
    bool v4_ = true;
    bool established_bypass_safe_ = false;
    uint32_t hook_chain_ = 0;
    std::vector<cls_detail::compiled_rule> rules_;
    std::vector<cls_detail::ext_op> ops_;
    std::vector<cls_detail::chain_index> chains_;
    std::vector<uint32_t> lists_;        // sorted local rule positions, each ending in ~0
    std::vector<uint32_t> tables_;       // proto / port tables: list offsets
    std::vector<uint16_t> bounds_;       // port interval starts
    std::vector<cls_detail::addr_slot4> slots4_;
    std::vector<cls_detail::addr_slot6> slots6_;
    std::vector<port_range> mp_ranges_;  // multiport ranges
    std::vector<limit_match> limits_;
    std::vector<uint32_t> limit_rule_;   // global rule index per limit bucket
    std::vector<rule_ref> rule_at_;
    std::vector<uint32_t> established_path_;
    std::vector<uint32_t> chain_first_;
    std::vector<ip_set*> sets_;          // referenced; unref'd by the destructor
    std::array<std::array<char, iface_name_size>, 64> port_names_{};
    std::array<uint8_t, 64> port_name_len_{};
};

struct compile_result {
    std::unique_ptr<classifier> cls; // null on error
    std::string error;               // "chain FOO rule 3: unknown set \"x\""
    bool ok() const noexcept { return cls != nullptr; }
};

// Compile hook `h` of `rs`. Set names are resolved in `sets` (writer thread); port names
// to indices via `ports` (indices 0..max_port_index, names unique). Fails on what
// check_ruleset refuses, unknown sets, too many ports or a call depth beyond 64.
// Control thread only.
compile_result compile(const ruleset& rs, hook h, const set_table& sets,
                       std::span<const port_binding> ports);

} // namespace sluice
