// Workers: the poll-mode loops that move packets. One worker per lcore; each owns its RX
// queues, a TX queue per port, its scratch arrays and its counters (cache-aligned, written
// only by the worker, read by the main thread with relaxed loads).
//
// Steering. A flow's two directions must meet on the same worker (conntrack is per
// worker). On a hardware-steered pair the NIC's symmetric RSS does it. On a software-
// steered pair the receiving worker parses the frame, takes the symmetric hash of its
// addresses and protocol (symmetric_hash_l3: fragments carry no ports) and,
// when another worker owns the flow, enqueues the mbuf on that worker's redirect ring (one
// single-producer/single-consumer ring per ordered worker pair: no locks, no CAS). Ports
// with fewer TX queues than workers are served the same way: a worker without a TX queue
// on the egress port hands the packet to the worker that has one through a TX ring.
// A full ring drops and counts (redirect_ring_full); a worker never blocks.
//
// Lifecycle: build_workers() after open_ports(); start with rte_eal_remote_launch(
// worker_main, &w, lcore); stop by setting `quit` and waiting for the lcores.
#pragma once

#include "config.hpp"
#include "policy_slot.hpp"
#include "port.hpp"

#include "counter.hpp"
#include "packet.hpp"
#include "packet_fate.hpp"
#include "packet_filter.hpp"

#include <rte_mbuf.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <memory>
#include <vector>

namespace sluice {

inline constexpr unsigned max_ports = 16;
inline constexpr unsigned max_burst = 256;

struct port_counters {
    counter rx_packets, rx_bytes, tx_packets, tx_bytes;
};

struct alignas(64) worker_counters {
    std::array<port_counters, max_ports> port;
    std::array<counter, drop_reason_count> drops;
    counter redirected_out; // handed to another worker (steering or TX queue)
    counter redirected_in;
    counter busy_cycles;    // TSC cycles of loop iterations that moved packets
    counter idle_cycles;    // TSC cycles of empty iterations, sleeps included
    counter sleeps;
    counter reject_replies;      // REJECT replies built and staged out of the ingress port
    counter reject_no_reply;     // REJECT where the kernel would send nothing (or no mbuf)
};

struct rx_queue_ref {
    uint16_t port_index;
    uint16_t queue;
};

struct worker {
    unsigned index = 0;
    unsigned lcore = 0;
    unsigned n_workers = 1;
    const fastpath_config* cfg = nullptr;
    port_set* ports = nullptr;
    const std::atomic<bool>* quit = nullptr;
    policy_slot* policy = nullptr;
    rte_mempool* pool = nullptr;                 // for REJECT replies
    std::unique_ptr<packet_filter> filter;       // conntrack + classifier, this worker's
    std::vector<rx_queue_ref> rx;
    // redirect_out[k]/tx_out[k]: rings this worker produces into for worker k (nullptr
    // for itself); *_in[k]: rings worker k produces into for this worker.
    std::vector<rte_ring*> redirect_out, redirect_in, tx_out, tx_in;
    worker_counters counters;
};

struct worker_set {
    std::vector<std::unique_ptr<worker>> workers;
    ~worker_set();
};

// Assign queues and create the rings. Returns "" or an error. Main thread, before launch.
std::string build_workers(const fastpath_config& cfg, port_set& ports,
                          const std::atomic<bool>& quit, const std::vector<unsigned>& lcores,
                          policy_slot& policy, rte_mempool* pool, worker_set& out);

// The lcore entry point; `arg` is a worker*. Returns when *quit becomes true.
int worker_main(void* arg);

} // namespace sluice
