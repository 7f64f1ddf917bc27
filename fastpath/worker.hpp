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
#include "agent_codec.hpp"
#include "exception.hpp"
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
    counter to_control;          // handed to sluice-control (exception.hpp)
    counter from_control;        // injected by sluice-control and staged for transmission
    counter exception_copy_failed; // LOG hit whose copy for control found no mbuf
    counter ct_events_lost;      // conntrack events not queued: the event ring was full
};

// Conntrack commands from the main thread (the agent's CT_DELETE / CT_FLUSH), executed by
// the worker that owns the flows, between bursts, in bounded chunks (ct_command_chunk
// entries examined per loop iteration). Protocol: the main thread writes `filter` while
// posted == done, then stores posted + 1 (release); the worker sees posted != done
// (acquire), erases matching flows chunk by chunk, then writes `deleted` and stores
// done = posted (release). The main thread waits for done == posted (acquire), bounded;
// it posts nothing new while a command is outstanding. No locks on either side.
struct alignas(64) ct_mailbox {
    std::atomic<uint32_t> posted{0};
    ct_filter filter;                  // main writes, worker reads (see protocol)
    alignas(64) std::atomic<uint32_t> done{0};
    uint64_t deleted = 0;              // worker writes before `done`
};

// Conntrack events (the agent's CT_SUBSCRIBE): while `ct_events_on` is set (the main thread
// sets it while anyone subscribes; the worker checks it once per loop iteration), the
// worker's flow table reports confirmed and destroyed flows into `ct_events`, an SP/SC
// ring of ct_event_record the main thread drains; a full ring counts ct_events_lost.
inline constexpr unsigned ct_event_ring_size = 16384;
inline constexpr uint32_t ct_command_chunk = 1024, ct_command_chunk_idle = 16384;

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
    exception_rings exc;                         // to/from sluice-control (exception.hpp)
    local_addresses local;                       // the appliance's own addresses per port
    ct_mailbox ct_cmd;                           // conntrack commands from the main thread
    rte_ring* ct_events = nullptr;               // conntrack events to the main thread
    std::atomic<bool> ct_events_on{false};
};

struct worker_set {
    std::vector<std::unique_ptr<worker>> workers;
    const rte_memzone* exception_info = nullptr; // published for sluice-control
    ~worker_set();
};

// Assign queues and create the rings. Returns "" or an error. Main thread, before launch.
std::string build_workers(const fastpath_config& cfg, port_set& ports,
                          const std::atomic<bool>& quit, const std::vector<unsigned>& lcores,
                          policy_slot& policy, rte_mempool* pool, worker_set& out);

// The lcore entry point; `arg` is a worker*. Returns when *quit becomes true.
int worker_main(void* arg);

} // namespace sluice
