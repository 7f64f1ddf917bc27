// See stats.hpp.
#include "stats.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <cstdio>
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
uint64_t would_drop_of(const worker& w, std::size_t r) { return w.filter->counters().would_drop[r].get(); }

// Conntrack figures summed over the workers, by name (the same names in table and JSON).
std::vector<std::pair<const char*, uint64_t>> conntrack_totals(const worker_set& workers) {
    std::vector<std::pair<const char*, uint64_t>> t = {
        {"flows", 0}, {"capacity", 0}, {"created", 0}, {"invalid", 0}, {"related", 0},
        {"untracked", 0}, {"table_full", 0}, {"early_drop", 0}, {"expired", 0},
        {"classified", 0}, {"established_bypass", 0}, {"fragments", 0}, {"reject_replies", 0},
        {"reject_no_reply", 0}, {"memory_bytes", 0}};
    for (const auto& w : workers.workers) {
        const auto& ct = w->filter->tracker();
        const auto& c = ct.counters();
        const auto& f = w->filter->counters();
        uint64_t v[] = {ct.table().size(), ct.table().capacity(), c.created, c.invalid, c.related,
                        c.untracked, c.table_full, c.early_drop, ct.table().counters().expired,
                        f.classified.get(), f.established_bypass.get(), c.fragments,
                        w->counters.reject_replies.get(), w->counters.reject_no_reply.get(),
                        ct.table().memory_bytes()};
        for (std::size_t i = 0; i < t.size(); ++i) t[i].second += v[i];
    }
    return t;
}

// Every rule with its chain, position (1-based, as iptables -L --line-numbers) and spec.
template <class F> void for_each_rule(const policy_snapshot& p, F&& f) {
    for (bool v6 : {false, true}) {
        const classifier& cls = p.forward(v6);
        const ruleset& rs = v6 ? p.rules6 : p.rules4;
        for (uint32_t g = 0; g < cls.rule_count(); ++g) {
            rule_ref r = cls.rule_at(g);
            const chain& ch = rs.chains[r.chain];
            auto [pk, by] = p.rule_totals(v6, g);
            f(v6, ch.name, r.rule + 1, to_rule_spec(ch.rules[r.rule]), pk, by);
        }
    }
}

void json_string(std::ostringstream& s, std::string_view v) {
    s << '"';
    for (char ch : v) {
        if (ch == '"' || ch == '\\') s << '\\' << ch;
        else if (static_cast<unsigned char>(ch) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", ch);
            s << buf;
        } else s << ch;
    }
    s << '"';
}

} // namespace

std::string stats_table(const port_set& ports, const worker_set& workers, const policy_snapshot& policy) {
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
    if (policy.mode == filter_mode::monitor) {
        s << "\nmonitor mode, would have dropped:";
        any = false;
        for (std::size_t r = 0; r < drop_reason_count; ++r) {
            uint64_t sum = 0;
            for (const auto& w : workers.workers) sum += would_drop_of(*w, r);
            if (sum) {
                s << "\n  " << drop_reasons[r].name << " " << sum;
                any = true;
            }
        }
        if (!any) s << " nothing";
    }
    s << "\nconntrack:";
    for (auto [name, v] : conntrack_totals(workers)) s << " " << name << " " << v;
    s << "\npolicy generation " << policy.generation << ", mode " << name_of(policy.mode) << ":";
    for_each_rule(policy, [&](bool v6, const std::string& chain, uint32_t pos, const std::string& spec,
                              uint64_t pk, uint64_t by) {
        s << "\n  " << (v6 ? "ip6 " : "ip4 ") << chain << " " << pos << "  pkts " << pk << " bytes "
          << by << "  " << spec;
    });
    return s.str();
}

std::string stats_json(const port_set& ports, const worker_set& workers, const policy_snapshot& policy) {
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
    s << "},\"would_drop\":{";
    for (std::size_t r = 0; r < drop_reason_count; ++r) {
        uint64_t sum = 0;
        for (const auto& w : workers.workers) sum += would_drop_of(*w, r);
        s << (r ? "," : "") << "\"" << drop_reasons[r].name << "\":" << sum;
    }
    s << "},\"conntrack\":{";
    bool first = true;
    for (auto [name, v] : conntrack_totals(workers)) {
        s << (first ? "" : ",") << "\"" << name << "\":" << v;
        first = false;
    }
    s << "},\"policy\":{\"generation\":" << policy.generation << ",\"mode\":\"" << name_of(policy.mode)
      << "\",\"rules\":[";
    first = true;
    for_each_rule(policy, [&](bool v6, const std::string& chain, uint32_t pos, const std::string& spec,
                              uint64_t pk, uint64_t by) {
        s << (first ? "" : ",") << "{\"family\":\"" << (v6 ? "ipv6" : "ipv4") << "\",\"chain\":";
        json_string(s, chain);
        s << ",\"rule\":" << pos << ",\"packets\":" << pk << ",\"bytes\":" << by << ",\"spec\":";
        json_string(s, spec);
        s << "}";
        first = false;
    });
    s << "]}}\n";
    return s.str();
}

} // namespace sluice
