// See stats.hpp.
#include "stats.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <sstream>

namespace sluice {

namespace {

struct port_totals {
    uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
    rte_eth_stats hw{};
};

std::vector<port_totals> gather(const port_set& ports, const worker_set& workers) {
    std::vector<port_totals> t(ports.ports.size());
    for (std::size_t i = 0; i < ports.ports.size(); ++i) {
        for (const auto& w : workers.workers) {
            const auto& c = w->counters.port[i];
            t[i].rx_packets += c.rx_packets.get();
            t[i].rx_bytes += c.rx_bytes.get();
            t[i].tx_packets += c.tx_packets.get();
            t[i].tx_bytes += c.tx_bytes.get();
        }
        rte_eth_stats_get(ports.ports[i].id, &t[i].hw);
    }
    return t;
}

uint64_t drops_of(const worker& w, std::size_t r) { return w.counters.drops[r].get(); }

} // namespace

std::string stats_table(const port_set& ports, const worker_set& workers) {
    auto t = gather(ports, workers);
    std::ostringstream s;
    s << "ports:\n";
    for (std::size_t i = 0; i < ports.ports.size(); ++i) {
        const auto& p = ports.ports[i];
        s << "  " << p.name << (p.link_up ? " up" : " down") << "  rx " << t[i].rx_packets
          << " pkts " << t[i].rx_bytes << " B  tx " << t[i].tx_packets << " pkts "
          << t[i].tx_bytes << " B  nic-missed " << t[i].hw.imissed << " nic-rx-errors "
          << t[i].hw.ierrors << " nic-tx-errors " << t[i].hw.oerrors << " rx-nombuf "
          << t[i].hw.rx_nombuf << "\n";
    }
    s << "workers:\n";
    for (const auto& w : workers.workers) {
        const auto& c = w->counters;
        uint64_t rx = 0;
        for (std::size_t i = 0; i < ports.ports.size(); ++i) rx += c.port[i].rx_packets.get();
        uint64_t busy = c.busy_cycles.get(), idle = c.idle_cycles.get();
        double pct = busy + idle ? 100.0 * double(busy) / double(busy + idle) : 0.0;
        s << "  worker " << w->index << " (lcore " << w->lcore << ")  rx " << rx
          << "  redirected out/in " << c.redirected_out.get() << "/" << c.redirected_in.get()
          << "  busy " << busy << " cyc (" << int(pct) << "%)  idle " << idle
          << " cyc  sleeps " << c.sleeps.get() << "\n";
    }
    s << "drops:";
    bool any = false;
    for (std::size_t r = 0; r < drop_reason_count; ++r) {
        uint64_t sum = 0;
        for (const auto& w : workers.workers) sum += drops_of(*w, r);
        if (sum) {
            s << "\n  " << drop_reasons[r].name << " " << sum;
            any = true;
        }
    }
    if (!any) s << " none";
    return s.str();
}

std::string stats_json(const port_set& ports, const worker_set& workers) {
    auto t = gather(ports, workers);
    std::ostringstream s;
    s << "{\"tsc_hz\":" << rte_get_tsc_hz() << ",\"ports\":[";
    for (std::size_t i = 0; i < ports.ports.size(); ++i) {
        const auto& p = ports.ports[i];
        s << (i ? "," : "") << "{\"name\":\"" << p.name << "\",\"link_up\":"
          << (p.link_up ? "true" : "false") << ",\"rx_packets\":" << t[i].rx_packets
          << ",\"rx_bytes\":" << t[i].rx_bytes << ",\"tx_packets\":" << t[i].tx_packets
          << ",\"tx_bytes\":" << t[i].tx_bytes << ",\"nic_missed\":" << t[i].hw.imissed
          << ",\"nic_rx_errors\":" << t[i].hw.ierrors << ",\"nic_tx_errors\":"
          << t[i].hw.oerrors << ",\"rx_nombuf\":" << t[i].hw.rx_nombuf << "}";
    }
    s << "],\"workers\":[";
    for (std::size_t k = 0; k < workers.workers.size(); ++k) {
        const auto& w = *workers.workers[k];
        const auto& c = w.counters;
        s << (k ? "," : "") << "{\"index\":" << w.index << ",\"lcore\":" << w.lcore
          << ",\"busy_cycles\":" << c.busy_cycles.get() << ",\"idle_cycles\":"
          << c.idle_cycles.get() << ",\"sleeps\":" << c.sleeps.get()
          << ",\"redirected_out\":" << c.redirected_out.get() << ",\"redirected_in\":"
          << c.redirected_in.get() << ",\"drops\":{";
        for (std::size_t r = 0; r < drop_reason_count; ++r)
            s << (r ? "," : "") << "\"" << drop_reasons[r].name << "\":" << drops_of(w, r);
        s << "}}";
    }
    s << "],\"drops\":{";
    for (std::size_t r = 0; r < drop_reason_count; ++r) {
        uint64_t sum = 0;
        for (const auto& w : workers.workers) sum += drops_of(*w, r);
        s << (r ? "," : "") << "\"" << drop_reasons[r].name << "\":" << sum;
    }
    s << "}}\n";
    return s.str();
}

} // namespace sluice
