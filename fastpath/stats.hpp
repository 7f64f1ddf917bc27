// Counters report: one collector gathers the workers' counters and the ports' hardware
// counters into a stats_report (ports, workers, drops by reason, monitor-mode would-be
// drops, conntrack totals, policy), and three renderers show that one report: a human
// table (log), JSON (the stats file) and the agent's STATS_GET sections (agent.cpp).
// Per-rule counters are walked with for_each_rule (the table, the JSON and RULE_GET).
// Adding a figure: add it to the struct and to its values() list — every renderer follows.
// Main thread only; reads worker counters with relaxed loads while workers run.
#pragma once

#include "port.hpp"
#include "worker.hpp"

#include "packet_fate.hpp"
#include "policy.hpp"
#include "ruleset.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace sluice {

// One named figure; names are static strings, the same in JSON keys and STATS_GET.
struct stat_value {
    std::string_view name;
    uint64_t value;
};

struct port_stats {
    std::string name;
    bool link_up = false;
    uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0; // as the workers saw them
    uint64_t nic_missed = 0, nic_rx_errors = 0, nic_tx_errors = 0, rx_nombuf = 0; // the NIC's
    std::vector<stat_value> values() const; // the figures above, by name (link_up excluded)
};

struct worker_stats {
    unsigned index = 0, lcore = 0;
    uint64_t rx_packets = 0, busy_cycles = 0, idle_cycles = 0, sleeps = 0;
    uint64_t redirected_out = 0, redirected_in = 0, ct_events_lost = 0;
    uint64_t to_control = 0, from_control = 0, exception_copy_failed = 0; // exception path
    drop_counters drops{};
    std::vector<stat_value> values() const; // the scalars above, by name (index, lcore excluded)
};

struct stats_report {
    uint64_t tsc_hz = 0;
    std::vector<port_stats> ports;
    std::vector<worker_stats> workers;
    drop_counters drops{};      // every reason, summed over the workers
    drop_counters would_drop{}; // monitor mode
    std::vector<stat_value> conntrack; // summed over the workers
    uint32_t generation = 0;
    filter_mode mode = filter_mode::enforce;
};

// `policy` is the current snapshot (the main thread may read it: only it frees snapshots);
// `generation` the applied one (a live set change advances it without a new snapshot).
stats_report collect_stats(const port_set& ports, const worker_set& workers, const policy_snapshot& policy,
                           uint32_t generation);

std::string stats_table(const port_set& ports, const worker_set& workers, const policy_snapshot& policy,
                        uint32_t generation);
std::string stats_json(const port_set& ports, const worker_set& workers, const policy_snapshot& policy,
                       uint32_t generation);

// Every rule of the snapshot with its family, chain, position (1-based, as iptables -L
// --line-numbers), spec and counters (summed over the workers):
// f(bool ipv6, const std::string& chain, uint32_t position, const std::string& spec,
//   uint64_t packets, uint64_t bytes).
template <class F> void for_each_rule(const policy_snapshot& p, F&& f) {
    for (bool v6 : {false, true}) {
        const classifier& cls = p.forward(v6);
        const ruleset& rs = v6 ? p.rules6 : p.rules4;
        for (uint32_t g = 0; g < cls.rule_count(); ++g) {
            rule_ref r = cls.rule_at(g);
            const chain& ch = rs.chains[r.chain];
            auto [pk, by] = p.rule_totals(v6, g);
            f(v6, ch.name, r.rule + 1, to_rule_spec(ch.rules[r.rule]), pk, by);
        }
    }
}

} // namespace sluice
