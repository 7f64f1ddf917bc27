// The exception path, control side: sluice-control attaches to sluice-fastpath's DPDK
// shared memory as a secondary process and moves packets between the workers' rings and
// the Linux kernel (fastpath/exception.hpp draws the whole path):
//
//   sl_exc_<k>  reason local -> written to the TAP of the port it arrived on (sl-<port>)
//               reason log   -> one log line (rate-limited) and a pcap record (log_pcap)
//   TAP sl-<port> read       -> copied into an mbuf of `sl_mbufs`, m->port = the port's
//                               DPDK id -> sl_inj_0 (worker 0 sends it: one queue keeps
//                               the kernel's frames in order)
//
// Where the ports come from: the memzone `sl_exc_info` the primary publishes (names, DPDK
// ids, MACs, MTU, the `address` lines of sluice-fastpath's configuration, worker count).
// So control needs no copy of the port configuration, and cannot disagree with it. One TAP
// per port that has an address: IFF_TAP|IFF_NO_PI, named sl-<port> (15 chars at most),
// the port's MAC and MTU, its addresses (IPv6 without DAD) added over rtnetlink, up.
// The TAPs are not persistent: they disappear with the process (also on SIGKILL) and are
// made again by the next one.
//
// Attaching. attach() starts the EAL as a secondary (same --file-prefix; hugepages are
// required: a --no-huge primary shares no memory), with --no-pci and an lcore id of its own
// (RTE_MAX_LCORE - 1, so this process's mempool cache is not one of the primary's lcores').
// A secondary probes the primary's vdevs (the vdev bus asks the primary for its list):
// net_af_packet attaches in a secondary without opening a socket (tested by
// tests/e2e/exception_test.sh); a vdev that cannot be probed there only costs an EAL log
// line, because this code makes no ethdev call: it needs only the rings, the pool and the
// memzone. PCI devices are not probed at all (--no-pci). If no primary runs, attach() returns an error
// without touching the EAL and may be called again later. Once the EAL is up, poll() looks
// for `sl_exc_info` (the primary publishes it after opening its ports) until found, then
// makes the TAPs. The EAL cannot be re-attached to a new primary: when the fast path exits,
// fastpath_gone() turns true and the process must exit (and be restarted) to re-attach.
//
// Fail-static and SIGKILL. The rings are single-producer/single-consumer and this process
// is the only consumer of sl_exc_<k> and the only producer of sl_inj_<k>: attach() takes
// an flock on <EAL runtime dir>/sluice-exception.lock first (released by the kernel when
// the process dies, SIGKILL included), so a second one waits (retry) instead. A SIGKILL in the middle of a ring operation leaves that ring's
// head ahead of its tail; on attaching, the next control process rolls its own side back
// (the peer worker only reads the other side). mbufs are allocated and freed through this
// process's own lcore cache, so the pool's shared ring is touched only when that cache
// spills or refills; a SIGKILL inside one of those rare bulk operations could still wedge
// the pool (a DPDK multi-process limitation, not detectable from here).
//
// Thread safety: one thread (the one that called attach()) calls everything; poll() never
// blocks and does a bounded amount of work.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice {

struct exception_path_config {
    std::string file_prefix = "sluice"; // sluice-fastpath's file-prefix
    unsigned cpu = 0;                   // CPU the EAL main lcore (this thread) is pinned to
    std::string log_pcap;               // LOG/NFLOG copies appended here (pcap), "" none
    bool tap = true;                    // false: local frames are counted and freed
    unsigned log_lines_per_s = 20;      // LOG lines logged per second at most (burst 2x)
    std::vector<std::string> eal_args;  // appended verbatim to the generated EAL arguments
    // Optional: a LOG line names the rule with this (e.g. "FORWARD 3 LOG --log-prefix x");
    // default "ip4 rule #<global index>". v6: the rule is in the IPv6 ruleset.
    std::function<std::string(bool v6, uint32_t rule)> describe_rule;
};

// Every figure is a count since attach(); names are stable (CLI/JSON).
struct exception_path_counters {
    uint64_t from_workers = 0;     // mbufs dequeued from sl_exc_<k>
    uint64_t to_tap = 0;           // local frames written to a TAP
    uint64_t tap_write_failed = 0; // the TAP refused one (its queue full, or too large)
    uint64_t no_tap = 0;           // local frame for a port without TAP (or tap = false)
    uint64_t from_tap = 0;         // frames read from the TAPs
    uint64_t injected = 0;         // enqueued on sl_inj_0
    uint64_t inject_ring_full = 0; // ... refused: the worker does not keep up (or is gone)
    uint64_t inject_no_mbuf = 0;   // no mbuf in sl_mbufs for a frame from a TAP
    uint64_t inject_too_big = 0;   // a TAP frame larger than an mbuf's data room
    uint64_t log_hits = 0;         // LOG/NFLOG copies received
    uint64_t log_lines = 0;        // ... logged
    uint64_t log_suppressed = 0;   // ... not logged (rate limit)
    uint64_t pcap_written = 0;     // ... recorded in log_pcap
    uint64_t pcap_failed = 0;
    uint64_t bad_mark = 0;         // unknown reason or port in an mbuf (version skew?)

    std::vector<std::pair<std::string_view, uint64_t>> values() const;
};

class exception_path {
public:
    explicit exception_path(exception_path_config cfg);
    ~exception_path();
    exception_path(const exception_path&) = delete;
    exception_path& operator=(const exception_path&) = delete;

    struct attach_status {
        bool ok = false;
        bool retry = false; // no fast path runs (yet): nothing was touched, call again later
        std::string error;  // why not; with !retry, final for this process
    };
    // Start the EAL as a secondary of the fast path with cfg.file_prefix (argv0: the program
    // name in EAL's messages). Once ok, never call it again.
    attach_status attach(const std::string& argv0 = "sluice-control");
    bool eal_up() const noexcept { return eal_up_; }
    // The memzone, rings and pool were found and the TAPs made: packets move.
    bool ready() const noexcept { return ready_; }
    // The fast path exited after we attached: exit and restart to re-attach.
    bool fastpath_gone() const noexcept { return gone_; }

    // Move what is waiting, both ways, at most a bounded batch per ring and TAP; never
    // blocks. Returns the number of packets moved (call again at once while non-zero).
    // Call it at least every few milliseconds (the rings are not pollable fds: their
    // latency is the call interval; 1-10 ms is right) and whenever fds() is readable.
    unsigned poll();
    // The TAP file descriptors (readable when the kernel sends); empty until ready().
    std::vector<int> fds() const;

    const exception_path_counters& counters() const noexcept { return c_; }
    // "port west: tap sl-west ..." lines for logs.
    std::string describe() const;

private:
    struct impl;
    bool bind();
    void make_tap(uint32_t port);
    void from_workers(unsigned k);
    void from_tap(std::size_t port);
    void log_hit(const uint8_t* frame, uint32_t len, int port, uint32_t mark);

    exception_path_config cfg_;
    std::unique_ptr<impl> d_;
    exception_path_counters c_;
    bool eal_up_ = false, ready_ = false, gone_ = false;
};

} // namespace sluice
