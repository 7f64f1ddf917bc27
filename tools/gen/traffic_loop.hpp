// The EAL side of sluice-gen: opening its ports and running the traffic on one lcore.
//
// open_gen_ports() configures every port with one RX and one TX queue, promiscuous, MTU
// raised for jumbo frames, then waits for the links. run_traffic() is the poll loop: each
// iteration stamps the TSC once, then
//   - per stream: builds the burst that pacing allows (due_by: packets owed since start at
//     `rate`) into mbufs from the pre-filled TX pool and hands it to rte_eth_tx_burst; what
//     the queue does not take is retried first next time (no loss inside the generator);
//   - the TCP workload: expires, opens the connections due, builds its segments into the
//     client or server port's TX buffer, flushes those buffers;
//   - per port: receives a burst, attributes each frame to a stream (signature) or to the
//     TCP workload (its flows), counts and frees it.
// Sending stops at --duration, when every stream has sent its count and the TCP workload
// its connections, or on SIGINT/SIGTERM; then the loop only receives (and finishes TCP
// connections) for the drain time. No allocation, lock or log inside the loop.
//
// Lifecycle: after rte_eal_init(); the pools outlive the ports. Thread safety: run on one
// lcore; `quit` may be set from a signal handler.
#pragma once

#include "gen_config.hpp"
#include "run_report.hpp"

#include <rte_ethdev.h>
#include <rte_mempool.h>

#include <atomic>
#include <string>
#include <vector>

namespace sluice::gen {

struct open_port {
    uint16_t id = 0;
    rte_ether_addr mac{};
};

// "" or a precise error naming the port.
std::string open_gen_ports(const gen_config& cfg, rte_mempool* rx_pool, uint16_t mtu, std::vector<open_port>& out);
std::string wait_for_links(const gen_config& cfg, const std::vector<open_port>& ports, const std::atomic<bool>& quit);
void close_gen_ports(const std::vector<open_port>& ports);

// Fill every mbuf of the TX pool with the payload pattern (frame_builder.hpp) once.
void fill_tx_pool(rte_mempool* pool);

run_result run_traffic(const gen_config& cfg, const std::vector<open_port>& ports, rte_mempool* tx_pool,
                       const std::atomic<bool>& quit);

} // namespace sluice::gen
