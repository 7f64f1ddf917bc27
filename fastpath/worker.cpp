// See worker.hpp. The per-burst pipeline:
//   rx burst -> parse (packet_meta per packet; malformed frames dropped with their reason)
//            -> steer (software-steered ports only: hand foreign flows to their owner)
//            -> filter (packet_filter: conntrack + the policy snapshot's classifier)
//            -> stage forwarded packets for the egress port (the peer of the ingress port),
//               REJECT replies for the ingress port; drop the rest with their reason
//            -> tx per egress port on this worker's queue, or hand to the worker that owns
//               a queue there; what a queue does not take is freed and counted (tx_full),
//               so back-pressure never leaks mbufs.
#include "worker.hpp"

#include "flow_key.hpp"
#include "reject.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_prefetch.h>

#include <spdlog/spdlog.h>

namespace sluice {

namespace {

constexpr unsigned max_workers = 64;
constexpr unsigned idle_polls_before_sleep = 32;
// Conntrack entries examined for expiry per loop iteration: a bounded cost, never a scan. With
// traffic, one per packet moved (a packet creates at most one entry, so the sweep keeps pace;
// a fixed count would weigh on small bursts), at most expire_per_burst. Idle, expire_when_idle
// at most once per idle_sweep_ns (1M entries/s: a 4M-flow table every 4 s): sweeping on
// every empty poll streamed the whole table through the cache for nothing, and with `idle =
// sleep` cost more CPU than the traffic between two sleeps.
constexpr uint32_t expire_per_burst = 32, expire_when_idle = 1024;
constexpr uint64_t idle_sweep_ns = 1'000'000;

// steady_ns() from the TSC: a clock_gettime per loop iteration cost 6 % of a saturated worker
// in this VM (kvm-clock). Rebased on steady_ns() every second, so the two clocks agree to the
// TSC's drift over a second.
class tsc_steady_clock {
public:
    tsc_steady_clock() : ns_per_tsc_(1e9 / double(rte_get_tsc_hz())), rebase_every_(rte_get_tsc_hz()) { rebase(); }
    uint64_t now() noexcept {
        uint64_t t = rte_rdtsc();
        if (t - base_tsc_ >= rebase_every_) {
            rebase();
            return base_ns_;
        }
        return base_ns_ + uint64_t(double(t - base_tsc_) * ns_per_tsc_);
    }

private:
    void rebase() noexcept {
        base_tsc_ = rte_rdtsc();
        base_ns_ = steady_ns();
    }
    double ns_per_tsc_;
    uint64_t rebase_every_, base_tsc_ = 0, base_ns_ = 0;
};

class pipeline {
public:
    explicit pipeline(worker& w) : w_(w), c_(w.counters), ps_(*w.ports), exc_(w) {}

    void run() noexcept;

private:
    void drop(rte_mbuf* m, drop_reason r) noexcept {
        c_.drops[size_t(r)].add(1);
        rte_pktmbuf_free(m);
    }

    // Parse a burst; drop malformed frames; compact survivors to the front of `pkts`,
    // their meta at the same index in meta_. Returns the number kept.
    uint16_t parse(rte_mbuf** pkts, uint16_t n) noexcept {
        uint16_t kept = 0;
        for (uint16_t i = 0; i < n; ++i) {
            if (i + 2 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 2], void*));
            rte_mbuf* m = pkts[i];
            auto r = parse_packet(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, m->pkt_len,
                                  meta_[kept]);
            if (!r.ok) {
                drop(m, r.reason);
                continue;
            }
            pkts[kept++] = m;
        }
        return kept;
    }

    // Software steering: hand packets of flows owned by other workers to their owner;
    // keep local ones (compacted in place with their meta).
    uint16_t steer(rte_mbuf** pkts, uint16_t n) noexcept {
        uint16_t kept = 0;
        for (uint16_t i = 0; i < n; ++i) {
            unsigned owner = symmetric_hash_l3(meta_[i]) % w_.n_workers;
            if (owner == w_.index) {
                if (kept != i) meta_[kept] = meta_[i];
                pkts[kept++] = pkts[i];
            } else {
                handoff_[owner][handoff_n_[owner]++] = pkts[i];
            }
        }
        flush_handoff(w_.redirect_out);
        return kept;
    }

    // Judge the first n packets (meta_ at the same index) under the current snapshot.
    void filter(rte_mbuf** pkts, uint16_t n) noexcept {
        for (uint16_t i = 0; i < n; ++i) {
            rte_mbuf* m = pkts[i];
            uint16_t in = ps_.index_of[m->port];
            filter_input& f = fin_[i];
            f.frame = rte_pktmbuf_mtod(m, const uint8_t*);
            f.frame_len = m->data_len;
            f.src_mac = m->data_len >= 12 ? f.frame + 6 : nullptr;
            f.cookie = m;
            f.wire_len = m->pkt_len;
            f.in_port = in == UINT16_MAX ? port_none : uint8_t(in);
            f.out_port = in == UINT16_MAX || ps_.ports[in].peer == UINT16_MAX
                             ? port_none
                             : uint8_t(ps_.ports[in].peer);
        }
        w_.filter->run(*snap_, {meta_.data(), n}, {fin_.data(), n}, {dec_.data(), n}, now_s_, now_ns_);
    }

    // Held fragments the filter hands back with their datagram's fate.
    void act_on_released() noexcept {
        for (const filter_release& r : w_.filter->released()) {
            auto* m = static_cast<rte_mbuf*>(r.cookie);
            uint16_t in = ps_.index_of[m->port];
            if (r.meta && r.decision.log_rule != no_rule) // a datagram is logged once
                exc_.copy_logged(m, r.meta->l3 == l3_kind::ipv6, r.decision.log_rule);
            if (r.decision.action == filter_action::forward) {
                stage_to(m, in == UINT16_MAX ? UINT16_MAX : ps_.ports[in].peer);
                continue;
            }
            if (r.decision.action == filter_action::reject && r.meta)
                send_reject(m, in, *r.meta, r.decision.reject);
            drop(m, r.decision.reason);
        }
    }

    // Act on the filter's decisions (nullptr: forward all) and stage for transmission:
    // forwarded packets to the peer of their ingress port, REJECT replies to the ingress port.
    void stage(rte_mbuf** pkts, uint16_t n, const filter_decision* dec) noexcept {
        for (uint16_t i = 0; i < n; ++i) {
            rte_mbuf* m = pkts[i];
            uint16_t in = ps_.index_of[m->port];
            if (dec && dec[i].action == filter_action::hold) continue; // the fragment cache has it
            if (dec && dec[i].log_rule != no_rule)
                exc_.copy_logged(m, meta_[i].l3 == l3_kind::ipv6, dec[i].log_rule);
            if (dec && dec[i].action != filter_action::forward) {
                if (dec[i].action == filter_action::reject) send_reject(m, in, meta_[i], dec[i].reject);
                drop(m, dec[i].reason);
                continue;
            }
            stage_to(m, in == UINT16_MAX ? UINT16_MAX : ps_.ports[in].peer);
        }
    }

    void stage_to(rte_mbuf* m, uint16_t out) noexcept {
        if (out == UINT16_MAX) {
            drop(m, drop_reason::no_egress);
            return;
        }
        if (!ps_.ports[out].link_up.load(std::memory_order_relaxed)) {
            drop(m, drop_reason::egress_link_down);
            return;
        }
        tx_[out][tx_n_[out]++] = m;
        if (tx_n_[out] == max_burst) flush_port(out);
    }

    // The reply iptables' REJECT would send, back out of the port the packet came in on.
    void send_reject(const rte_mbuf* m, uint16_t in, const packet_meta& meta, reject_kind kind) noexcept {
        rte_mbuf* r = in == UINT16_MAX ? nullptr : rte_pktmbuf_alloc(w_.pool);
        size_t len = 0;
        if (r)
            len = build_reject(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, meta, kind,
                               rte_pktmbuf_mtod(r, uint8_t*), rte_pktmbuf_tailroom(r));
        if (!len) {
            if (r) rte_pktmbuf_free(r);
            c_.reject_no_reply.add(1);
            return;
        }
        r->data_len = uint16_t(len);
        r->pkt_len = uint32_t(len);
        r->port = m->port;
        c_.reject_replies.add(1);
        stage_to(r, in);
    }

    void flush_port(uint16_t out) noexcept {
        uint16_t n = tx_n_[out];
        tx_n_[out] = 0;
        port& p = ps_.ports[out];
        if (w_.index >= p.tx_queues) { // no TX queue of ours there: the owner of one sends
            unsigned owner = w_.index % p.tx_queues;
            for (uint16_t i = 0; i < n; ++i) handoff_[owner][handoff_n_[owner]++] = tx_[out][i];
            flush_handoff(w_.tx_out);
            return;
        }
        uint32_t len[max_burst];
        for (uint16_t i = 0; i < n; ++i) len[i] = tx_[out][i]->pkt_len;
        uint16_t sent = rte_eth_tx_burst(p.id, uint16_t(w_.index), tx_[out].data(), n);
        uint64_t bytes = 0;
        for (uint16_t i = 0; i < sent; ++i) bytes += len[i];
        c_.port[out].tx_packets.add(sent);
        c_.port[out].tx_bytes.add(bytes);
        for (uint16_t i = sent; i < n; ++i) drop(tx_[out][i], drop_reason::tx_full);
    }

    void flush_tx() noexcept {
        for (uint16_t out = 0; out < ps_.ports.size(); ++out)
            if (tx_n_[out]) flush_port(out);
    }

    void flush_handoff(std::vector<rte_ring*>& rings) noexcept {
        for (unsigned k = 0; k < w_.n_workers; ++k) {
            uint16_t n = handoff_n_[k];
            if (!n) continue;
            handoff_n_[k] = 0;
            unsigned done = rte_ring_sp_enqueue_burst(
                rings[k], reinterpret_cast<void* const*>(handoff_[k].data()), n, nullptr);
            c_.redirected_out.add(done);
            for (unsigned i = done; i < n; ++i) drop(handoff_[k][i], drop_reason::redirect_ring_full);
        }
    }

    uint16_t poll_rx(const rx_queue_ref& q) noexcept {
        port& p = ps_.ports[q.port_index];
        rte_mbuf* pkts[max_burst];
        uint16_t n = rte_eth_rx_burst(p.id, q.queue, pkts, uint16_t(w_.cfg->burst));
        if (!n) return 0;
        uint64_t bytes = 0;
        for (uint16_t i = 0; i < n; ++i) bytes += pkts[i]->pkt_len;
        c_.port[q.port_index].rx_packets.add(n);
        c_.port[q.port_index].rx_bytes.add(bytes);
        uint16_t k = parse(pkts, n);
        k = exc_.divert(pkts, meta_.data(), k);
        if (p.steer == steering::software && w_.n_workers > 1) k = steer(pkts, k);
        filter(pkts, k);
        stage(pkts, k, dec_.data());
        act_on_released();
        return n;
    }

    // Packets other workers steered to us: not yet processed.
    uint16_t poll_redirect(rte_ring* r) noexcept {
        rte_mbuf* pkts[max_burst];
        unsigned n = rte_ring_sc_dequeue_burst(r, reinterpret_cast<void**>(pkts), w_.cfg->burst, nullptr);
        if (!n) return 0;
        c_.redirected_in.add(n);
        uint16_t k = parse(pkts, uint16_t(n));
        filter(pkts, k);
        stage(pkts, k, dec_.data());
        act_on_released();
        return uint16_t(n);
    }

    // Frames sluice-control injects (the appliance's kernel stack): out of m->port, unfiltered.
    uint16_t poll_inject() noexcept {
        rte_mbuf* pkts[max_burst];
        unsigned n = exc_.dequeue_injected(pkts, w_.cfg->burst);
        for (unsigned i = 0; i < n; ++i)
            stage_to(pkts[i], pkts[i]->port < RTE_MAX_ETHPORTS ? ps_.index_of[pkts[i]->port] : UINT16_MAX);
        return uint16_t(n);
    }

    // Packets already processed by another worker that has no TX queue on their port.
    uint16_t poll_tx_handoff(rte_ring* r) noexcept {
        rte_mbuf* pkts[max_burst];
        unsigned n = rte_ring_sc_dequeue_burst(r, reinterpret_cast<void**>(pkts), w_.cfg->burst, nullptr);
        if (!n) return 0;
        c_.redirected_in.add(n);
        stage(pkts, uint16_t(n), nullptr);
        return uint16_t(n);
    }

    // Conntrack events: a flow confirmed or destroyed, queued for the main thread. Runs in
    // the flow table's insert/erase (within a burst): no allocation, no lock, no log.
    static void emit_ct_event(void* ctx, flow_event ev, const flow_entry& e) noexcept {
        auto* w = static_cast<worker*>(ctx);
        ct_event_record r;
        make_event(r, ev, e, w->index);
        if (rte_ring_sp_enqueue_elem(w->ct_events, &r, sizeof r) != 0) w->counters.ct_events_lost.add(1);
    }

    // Once per loop iteration: follow the subscription flag, and run a chunk of a pending
    // conntrack command (ct_mailbox in worker.hpp).
    void conntrack_housekeeping(bool busy) noexcept {
        flow_table& t = w_.filter->tracker().table();
        const bool on = w_.ct_events_on.load(std::memory_order_relaxed) && w_.ct_events;
        if (on != events_on_) {
            events_on_ = on;
            t.set_event_sink(on ? &sink_ : nullptr);
        }
        ct_mailbox& mb = w_.ct_cmd;
        const uint32_t posted = mb.posted.load(std::memory_order_acquire);
        if (posted == mb.done.load(std::memory_order_relaxed)) return;
        if (posted != cmd_seq_) {
            cmd_seq_ = posted;
            cmd_cursor_ = 0;
            cmd_deleted_ = 0;
        }
        const uint32_t cap = t.capacity();
        const uint32_t chunk = busy ? ct_command_chunk : ct_command_chunk_idle;
        const uint32_t end = cap - cmd_cursor_ > chunk ? cmd_cursor_ + chunk : cap;
        // With subscribers, erase no more flows than the event ring has room for: a large
        // delete then takes a few more iterations (the main thread drains meanwhile)
        // instead of losing its destroy events.
        uint32_t room = events_on_ ? rte_ring_free_count(w_.ct_events) : UINT32_MAX;
        uint32_t i = cmd_cursor_;
        for (; i < end; ++i)
            if (mb.filter.matches(t.at(i), now_s_)) {
                if (!room) break;
                t.erase(i);
                ++cmd_deleted_;
                --room;
            }
        cmd_cursor_ = i;
        if (i == cap) {
            mb.deleted = cmd_deleted_;
            mb.done.store(posted, std::memory_order_release);
        }
    }

    worker& w_;
    worker_counters& c_;
    port_set& ps_;
    flow_event_sink sink_{&pipeline::emit_ct_event, &w_};
    bool events_on_ = false;
    uint32_t cmd_seq_ = 0, cmd_cursor_ = 0; // the conntrack command being run, and where
    uint64_t cmd_deleted_ = 0;
    exception_stage exc_; // frames for the appliance and LOG copies to sluice-control
    std::array<packet_meta, max_burst> meta_;
    std::array<filter_input, max_burst> fin_;
    std::array<filter_decision, max_burst> dec_;
    const policy_snapshot* snap_ = nullptr; // for this loop iteration
    tsc_steady_clock clock_;
    uint32_t now_s_ = 0;
    uint64_t now_ns_ = 0;
    std::array<std::array<rte_mbuf*, max_burst>, max_ports> tx_;
    std::array<uint16_t, max_ports> tx_n_{};
    std::array<std::array<rte_mbuf*, max_burst>, max_workers> handoff_;
    std::array<uint16_t, max_workers> handoff_n_{};
};

void pipeline::run() noexcept {
    const bool may_sleep = w_.cfg->idle == idle_mode::sleep;
    const unsigned max_sleep = w_.cfg->idle_sleep_max_us;
    unsigned empty_polls = 0, sleep_us = 0;
    uint64_t next_idle_sweep_ns = 0;
    w_.policy->register_worker(w_.index);
    while (!w_.quit->load(std::memory_order_relaxed)) {
        uint64_t t0 = rte_rdtsc();
        // One policy and one clock reading per iteration; quiescent once it is over.
        snap_ = w_.policy->current();
        now_ns_ = clock_.now();
        now_s_ = uint32_t(now_ns_ / 1000000000u);
        unsigned moved = 0;
        for (const auto& q : w_.rx) moved += poll_rx(q);
        for (unsigned k = 0; k < w_.n_workers; ++k) {
            if (w_.redirect_in[k]) moved += poll_redirect(w_.redirect_in[k]);
            if (w_.tx_in[k]) moved += poll_tx_handoff(w_.tx_in[k]);
        }
        moved += poll_inject();
        uint32_t sweep = std::min(moved, expire_per_burst);
        if (!moved && now_ns_ >= next_idle_sweep_ns) {
            sweep = expire_when_idle;
            next_idle_sweep_ns = now_ns_ + idle_sweep_ns;
        }
        w_.filter->expire(*snap_, now_s_, sweep);
        conntrack_housekeeping(moved != 0);
        act_on_released();
        exc_.flush();
        flush_tx();
        snap_ = nullptr;
        w_.policy->quiescent(w_.index);
        if (moved) {
            c_.busy_cycles.add(rte_rdtsc() - t0);
            empty_polls = sleep_us = 0;
            continue;
        }
        if (may_sleep && ++empty_polls > idle_polls_before_sleep) {
            sleep_us = sleep_us ? std::min(sleep_us * 2, max_sleep) : 1;
            rte_delay_us_sleep(sleep_us);
            c_.sleeps.add(1);
        }
        c_.idle_cycles.add(rte_rdtsc() - t0);
    }
    // Fragments still held belong to no one else: drop them (counted) before leaving.
    w_.filter->drain();
    act_on_released();
    exc_.flush();
    flush_tx();
    w_.filter->tracker().table().set_event_sink(nullptr); // sink_ dies with the pipeline
    w_.policy->unregister_worker(w_.index);
}

} // namespace

worker_set::~worker_set() {
    destroy_exception_path(*this);
    for (auto& w : workers) {
        for (auto* rings : {&w->redirect_out, &w->tx_out})
            for (rte_ring* r : *rings) rte_ring_free(r);
        rte_ring_free(w->ct_events);
    }
}

std::string build_workers(const fastpath_config& cfg, port_set& ports,
                          const std::atomic<bool>& quit, const std::vector<unsigned>& lcores,
                          policy_slot& policy, rte_mempool* pool, worker_set& out) {
    const unsigned n = cfg.workers;
    if (n > max_workers) return "too many workers";
    if (ports.ports.size() > max_ports)
        return "too many ports (at most " + std::to_string(max_ports) + ")";
    if (cfg.burst > max_burst) return "burst too large";
    for (unsigned i = 0; i < n; ++i) {
        auto w = std::make_unique<worker>();
        w->index = i;
        w->lcore = lcores[i];
        w->n_workers = n;
        w->cfg = &cfg;
        w->ports = &ports;
        w->quit = &quit;
        w->policy = &policy;
        w->pool = pool;
        w->filter = std::make_unique<packet_filter>(cfg.conntrack, cfg.conntrack_max / n,
                                                    cfg.frag_cache_size, i);
        w->redirect_out.assign(n, nullptr);
        w->redirect_in.assign(n, nullptr);
        w->tx_out.assign(n, nullptr);
        w->tx_in.assign(n, nullptr);
        std::string ev = "sl_ctev_" + std::to_string(i);
        w->ct_events = rte_ring_create_elem(ev.c_str(), sizeof(ct_event_record), ct_event_ring_size,
                                            int(rte_socket_id()), RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (!w->ct_events) return "cannot create ring " + ev + ": " + rte_strerror(rte_errno);
        out.workers.push_back(std::move(w));
    }
    // RX queue q of every port is polled by worker q.
    for (uint16_t pi = 0; pi < ports.ports.size(); ++pi)
        for (uint16_t q = 0; q < ports.ports[pi].rx_queues; ++q)
            out.workers[q]->rx.push_back({pi, q});
    if (auto e = create_exception_path(cfg, ports, out); !e.empty()) return e;
    if (n == 1) return {};
    for (unsigned from = 0; from < n; ++from)
        for (unsigned to = 0; to < n; ++to) {
            if (from == to) continue;
            for (auto [kind, outv, inv] : {std::tuple{"rd", &worker::redirect_out, &worker::redirect_in},
                                           std::tuple{"tx", &worker::tx_out, &worker::tx_in}}) {
                std::string name = std::string("sl_") + kind + "_" + std::to_string(from) + "_" + std::to_string(to);
                rte_ring* r = rte_ring_create(name.c_str(), cfg.redirect_ring_size, int(rte_socket_id()),
                                              RING_F_SP_ENQ | RING_F_SC_DEQ);
                if (!r) return "cannot create ring " + name + ": " + rte_strerror(rte_errno);
                (out.workers[from].get()->*outv)[to] = r;
                (out.workers[to].get()->*inv)[from] = r;
            }
        }
    return {};
}

int worker_main(void* arg) {
    auto* w = static_cast<worker*>(arg);
    // The pipeline's scratch arrays are large: allocate once, here, before the loop.
    auto p = std::make_unique<pipeline>(*w);
    p->run();
    return 0;
}

} // namespace sluice
