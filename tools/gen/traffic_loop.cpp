// See traffic_loop.hpp.
#include "traffic_loop.hpp"

#include "frame_builder.hpp"
#include "tcp_workload.hpp"

#include "packet.hpp"

#include <rte_cycles.h>
#include <rte_mbuf.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>

#include <time.h>

namespace sluice::gen {

namespace {

constexpr unsigned max_burst = 256;

std::string err(const gen_config& cfg, std::size_t i, const char* what, int rc) {
    return "port '" + cfg.ports[i].name + "' (" + cfg.ports[i].device + "): " + what + ": " + rte_strerror(-rc) + " (" +
           std::to_string(rc) + ")";
}

mac_addr to_mac(const rte_ether_addr& a) {
    mac_addr m;
    std::memcpy(m.data(), a.addr_bytes, 6);
    return m;
}

struct tx_stream {
    std::unique_ptr<stream_frames> frames;
    std::optional<flow_cursor> flow; // of packet `built`
    uint16_t port = 0;         // index into ports
    uint64_t rate = 0, count = 0;
    bool done = false;
    rte_mbuf* pending[max_burst];
    unsigned n_pending = 0, pending_off = 0;
};

// A port's TX buffer for TCP segments: appended to while handling a burst, flushed once per
// loop iteration; what the queue refuses stays for the next flush.
struct segment_buffer {
    static constexpr unsigned capacity = 2048;
    rte_mbuf* m[capacity];
    unsigned n = 0;
};

struct rx_port_role {
    bool tcp_client = false, tcp_server = false;
};

} // namespace

void fill_tx_pool(rte_mempool* pool) {
    rte_mempool_obj_iter(
        pool,
        [](rte_mempool*, void*, void* obj, unsigned) {
            auto* m = static_cast<rte_mbuf*>(obj);
            write_fill(static_cast<uint8_t*>(m->buf_addr) + RTE_PKTMBUF_HEADROOM, 0,
                       uint32_t(m->buf_len - RTE_PKTMBUF_HEADROOM));
        },
        nullptr);
}

std::string open_gen_ports(const gen_config& cfg, rte_mempool* rx_pool, uint16_t mtu, std::vector<open_port>& out) {
    // `out` holds the ports found so far, so close_gen_ports() closes exactly those.
    out.clear();
    for (std::size_t i = 0; i < cfg.ports.size(); ++i) {
        open_port found;
        std::string dn = dpdk_device_name(cfg.ports[i].device);
        if (rte_eth_dev_get_port_by_name(dn.c_str(), &found.id) != 0)
            return "port '" + cfg.ports[i].name + "': device " + dn +
                   " not found (PCI device not bound to vfio-pci/uio, or the vdev failed to probe: see the EAL "
                   "messages above)";
        auto& p = out.emplace_back(found);
        rte_eth_dev_info info{};
        if (int rc = rte_eth_dev_info_get(p.id, &info); rc != 0) return err(cfg, i, "device info", rc);
        rte_eth_conf conf{};
        if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
            conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
        if (int rc = rte_eth_dev_configure(p.id, 1, 1, &conf); rc != 0) return err(cfg, i, "configure", rc);
        uint16_t rxd = uint16_t(cfg.rx_desc), txd = uint16_t(cfg.tx_desc);
        if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(p.id, &rxd, &txd); rc != 0)
            return err(cfg, i, "descriptor counts", rc);
        if (mtu > RTE_ETHER_MTU) {
            if (info.max_mtu < mtu)
                return "port '" + cfg.ports[i].name + "': frames of the configured size need MTU " +
                       std::to_string(mtu) + ", above the device maximum " + std::to_string(info.max_mtu);
            if (int rc = rte_eth_dev_set_mtu(p.id, mtu); rc != 0 && rc != -ENOTSUP) return err(cfg, i, "set mtu", rc);
        }
        int socket = rte_eth_dev_socket_id(p.id);
        if (socket < 0) socket = 0;
        rte_eth_txconf txc = info.default_txconf;
        txc.offloads = conf.txmode.offloads;
        if (int rc = rte_eth_rx_queue_setup(p.id, 0, rxd, unsigned(socket), nullptr, rx_pool); rc != 0)
            return err(cfg, i, "rx queue setup", rc);
        if (int rc = rte_eth_tx_queue_setup(p.id, 0, txd, unsigned(socket), &txc); rc != 0)
            return err(cfg, i, "tx queue setup", rc);
        if (int rc = rte_eth_dev_start(p.id); rc != 0)
            return err(cfg, i, "start", rc) +
                   (dn.rfind("net_memif", 0) == 0 ? " (a memif client needs its peer serving the socket)" : "");
        if (int rc = rte_eth_promiscuous_enable(p.id); rc != 0 && rc != -ENOTSUP)
            spdlog::warn("port '{}': promiscuous mode not enabled: {}", cfg.ports[i].name, rte_strerror(-rc));
        rte_eth_macaddr_get(p.id, &p.mac);
        rte_eth_stats_reset(p.id);
        spdlog::info("port '{}' (ethdev {} {}) started", cfg.ports[i].name, p.id, dn);
    }
    return {};
}

std::string wait_for_links(const gen_config& cfg, const std::vector<open_port>& ports, const std::atomic<bool>& quit) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(cfg.link_wait_s);
    for (;;) {
        std::size_t down = ports.size();
        for (std::size_t i = 0; i < ports.size(); ++i) {
            rte_eth_link link{};
            if (rte_eth_link_get_nowait(ports[i].id, &link) == 0 && link.link_status == RTE_ETH_LINK_UP) continue;
            down = i;
            break;
        }
        if (down == ports.size()) return {};
        if (quit.load() || std::chrono::steady_clock::now() >= deadline)
            return "port '" + cfg.ports[down].name + "': link still down after " + std::to_string(cfg.link_wait_s) +
                   " s (--link-wait); for net_memif, is the peer (role=server) running on the same socket?";
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

void close_gen_ports(const std::vector<open_port>& ports) {
    for (const auto& p : ports) {
        rte_eth_dev_stop(p.id);
        rte_eth_dev_close(p.id);
    }
}

run_result run_traffic(const gen_config& cfg, const std::vector<open_port>& ports, rte_mempool* tx_pool,
                       const std::atomic<bool>& quit) {
    const uint64_t hz = rte_get_tsc_hz();
    const unsigned burst = cfg.burst;
    run_result res;
    res.tsc_hz = hz;
    res.streams.resize(cfg.streams.size());
    res.ports.resize(ports.size());

    // Streams; default MACs: tx port's own as source, the rx port's as destination. All
    // frames share the TX pool: a stream rewrites the fill as far as the others' headers reach.
    uint32_t dirty_end = cfg.tcp ? cfg.tcp->header_len() : 0u;
    for (const auto& sp : cfg.streams) dirty_end = std::max<uint32_t>(dirty_end, sp.header_len() + signature_len);
    std::vector<tx_stream> streams(cfg.streams.size());
    std::vector<std::size_t> rx_port_of(cfg.streams.size(), SIZE_MAX);
    for (std::size_t i = 0; i < cfg.streams.size(); ++i) {
        const auto& sp = cfg.streams[i];
        auto& st = streams[i];
        st.port = uint16_t(cfg.port_index(sp.tx));
        mac_addr smac = sp.smac ? *sp.smac : to_mac(ports[st.port].mac);
        mac_addr dmac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        if (!sp.rx.empty()) {
            rx_port_of[i] = cfg.port_index(sp.rx);
            dmac = to_mac(ports[rx_port_of[i]].mac);
        }
        if (sp.dmac) dmac = *sp.dmac;
        st.frames = std::make_unique<stream_frames>(sp, uint16_t(i), smac, dmac, dirty_end);
        st.flow.emplace(sp);
        st.rate = sp.rate_pps;
        st.count = sp.count;
    }
    std::unique_ptr<tcp_workload> tcp;
    std::unique_ptr<tcp_frames> tcp_build;
    std::size_t tcp_client = SIZE_MAX, tcp_server = SIZE_MAX;
    if (cfg.tcp) {
        tcp_client = cfg.port_index(cfg.tcp->client);
        tcp_server = cfg.port_index(cfg.tcp->server);
        tcp = std::make_unique<tcp_workload>(*cfg.tcp, hz);
        tcp_build = std::make_unique<tcp_frames>(*cfg.tcp, to_mac(ports[tcp_client].mac), to_mac(ports[tcp_server].mac));
    }
    auto seg_buf = std::make_unique<segment_buffer[]>(ports.size());
    std::vector<rx_port_role> role(ports.size());
    if (tcp) {
        role[tcp_client].tcp_client = true;
        role[tcp_server].tcp_server = true;
    }

    tcp_segment segs[max_burst * tcp_workload::max_replies];
    auto emit = [&](const tcp_segment* s, unsigned n) {
        for (unsigned i = 0; i < n; ++i) {
            auto& b = seg_buf[s[i].from_client ? tcp_client : tcp_server];
            auto& pr = res.ports[s[i].from_client ? tcp_client : tcp_server];
            rte_mbuf* m = b.n < segment_buffer::capacity ? rte_pktmbuf_alloc(tx_pool) : nullptr;
            if (!m) {
                ++pr.tx_dropped;
                continue;
            }
            uint16_t len = tcp_build->build(s[i].from_client, s[i].flow, s[i].seq, s[i].ack, s[i].flags, s[i].payload,
                                            rte_pktmbuf_mtod(m, uint8_t*));
            m->data_len = len;
            m->pkt_len = len;
            b.m[b.n++] = m;
        }
        tcp->count_sent(n);
    };
    auto flush_segments = [&]() {
        for (std::size_t p = 0; p < ports.size(); ++p) {
            auto& b = seg_buf[p];
            if (!b.n) continue;
            uint16_t sent = rte_eth_tx_burst(ports[p].id, 0, b.m, uint16_t(std::min(b.n, 65535u)));
            for (uint16_t i = 0; i < sent; ++i) res.ports[p].tx_bytes += b.m[i]->pkt_len;
            res.ports[p].tx_packets += sent;
            std::memmove(b.m, b.m + sent, (b.n - sent) * sizeof(rte_mbuf*));
            b.n -= sent;
        }
    };

    rte_mbuf* rx[max_burst];
    auto receive = [&]() {
        for (std::size_t p = 0; p < ports.size(); ++p) {
            uint16_t n = rte_eth_rx_burst(ports[p].id, 0, rx, uint16_t(burst));
            if (!n) continue;
            uint64_t now = rte_rdtsc();
            auto& pr = res.ports[p];
            pr.rx_packets += n;
            unsigned n_segs = 0;
            for (uint16_t i = 0; i < n; ++i) {
                rte_mbuf* m = rx[i];
                pr.rx_bytes += m->pkt_len;
                const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
                auto sig = frame_signature(d, m->data_len);
                if (sig && sig->stream < streams.size() && rx_port_of[sig->stream] == p) {
                    auto& sr = res.streams[sig->stream];
                    if (sr.rx_packets && int32_t(sig->seq - sr.last_seq) <= 0) ++sr.reordered;
                    else sr.last_seq = sig->seq;
                    ++sr.rx_packets;
                    sr.rx_bytes += m->pkt_len;
                    if (sig->tsc <= now) sr.latency.record(now - sig->tsc);
                    continue;
                }
                packet_meta meta;
                if (!parse_packet(d, m->data_len, m->pkt_len, meta).ok) {
                    ++pr.rx_unmatched;
                    continue;
                }
                if (role[p].tcp_client || role[p].tcp_server) {
                    bool at_client = role[p].tcp_client;
                    auto flow = tcp_build->flow_of(meta, !at_client);
                    if (flow) {
                        n_segs += tcp->receive(*flow, meta, at_client, now, segs + n_segs);
                        continue;
                    }
                    tcp->count_unexpected();
                }
                ++pr.rx_unmatched;
            }
            rte_pktmbuf_free_bulk(rx, n);
            if (n_segs) emit(segs, n_segs);
        }
    };

    auto send_streams = [&](uint64_t now) {
        bool all_done = true;
        for (std::size_t i = 0; i < streams.size(); ++i) {
            auto& st = streams[i];
            if (st.done) continue;
            auto& sr = res.streams[i];
            auto& pr = res.ports[st.port];
            uint16_t pid = ports[st.port].id;
            if (st.n_pending) {
                uint16_t sent = rte_eth_tx_burst(pid, 0, st.pending + st.pending_off, uint16_t(st.n_pending));
                uint64_t bytes = 0;
                for (uint16_t k = 0; k < sent; ++k) bytes += st.pending[st.pending_off + k]->pkt_len;
                sr.tx_bytes += bytes;
                pr.tx_bytes += bytes;
                sr.tx_packets += sent;
                pr.tx_packets += sent;
                st.n_pending -= sent;
                st.pending_off += sent;
                if (sent) sr.last_tx_tsc = now;
                if (st.n_pending) {
                    all_done = false;
                    continue;
                }
            }
            uint64_t target = st.rate ? due_by(now, sr.start_tsc, st.rate, hz) : UINT64_MAX;
            if (st.count && target > st.count) target = st.count;
            if (sr.built >= target) {
                if (st.count && sr.built >= st.count) st.done = true;
                else all_done = false;
                continue;
            }
            all_done = false;
            unsigned want = unsigned(std::min<uint64_t>(target - sr.built, burst));
            rte_mbuf** b = st.pending;
            if (rte_pktmbuf_alloc_bulk(tx_pool, b, want) != 0) {
                ++pr.alloc_failed;
                continue;
            }
            // The pool's mbufs are mostly cold (the peer holds thousands): fetch the lines
            // to be written while the first frames are built.
            for (unsigned k = 0; k < want; ++k) __builtin_prefetch(rte_pktmbuf_mtod(b[k], void*), 1);
            for (unsigned k = 0; k < want; ++k) {
                uint16_t len = st.frames->build(sr.built + k, **st.flow, now, rte_pktmbuf_mtod(b[k], uint8_t*));
                st.flow->advance();
                b[k]->data_len = len;
                b[k]->pkt_len = len;
            }
            sr.built += want;
            uint16_t sent = rte_eth_tx_burst(pid, 0, b, uint16_t(want));
            uint64_t bytes = 0;
            for (uint16_t k = 0; k < sent; ++k) bytes += b[k]->pkt_len;
            sr.tx_bytes += bytes;
            pr.tx_bytes += bytes;
            sr.tx_packets += sent;
            pr.tx_packets += sent;
            if (sent) sr.last_tx_tsc = now;
            st.pending_off = sent;
            st.n_pending = want - sent;
        }
        return all_done;
    };

    auto thread_cpu_seconds = [] {
        timespec t{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
        return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
    };
    const double cpu_start = thread_cpu_seconds();
    const uint64_t start = rte_rdtsc();
    for (auto& sr : res.streams) sr.start_tsc = start;
    if (tcp) tcp->start(start);
    const uint64_t send_end = start + uint64_t(cfg.duration_s * double(hz));
    uint64_t now = start;
    for (;;) {
        now = rte_rdtsc();
        if (now >= send_end) break;
        if (quit.load(std::memory_order_relaxed)) {
            res.interrupted = true;
            break;
        }
        bool streams_done = send_streams(now);
        if (tcp) {
            tcp->expire(now);
            unsigned n = tcp->open(now, segs, burst);
            if (n) emit(segs, n);
        }
        receive();
        flush_segments();
        if (streams_done && (!tcp || (tcp->all_opened() && tcp->active() == 0))) break;
    }
    const uint64_t send_stop = now;
    res.send_seconds = double(send_stop - start) / double(hz);
    res.send_cpu_seconds = thread_cpu_seconds() - cpu_start;

    // Drain: receive (and let TCP connections finish) until all is back or the time is up.
    if (tcp) tcp->stop_opening();
    uint64_t drain_ms = cfg.drain_ms;
    if (tcp) drain_ms = std::max<uint64_t>(drain_ms, cfg.tcp->timeout_ms);
    const uint64_t drain_end = send_stop + hz / 1000 * drain_ms;
    for (;;) {
        now = rte_rdtsc();
        if (now >= drain_end) break;
        if (tcp) tcp->expire(now);
        receive();
        flush_segments();
        bool back = true;
        for (std::size_t i = 0; i < streams.size() && back; ++i)
            back = rx_port_of[i] == SIZE_MAX || res.streams[i].rx_packets >= res.streams[i].tx_packets;
        if (back && (!tcp || tcp->active() == 0)) break;
    }
    res.drain_seconds = double(now - send_stop) / double(hz);

    for (auto& st : streams)
        if (st.n_pending) rte_pktmbuf_free_bulk(st.pending + st.pending_off, st.n_pending);
    for (std::size_t p = 0; p < ports.size(); ++p) {
        if (seg_buf[p].n) rte_pktmbuf_free_bulk(seg_buf[p].m, seg_buf[p].n);
        rte_eth_stats s{};
        if (rte_eth_stats_get(ports[p].id, &s) == 0) {
            auto& pr = res.ports[p];
            pr.nic_ipackets = s.ipackets;
            pr.nic_opackets = s.opackets;
            pr.nic_imissed = s.imissed;
            pr.nic_ierrors = s.ierrors;
            pr.nic_oerrors = s.oerrors;
            pr.nic_rx_nombuf = s.rx_nombuf;
        }
    }
    if (tcp) res.tcp = tcp->counters();
    return res;
}

} // namespace sluice::gen
