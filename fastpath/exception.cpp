// See exception.hpp.
#include "exception.hpp"

#include "config.hpp"
#include "port.hpp"
#include "worker.hpp"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_memzone.h>
#include <rte_ring.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace sluice {

static_assert(max_ports <= exception_max_ports);
static_assert(max_addresses_per_port <= exception_max_addresses);

uint16_t exception_stage::divert(rte_mbuf** pkts, packet_meta* meta, uint16_t n) noexcept {
    const local_addresses& local = w_.local;
    if (!local.any) return n;
    const port_set& ps = *w_.ports;
    uint16_t kept = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        const uint16_t in = ps.index_of[m->port];
        if (in < exception_max_ports &&
            is_for_appliance(local.port[in], meta[i], rte_pktmbuf_mtod(m, const uint8_t*), m->data_len)) {
            m->hash.usr = exception_mark::make(exception_reason::local);
            push(m);
            continue;
        }
        if (kept != i) meta[kept] = meta[i];
        pkts[kept++] = m;
    }
    return kept;
}

void exception_stage::copy_logged(const rte_mbuf* m, bool v6, uint32_t rule) noexcept {
    rte_mbuf* c = rte_pktmbuf_copy(m, w_.pool, 0, UINT32_MAX);
    if (!c) {
        w_.counters.exception_copy_failed.add(1);
        return;
    }
    c->hash.usr = exception_mark::make(exception_reason::log, v6, rule);
    push(c);
}

void exception_stage::push(rte_mbuf* m) noexcept {
    staged_[n_++] = m;
    if (n_ == staged_.size()) flush();
}

void exception_stage::flush() noexcept {
    if (!n_) return;
    const unsigned n = n_;
    n_ = 0;
    const unsigned done = rte_ring_sp_enqueue_burst(w_.exc.to_control,
                                                    reinterpret_cast<void* const*>(staged_.data()), n, nullptr);
    w_.counters.to_control.add(done);
    if (done == n) return;
    w_.counters.drops[size_t(drop_reason::exception_ring_full)].add(n - done);
    for (unsigned i = done; i < n; ++i) rte_pktmbuf_free(staged_[i]);
}

unsigned exception_stage::dequeue_injected(rte_mbuf** pkts, unsigned max) noexcept {
    const unsigned n = rte_ring_sc_dequeue_burst(w_.exc.from_control, reinterpret_cast<void**>(pkts), max, nullptr);
    w_.counters.from_control.add(n);
    return n;
}

std::string create_exception_path(const fastpath_config& cfg, const port_set& ports, worker_set& ws) {
    // The appliance's addresses per port, plus the EUI-64 link-local of ports with IPv6.
    local_addresses local;
    for (const port_address& a : cfg.addresses) local.add(a.port, a.v6, a.addr);
    for (std::size_t i = 0; i < ports.ports.size(); ++i)
        if (local.port[i].n6) local.add(i, true, local_addresses::link_local(ports.ports[i].mac.addr_bytes));
    for (auto& w : ws.workers) {
        w->local = local;
        for (auto [name, ring] : {std::pair{exception_ring_name(w->index), &w->exc.to_control},
                                  std::pair{inject_ring_name(w->index), &w->exc.from_control}}) {
            *ring = rte_ring_create(name.c_str(), cfg.exception_ring_size, int(rte_socket_id()),
                                    RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (!*ring) return "cannot create ring " + name + ": " + rte_strerror(rte_errno);
        }
    }
    if (!cfg.addresses.empty() && !rte_eal_has_hugepages())
        spdlog::warn("running without hugepages: sluice-control cannot attach, so nothing answers "
                     "for the `address` lines (their frames are dropped as exception_ring_full)");
    const rte_memzone* mz = rte_memzone_reserve(exception_info_zone, sizeof(exception_info),
                                                int(rte_socket_id()), 0);
    if (!mz) return std::string("cannot reserve memzone ") + exception_info_zone + ": " + rte_strerror(rte_errno);
    ws.exception_info = mz;
    auto* info = static_cast<exception_info*>(mz->addr);
    std::memset(info, 0, sizeof *info);
    info->version = exception_info_version;
    info->n_workers = uint32_t(ws.workers.size());
    info->n_ports = uint32_t(ports.ports.size());
    info->ring_size = cfg.exception_ring_size;
    for (std::size_t i = 0; i < ports.ports.size(); ++i) {
        exception_port_info& pi = info->ports[i];
        std::strncpy(pi.name, ports.ports[i].name.c_str(), sizeof pi.name - 1);
        pi.port_id = ports.ports[i].id;
        // The TAP's MTU: the port's, lowered so that a frame from the kernel fits one mbuf.
        pi.mtu = uint16_t(std::min<unsigned>(cfg.mtu, cfg.mbuf_size - RTE_PKTMBUF_HEADROOM - RTE_ETHER_HDR_LEN));
        std::memcpy(pi.mac, ports.ports[i].mac.addr_bytes, 6);
    }
    for (const port_address& a : cfg.addresses) {
        exception_port_info& pi = info->ports[a.port];
        exception_address& ea = pi.addresses[pi.n_addresses++];
        ea.v6 = a.v6;
        ea.prefix = a.prefix;
        std::memcpy(ea.addr, a.addr.b, 16);
    }
    __atomic_store_n(&info->magic, exception_info_magic, __ATOMIC_RELEASE);
    return {};
}

void destroy_exception_path(worker_set& ws) {
    // Tell an attached control process first: it stops touching the rings when it sees this.
    if (ws.exception_info)
        __atomic_store_n(&static_cast<exception_info*>(ws.exception_info->addr)->magic, 0u, __ATOMIC_RELEASE);
    for (auto& w : ws.workers) {
        for (rte_ring** r : {&w->exc.to_control, &w->exc.from_control}) {
            if (!*r) continue;
            rte_ring_free(*r); // mbufs still on it belong to the pool, freed whole at exit
            *r = nullptr;
        }
    }
    if (ws.exception_info) {
        rte_memzone_free(ws.exception_info);
        ws.exception_info = nullptr;
    }
}

bool wait_for_detached_secondary(const std::string& prefix, unsigned seconds) {
    const std::string lock = exception_lock_path(prefix);
    int fd = ::open(lock.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return true; // nobody ever attached
    bool said = false, free = false;
    for (unsigned i = 0; i < seconds * 20; ++i) {
        if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
            ::flock(fd, LOCK_UN);
            free = true;
            break;
        }
        if (!said) spdlog::info("waiting for sluice-control to detach from the previous fast path ({})", lock);
        said = true;
        ::usleep(50000);
    }
    ::close(fd);
    return free;
}

} // namespace sluice
