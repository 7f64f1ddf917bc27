// Ports: opening, configuring and watching the DPDK ethdevs that sluice-fastpath forwards
// between. A port is configured once at start with one RX and one TX queue per worker when
// the device can (each worker then polls its own RX queue and transmits on its own TX
// queue, no locks), or with fewer queues when it cannot, in which case the workers steer
// packets among themselves in software (see worker.hpp, "steering").
//
// Lifecycle: open_ports() after rte_eal_init(), before the workers start; close_ports()
// after they have stopped. Link state is refreshed by the main thread (poll_links) and by
// the LSC interrupt callback where the PMD has one; workers only read `link_up`.
#pragma once

#include "config.hpp"

#include <rte_ethdev.h>
#include <rte_mempool.h>

#include <array>
#include <atomic>
#include <string>
#include <vector>

namespace sluice {

enum class steering : uint8_t {
    hardware, // symmetric RSS on the NIC: both directions of a flow reach the same queue index
    software, // the NIC cannot: the worker that receives a packet hands it to its owner
};

struct port {
    std::string name;
    uint16_t id = 0;
    uint16_t peer = UINT16_MAX;     // index in the ports vector of the paired port, or none
    uint16_t rx_queues = 0;
    uint16_t tx_queues = 0;
    steering steer = steering::software;
    bool scatter = false;           // multi-segment RX enabled (jumbo frames > mbuf size)
    std::atomic<bool> link_up{false};
    uint32_t link_speed_mbps = 0;
    rte_ether_addr mac{};
};

struct port_set {
    std::vector<port> ports; // index == position in fastpath_config::ports
    // DPDK port id -> index in `ports` (mbuf->port is a DPDK id); UINT16_MAX if not ours.
    std::array<uint16_t, RTE_MAX_ETHPORTS> index_of;

    port_set() { index_of.fill(UINT16_MAX); }
    port_set(const port_set&) = delete;
    port_set& operator=(const port_set&) = delete;
    port_set(port_set&&) = delete;
};

// Find, configure and start every configured port. Returns an empty string or a precise
// error (port name, what the device refused). Control thread only.
std::string open_ports(const fastpath_config& cfg, rte_mempool* pool, port_set& out);

// Re-read link status of all ports; logs changes. Control thread only.
void poll_links(port_set& ports);

// Stop and close all ports. Control thread only, workers stopped.
void close_ports(port_set& ports);

} // namespace sluice
