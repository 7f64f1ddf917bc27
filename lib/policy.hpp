// Policy snapshot: everything a worker needs to judge packets — the sets, the compiled
// FORWARD classifiers of the IPv4 and IPv6 rulesets, the enforcement mode, and the
// per-worker mutable parts that belong to this policy (rule counters, -m limit buckets) —
// built off the workers and published whole (DESIGN.md "Atomic policy snapshots").
//
// Lifecycle. The control thread builds a snapshot with `build_policy` from the text of an
// iptables-save file, an ip6tables-save file and an ipset-save file (all parsed and
// compiled first; any error rejects the whole build with file:line:column and the reason,
// and nothing running changes). The owner then publishes it with one atomic pointer store
// and frees the previous snapshot after a QSBR grace period (fastpath/policy_publisher).
// A snapshot is immutable once published except for its per-worker state, which only that
// worker writes (and the control thread reads, relaxed). Members are declared so that the
// classifiers, which hold references on the sets, are destroyed before the set table.
//
// Thread safety: build_policy on the control thread only; a published snapshot is read by
// any number of workers concurrently; `workers[k]` is written by worker k only.
#pragma once

#include "classifier.hpp"
#include "counter.hpp"
#include "ruleset.hpp"
#include "set_table.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

// What the fast path does with the ruleset's answer.
enum class filter_mode : uint8_t {
    enforce, // verdicts are applied
    monitor, // verdicts are computed and counted; every packet is forwarded
    bypass,  // no conntrack, no rules: forward everything
};
std::string_view name_of(filter_mode m) noexcept;
std::optional<filter_mode> filter_mode_from(std::string_view name) noexcept;

// One source file of a policy: its name (for error messages) and its text.
struct policy_text {
    std::string name;
    std::string text;
};

struct policy_sources {
    policy_text rules4; // iptables-save (filter table); empty text: all ACCEPT
    policy_text rules6; // ip6tables-save
    policy_text sets;   // ipset save
};

// Per-worker mutable state of one snapshot, cache-line aligned so workers never share.
struct alignas(64) policy_worker_state {
    std::unique_ptr<rule_counter[]> rules4, rules6; // indexed by classifier global rule index
    std::vector<limit_bucket> limits4, limits6;
};

struct policy_snapshot {
    uint32_t generation = 0;
    filter_mode mode = filter_mode::enforce;
    std::unique_ptr<set_table> sets; // before the classifiers: destroyed after them
    ruleset rules4 = ruleset::empty(ip_family::ipv4);
    ruleset rules6 = ruleset::empty(ip_family::ipv6);
    std::unique_ptr<classifier> forward4, forward6;
    std::unique_ptr<policy_worker_state[]> workers;
    unsigned n_workers = 0;

    const classifier& forward(bool ipv6) const noexcept { return ipv6 ? *forward6 : *forward4; }
    // Sum of one rule's counters over all workers (relaxed reads). Any thread.
    std::pair<uint64_t, uint64_t> rule_totals(bool ipv6, uint32_t global) const noexcept;
};

struct policy_build_result {
    std::unique_ptr<policy_snapshot> snapshot; // null on error
    std::string error;                         // "rules.v4:12:34: unknown option ..."
};

// Parse and compile a whole policy. Ports are the appliance's port names (for -i/-o).
// `now_ns` starts the -m limit buckets. Control thread only; allocates.
policy_build_result build_policy(const policy_sources& src, filter_mode mode, uint32_t generation,
                                 std::span<const port_binding> ports, unsigned n_workers,
                                 uint64_t now_ns);

// The clock -m limit buckets and conntrack run on (CLOCK_MONOTONIC). Any thread.
inline uint64_t steady_ns() noexcept {
    return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count());
}

// Read a policy file into `out`; "" on success, else "FILE: reason". Control thread.
std::string read_policy_file(const std::string& path, policy_text& out);

// The state directory: the policy sluice-control persists and sluice-fastpath starts from (rules.v4, rules.v6, sets, mode, generation;
// `generation` is written last, so its presence marks a complete state). Without the
// directory or its `generation` file: found = false (use the configuration's files).
// Missing rules/sets files are empty texts, a missing `mode` is `default_mode`.
struct state_dir_contents {
    bool found = false;
    policy_sources sources; // named by their paths
    filter_mode mode = filter_mode::enforce;
    uint32_t generation = 0;
    std::string error; // a file that exists but cannot be read or parsed
};
state_dir_contents read_state_dir(const std::string& dir, filter_mode default_mode);

// Write the state directory (created if missing): each file to a temporary and renamed,
// `generation` last. "" on success, else the file and the reason. sluice-control only.
std::string write_state_dir(const std::string& dir, uint32_t generation, filter_mode mode,
                            const std::string& rules4, const std::string& rules6,
                            const std::string& sets);

} // namespace sluice
