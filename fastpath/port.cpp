// See port.hpp.
//
// Steering choice per pair: hardware RSS is used only when both ports of a pair offer one
// RX and TX queue per worker and accept a symmetric Toeplitz key (the 0x6d5a repeating key
// makes Toeplitz symmetric on NICs that hash (src, dst) in the standard field order). RSS
// hashes addresses only, matching the software steering hash (symmetric_hash_l3). Otherwise the pair uses software steering: the worker that
// receives a packet computes the symmetric flow hash and hands the packet to its owner.
// Both ports of a pair always use the same method, so a flow's two directions meet on
// the same worker either way.
#include "port.hpp"

#include <spdlog/spdlog.h>

#include <rte_bus.h>
#include <rte_dev.h>

#include <algorithm>
#include <cstring>

namespace sluice {

namespace {

// Symmetric Toeplitz key (Woo & Park, "Scalable TCP Session Monitoring with Symmetric
// Receive-side Scaling"): the repeating 16-bit pattern hashes (a,b) and (b,a) alike.
uint8_t symmetric_rss_key[52] = {
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d,
    0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d,
    0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a};

// Hash on addresses only: fragments (which carry no ports after the first) then land on
// the same worker as the rest of their datagram, and that worker owns the connection.
constexpr uint64_t wanted_rss = RTE_ETH_RSS_IP;

bool can_hardware_steer(const rte_eth_dev_info& info, unsigned workers) {
    return info.max_rx_queues >= workers && info.max_tx_queues >= workers &&
           (info.flow_type_rss_offloads & wanted_rss) != 0 && info.hash_key_size > 0 &&
           info.hash_key_size <= sizeof(symmetric_rss_key);
}

int on_link_event(uint16_t port_id, rte_eth_event_type, void* arg, void*) {
    auto* ps = static_cast<port_set*>(arg);
    for (auto& p : ps->ports)
        if (p.id == port_id) {
            rte_eth_link link{};
            if (rte_eth_link_get_nowait(port_id, &link) == 0) p.link_up.store(link.link_status);
        }
    return 0;
}

std::string err(const port& p, const char* what, int rc) {
    return "port '" + p.name + "': " + what + ": " + rte_strerror(-rc) + " (" +
           std::to_string(rc) + ")";
}

std::string configure(const fastpath_config& cfg, rte_mempool* pool, port& p, bool hw_steer,
                      uint16_t nq, port_set& ps) {
    rte_eth_dev_info info{};
    if (int rc = rte_eth_dev_info_get(p.id, &info); rc != 0) return err(p, "device info", rc);
    p.rx_queues = nq;
    p.tx_queues = nq;
    p.steer = hw_steer ? steering::hardware : steering::software;

    rte_eth_conf conf{};
    if (hw_steer && nq > 1) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = symmetric_rss_key;
        conf.rx_adv_conf.rss_conf.rss_key_len = info.hash_key_size;
        conf.rx_adv_conf.rss_conf.rss_hf = info.flow_type_rss_offloads & wanted_rss;
    }
    // Frame = MTU + Ethernet header + 2 VLAN tags + CRC allowance.
    uint32_t frame = cfg.mtu + RTE_ETHER_HDR_LEN + 2 * RTE_VLAN_HLEN;
    uint32_t room = cfg.mbuf_size - RTE_PKTMBUF_HEADROOM;
    if (frame > room) {
        if (!(info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER))
            return "port '" + p.name + "': mtu " + std::to_string(cfg.mtu) +
                   " needs frames of " + std::to_string(frame) + " B but mbuf-size leaves " +
                   std::to_string(room) + " B and the device cannot scatter; raise mbuf-size";
        conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
        p.scatter = true;
    }
    if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS)
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
    if (info.dev_flags && (*info.dev_flags & RTE_ETH_DEV_INTR_LSC)) conf.intr_conf.lsc = 1;

    if (int rc = rte_eth_dev_configure(p.id, nq, nq, &conf); rc != 0)
        return err(p, "configure", rc);
    uint16_t rxd = uint16_t(cfg.rx_desc), txd = uint16_t(cfg.tx_desc);
    if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(p.id, &rxd, &txd); rc != 0)
        return err(p, "descriptor counts", rc);
    if (cfg.mtu != RTE_ETHER_MTU) {
        if (info.max_mtu < cfg.mtu)
            return "port '" + p.name + "': mtu " + std::to_string(cfg.mtu) +
                   " above the device maximum " + std::to_string(info.max_mtu);
        if (int rc = rte_eth_dev_set_mtu(p.id, uint16_t(cfg.mtu)); rc != 0 && rc != -ENOTSUP)
            return err(p, "set mtu", rc);
    }
    int socket = rte_eth_dev_socket_id(p.id);
    if (socket < 0) socket = 0;
    rte_eth_rxconf rxc = info.default_rxconf;
    rxc.offloads = conf.rxmode.offloads;
    rte_eth_txconf txc = info.default_txconf;
    txc.offloads = conf.txmode.offloads;
    for (uint16_t q = 0; q < nq; ++q) {
        if (int rc = rte_eth_rx_queue_setup(p.id, q, rxd, unsigned(socket), &rxc, pool); rc != 0)
            return err(p, "rx queue setup", rc);
        if (int rc = rte_eth_tx_queue_setup(p.id, q, txd, unsigned(socket), &txc); rc != 0)
            return err(p, "tx queue setup", rc);
    }
    if (conf.intr_conf.lsc)
        rte_eth_dev_callback_register(p.id, RTE_ETH_EVENT_INTR_LSC, on_link_event, &ps);
    if (int rc = rte_eth_dev_start(p.id); rc != 0) return err(p, "start", rc);
    // A bump in the wire forwards frames for other hosts: receive everything.
    if (int rc = rte_eth_promiscuous_enable(p.id); rc != 0 && rc != -ENOTSUP)
        spdlog::warn("port '{}': promiscuous mode not enabled: {}", p.name, rte_strerror(-rc));
    rte_eth_macaddr_get(p.id, &p.mac);
    return {};
}

} // namespace

std::string open_ports(const fastpath_config& cfg, rte_mempool* pool, port_set& out) {
    out.ports = std::vector<port>(cfg.ports.size());
    std::vector<rte_eth_dev_info> infos(cfg.ports.size());
    for (std::size_t i = 0; i < cfg.ports.size(); ++i) {
        auto& p = out.ports[i];
        p.name = cfg.ports[i].name;
        std::string dn = cfg.ports[i].dpdk_name();
        if (rte_eth_dev_get_port_by_name(dn.c_str(), &p.id) != 0)
            return "port '" + p.name + "': device " + dn + " not found (PCI device not bound "
                   "to vfio-pci/uio, or the vdev failed to probe: see the EAL messages above)";
        if (int rc = rte_eth_dev_info_get(p.id, &infos[i]); rc != 0) return err(p, "device info", rc);
        out.index_of[p.id] = uint16_t(i);
    }
    for (auto [a, b] : cfg.pairs) {
        out.ports[a].peer = uint16_t(b);
        out.ports[b].peer = uint16_t(a);
    }
    for (std::size_t i = 0; i < cfg.ports.size(); ++i) {
        auto& p = out.ports[i];
        bool hw = can_hardware_steer(infos[i], cfg.workers);
        if (p.peer != UINT16_MAX) hw = hw && can_hardware_steer(infos[p.peer], cfg.workers);
        // Queues: one per worker when the device allows it (each worker its own TX queue);
        // with software steering, RX on fewer queues is fine, the receiver redistributes.
        uint16_t nq = uint16_t(std::min<unsigned>(
            cfg.workers, std::min(infos[i].max_rx_queues, infos[i].max_tx_queues)));
        if (nq == 0) return "port '" + p.name + "': device offers no queues";
        if (auto e = configure(cfg, pool, p, hw, nq, out); !e.empty()) return e;
        spdlog::info("port '{}' (ethdev {} {}) {} queue(s), {} steering{}", p.name, p.id,
                     cfg.ports[i].dpdk_name(), nq,
                     p.steer == steering::hardware ? "hardware (symmetric RSS)" : "software",
                     p.scatter ? ", scatter RX" : "");
    }
    poll_links(out);
    return {};
}

void poll_links(port_set& ps) {
    for (auto& p : ps.ports) {
        rte_eth_link link{};
        if (rte_eth_link_get_nowait(p.id, &link) != 0) continue;
        bool up = link.link_status == RTE_ETH_LINK_UP;
        bool was = p.link_up.exchange(up);
        if (up != was || (up && p.link_speed_mbps != link.link_speed)) {
            p.link_speed_mbps = link.link_speed;
            if (up)
                spdlog::info("port '{}' link up, {} Mbps {}", p.name, link.link_speed,
                             link.link_duplex ? "full-duplex" : "half-duplex");
            else
                spdlog::warn("port '{}' link down", p.name);
        }
    }
}

void close_ports(port_set& ps) {
    for (auto& p : ps.ports) {
        rte_eth_dev_stop(p.id);
        rte_eth_dev_close(p.id);
    }
}

} // namespace sluice
