// What a sluice-gen run measured, and its two renderings: a JSON document (--json) and a
// human summary. The counters are filled by the traffic loop (traffic_loop.hpp) on the
// generator's lcore and rendered once the run has stopped.
//
// Thread safety: written by one thread during the run, read after it; no sharing.
#pragma once

#include "gen_config.hpp"
#include "latency_histogram.hpp"
#include "tcp_workload.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sluice::gen {

struct stream_result {
    uint64_t built = 0;                  // packets made (the stream's sequence numbers)
    uint64_t tx_packets = 0, tx_bytes = 0; // accepted by the TX queue
    uint64_t rx_packets = 0, rx_bytes = 0;
    uint64_t reordered = 0;              // arrived with a sequence number not above the last one
    uint32_t last_seq = 0;
    uint64_t start_tsc = 0, last_tx_tsc = 0; // the run's start, the last accepted burst
    latency_histogram latency;           // TSC cycles, built -> received
};

struct port_result {
    uint64_t tx_packets = 0, tx_bytes = 0, rx_packets = 0, rx_bytes = 0;
    uint64_t rx_unmatched = 0;  // received, but neither a stream's nor the TCP workload's
    uint64_t tx_dropped = 0;    // TCP segments that found the port's TX buffer full
    uint64_t alloc_failed = 0;  // bursts not built because the TX pool was empty
    // The PMD's own counters (rte_eth_stats) at the end.
    uint64_t nic_ipackets = 0, nic_opackets = 0, nic_imissed = 0, nic_ierrors = 0, nic_oerrors = 0, nic_rx_nombuf = 0;
};

struct run_result {
    uint64_t tsc_hz = 1;
    double send_seconds = 0;  // the sending phase as it ran
    // CPU time the generator's thread spent in the sending phase (CLOCK_THREAD_CPUTIME_ID):
    // below send_seconds when the host ran something else on its CPU. send_cpu_seconds x
    // tsc_hz / packets = the generator's own cycles per packet (TX + RX).
    double send_cpu_seconds = 0;
    double drain_seconds = 0;
    bool interrupted = false; // SIGINT/SIGTERM ended the sending phase
    std::vector<stream_result> streams; // index = stream index
    std::vector<port_result> ports;     // index = port index
    std::optional<tcp_counters> tcp;
};

std::string result_json(const gen_config& cfg, const run_result& r);
std::string result_summary(const gen_config& cfg, const run_result& r);

} // namespace sluice::gen
