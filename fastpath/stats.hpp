// Counters report: gathers the workers' counters and the ports' hardware counters into a
// snapshot and renders it as a human table (log) or JSON (stats file, later the API).
// Main thread only; reads worker counters with relaxed loads while workers run.
#pragma once

#include "port.hpp"
#include "worker.hpp"

#include <string>

namespace sluice {

std::string stats_table(const port_set& ports, const worker_set& workers);
std::string stats_json(const port_set& ports, const worker_set& workers);

} // namespace sluice
