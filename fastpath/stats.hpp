// Counters report: gathers the workers' counters and the ports' hardware counters into a
// snapshot, with conntrack, policy and per-rule counters, and renders it as a human table (log) or JSON (stats file, later the API).
// Main thread only; reads worker counters with relaxed loads while workers run.
#pragma once

#include "port.hpp"
#include "worker.hpp"

#include <string>

namespace sluice {

// `policy` is the current snapshot (the main thread may read it: only it frees snapshots).
std::string stats_table(const port_set& ports, const worker_set& workers, const policy_snapshot& policy);
std::string stats_json(const port_set& ports, const worker_set& workers, const policy_snapshot& policy);

} // namespace sluice
