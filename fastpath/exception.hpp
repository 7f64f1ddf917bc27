// The exception path, fast-path side: frames that are not to be forwarded between the
// paired ports but belong to the appliance itself, and copies of LOG/NFLOG hits, are handed
// to sluice-control through rings; control hands back what the appliance's kernel stack
// sends (ping replies, ARP/ND, ssh) through other rings, and the worker transmits it.
//
//   worker k --(sl_exc_<k>, SP/SC: worker k -> control)--> sluice-control --> TAP sl-<port>
//   worker k <--(sl_inj_<k>, SP/SC: control -> worker k)-- sluice-control <-- TAP sl-<port>
//
// What is diverted (untagged frames only, checked against the INGRESS port's addresses,
// `address = PORT=ADDR/PREFIX`): ARP whose target protocol address is ours (requests and
// replies); IPv4/IPv6 packets whose destination is ours (fragments included: the kernel
// reassembles); ICMPv6 neighbour solicitations/advertisements whose target is ours (an NS
// is sent to the solicited-node multicast group). On a port with an IPv6 address the
// EUI-64 link-local address of the port's MAC is ours too (the TAP's kernel derives the
// same one, and uses it for ND). Diverted frames skip conntrack and the ruleset (the
// FORWARD chain does not judge traffic to the appliance). Each mbuf handed to control is
// marked in m->hash.usr (exception_mark below: reason, and for LOG the rule); m->port is
// the DPDK port it arrived on. Injected mbufs carry in m->port the DPDK port to send them
// out of, and go through the worker's ordinary staging (stage_to), unfiltered.
//
// Fail-static: nothing here waits for control. A full ring to control frees the mbuf and
// counts drop reason `exception_ring_full`; an mbuf the copy of a LOG hit cannot get counts
// `exception_copy_failed`. The rings always exist (created by the primary at start), so a
// control process may attach, die and re-attach at any time. While control is away its
// ring holds up to exception-ring-size mbufs (the config's mbuf budget counts them).
//
// Shared with sluice-control (a DPDK secondary): the ring and pool names, the mark
// encoding, and the memzone `sl_exc_info` (exception_info) in which the primary publishes
// the ports (name, DPDK id, MAC, MTU, addresses), the worker count and the ring size;
// its `magic` is written last, so a reader that sees it sees the rest.
//
// Lifecycle: create_exception_path() from build_workers() (after open_ports: it needs the
// MACs), destroy_exception_path() from ~worker_set. exception_stage is a member of one
// worker's pipeline and used only by that worker: no locks, no allocation (besides the LOG
// copy's mbuf), no logging.
#pragma once

#include "packet.hpp"

#include <array>
#include <cstdlib>
#include <unistd.h>
#include <cstdint>
#include <string>

struct rte_mbuf;
struct rte_ring;
struct rte_memzone;

namespace sluice {

// ---- shared with sluice-control --------------------------------------------------------

inline constexpr const char* exception_pool_name = "sl_mbufs";
inline constexpr const char* exception_info_zone = "sl_exc_info";
inline std::string exception_ring_name(unsigned worker) { return "sl_exc_" + std::to_string(worker); }
inline std::string inject_ring_name(unsigned worker) { return "sl_inj_" + std::to_string(worker); }
// DPDK's runtime directory of a file prefix (where its `config` file lives), and the lock the
// process running the exception path (sluice-control) holds while attached to that prefix.
inline std::string dpdk_runtime_dir(const std::string& prefix) {
    std::string base = "/var/run";
    if (::getuid() != 0) {
        const char* x = std::getenv("XDG_RUNTIME_DIR");
        base = x ? x : "/tmp";
    }
    return base + "/dpdk/" + prefix;
}
inline std::string exception_lock_path(const std::string& prefix) {
    return dpdk_runtime_dir(prefix) + "/sluice-exception.lock";
}

enum class exception_reason : uint8_t {
    none = 0,
    local = 1, // for the appliance itself: to the port's TAP
    log = 2,   // a copy of a packet that matched a LOG/NFLOG rule
};

// m->hash.usr of an mbuf on an exception ring:
//   bits 31..28 exception_reason   bit 27 rule is IPv6   bits 26..0 rule (log only)
// The rule is the classifier's global index in the IPv4 or IPv6 ruleset of the policy that
// judged the packet (0x7ffffff: none).
namespace exception_mark {
inline constexpr uint32_t no_rule_index = 0x7ffffffu;
constexpr uint32_t make(exception_reason r, bool v6 = false, uint32_t rule = no_rule_index) noexcept {
    return (uint32_t(r) << 28) | (uint32_t(v6) << 27) | (rule < no_rule_index ? rule : no_rule_index);
}
constexpr exception_reason reason(uint32_t m) noexcept { return exception_reason(m >> 28); }
constexpr bool rule_v6(uint32_t m) noexcept { return (m >> 27) & 1; }
constexpr uint32_t rule_index(uint32_t m) noexcept { return m & no_rule_index; }
} // namespace exception_mark

inline constexpr unsigned exception_max_ports = 16;
inline constexpr unsigned exception_max_addresses = 8;
inline constexpr uint32_t exception_info_magic = 0x534c4558; // "SLEX"
inline constexpr uint32_t exception_info_version = 1;

// 20 bytes: 0 v6  1 prefix  2 pad (2)  4 addr (16; IPv4 in the last 4, as ip_addr)
struct exception_address {
    uint8_t v6;
    uint8_t prefix;
    uint8_t pad[2];
    uint8_t addr[16];
};
static_assert(sizeof(exception_address) == 20);

// 188 bytes: 0 name (16, NUL-terminated)  16 port_id  18 mtu  20 mac (6)  26 n_addresses
// 27 pad  28 addresses (8 x 20)
struct exception_port_info {
    char name[16];
    uint16_t port_id; // DPDK ethdev id (the same in every process of the file-prefix)
    uint16_t mtu;     // for the TAP: the port's MTU, at most what one mbuf holds
    uint8_t mac[6];
    uint8_t n_addresses;
    uint8_t pad;
    exception_address addresses[exception_max_addresses];
};
static_assert(sizeof(exception_port_info) == 188);

struct exception_info {
    uint32_t magic; // exception_info_magic once everything else is written
    uint32_t version;
    uint32_t n_workers; // rings sl_exc_<k> / sl_inj_<k> exist for k < n_workers
    uint32_t n_ports;
    uint32_t ring_size;
    uint32_t pad;
    exception_port_info ports[exception_max_ports]; // fastpath_config::ports order
};

// ---- fast-path side ----------------------------------------------------------------------

struct fastpath_config;
struct port_set;
struct worker;
struct worker_set;

// The appliance's addresses on each port, in the form the per-packet test wants.
struct local_addresses {
    struct per_port {
        uint8_t n4 = 0, n6 = 0;
        std::array<uint32_t, exception_max_addresses> v4{};   // host order
        std::array<ip_addr, exception_max_addresses + 1> v6{}; // + the EUI-64 link-local
    };
    bool any = false;
    std::array<per_port, exception_max_ports> port{};

    // Add an address (IPv4-mapped for IPv4) to port index `p`; false when full.
    bool add(std::size_t p, bool v6, const ip_addr& a) noexcept {
        per_port& pp = port[p];
        if (v6 ? pp.n6 >= pp.v6.size() : pp.n4 >= pp.v4.size()) return false;
        if (v6) pp.v6[pp.n6++] = a;
        else pp.v4[pp.n4++] = a.v4();
        any = true;
        return true;
    }
    // fe80::/64 with the modified EUI-64 of `mac`: what the TAP's kernel derives.
    static ip_addr link_local(const uint8_t* mac) noexcept {
        ip_addr ll{};
        ll.b[0] = 0xfe;
        ll.b[1] = 0x80;
        const uint8_t eui[8] = {uint8_t(mac[0] ^ 0x02), mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]};
        for (int i = 0; i < 8; ++i) ll.b[8 + i] = eui[i];
        return ll;
    }
};

// Is this frame (parsed into `m`; `len` bytes at `frame`) for the appliance, on a port
// with addresses `a`? Untagged frames only (the TAP knows no VLAN): ARP with our target
// address; IPv4/IPv6 to our address; ICMPv6 NS/NA whose target is ours. Pure; any thread.
inline bool is_for_appliance(const local_addresses::per_port& a, const packet_meta& m,
                             const uint8_t* frame, uint32_t len) noexcept {
    if (m.n_vlans) return false;
    auto is_v4 = [&](uint32_t addr) {
        for (unsigned k = 0; k < a.n4; ++k)
            if (a.v4[k] == addr) return true;
        return false;
    };
    auto is_v6 = [&](const uint8_t* addr) {
        for (unsigned k = 0; k < a.n6; ++k) {
            bool eq = true;
            for (int i = 0; i < 16 && eq; ++i) eq = a.v6[k].b[i] == addr[i];
            if (eq) return true;
        }
        return false;
    };
    switch (m.l3) {
    case l3_kind::ipv4: return a.n4 && is_v4(m.dst.v4());
    case l3_kind::ipv6:
        if (!a.n6) return false;
        if (is_v6(m.dst.b)) return true;
        // ND for our address: an NS goes to the solicited-node group, the target says whom.
        if (m.l4_proto == 58 && !(m.frag_flags & frag::is_fragment) && (m.icmp_type == 135 || m.icmp_type == 136) &&
            len >= uint32_t(m.l4_off) + 24u)
            return is_v6(frame + m.l4_off + 8);
        return false;
    case l3_kind::arp: {
        // htype 1, ptype 0x0800, hlen 6, plen 4; target protocol address at offset 24.
        if (!a.n4 || len < uint32_t(m.l3_off) + 28u) return false;
        const uint8_t* p = frame + m.l3_off;
        if (p[0] != 0 || p[1] != 1 || p[2] != 0x08 || p[3] != 0 || p[4] != 6 || p[5] != 4) return false;
        return is_v4((uint32_t(p[24]) << 24) | (uint32_t(p[25]) << 16) | (uint32_t(p[26]) << 8) | p[27]);
    }
    default: return false;
    }
}

struct exception_rings {
    rte_ring* to_control = nullptr;   // sl_exc_<k>: this worker produces
    rte_ring* from_control = nullptr; // sl_inj_<k>: this worker consumes
};

// Create every worker's two rings, fill its local_addresses and publish exception_info.
// Returns "" or an error. Main thread, after open_ports, before the workers start.
std::string create_exception_path(const fastpath_config& cfg, const port_set& ports, worker_set& ws);

// Before a (re)started primary initialises the EAL: wait, at most `seconds`, until no process
// holds the exception lock of `prefix` — a sluice-control still attached to the previous fast
// path keeps its shared memory mapped, and a new primary cannot map it until that process has
// let go (it re-executes itself as soon as it sees the old primary gone). Returns false on
// timeout. Main thread, before rte_eal_init.
bool wait_for_detached_secondary(const std::string& prefix, unsigned seconds);
// Free the rings and the memzone. Main thread, workers stopped.
void destroy_exception_path(worker_set& ws);

// One worker's exception stage: collects the mbufs for control during an iteration and
// enqueues them in bursts. Owned by the worker's pipeline; worker thread only.
class exception_stage {
public:
    explicit exception_stage(worker& w) noexcept : w_(w) {}

    // Take the frames for the appliance out of pkts[0..n) (meta at the same index; both
    // compacted in place) and stage them for control. Returns the number kept.
    uint16_t divert(rte_mbuf** pkts, packet_meta* meta, uint16_t n) noexcept;
    // Stage a copy of `m` (it matched LOG/NFLOG rule `rule` of the v4/v6 ruleset).
    void copy_logged(const rte_mbuf* m, bool v6, uint32_t rule) noexcept;
    // Enqueue what is staged; what the ring refuses is dropped (exception_ring_full).
    void flush() noexcept;
    // Dequeue up to `max` mbufs control injected (m->port: the DPDK port to send out of).
    unsigned dequeue_injected(rte_mbuf** pkts, unsigned max) noexcept;

private:
    void push(rte_mbuf* m) noexcept;

    worker& w_;
    std::array<rte_mbuf*, 256> staged_;
    uint16_t n_ = 0;
};

} // namespace sluice
