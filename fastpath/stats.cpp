// See stats.hpp.
#include "stats.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <cstdio>
#include <sstream>

namespace sluice {

namespace {

// Conntrack figures summed over the workers, by name (the same names in table and JSON).
std::vector<stat_value> conntrack_totals(const worker_set& workers) {
    std::vector<stat_value> t = {
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
        for (std::size_t i = 0; i < t.size(); ++i) t[i].value += v[i];
    }
    return t;
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

// "name":value,... for a list of figures.
void json_values(std::ostringstream& s, const std::vector<stat_value>& vs, bool leading_comma) {
    for (const auto& v : vs) {
        if (leading_comma) s << ',';
        s << '"' << v.name << "\":" << v.value;
        leading_comma = true;
    }
}

void json_reasons(std::ostringstream& s, const drop_counters& d) {
    s << '{';
    for (std::size_t r = 0; r < drop_reason_count; ++r)
        s << (r ? "," : "") << "\"" << drop_reasons[r].name << "\":" << d[r];
    s << '}';
}

} // namespace

std::vector<stat_value> port_stats::values() const {
    return {{"rx_packets", rx_packets}, {"rx_bytes", rx_bytes},     {"tx_packets", tx_packets},
            {"tx_bytes", tx_bytes},     {"nic_missed", nic_missed}, {"nic_rx_errors", nic_rx_errors},
            {"nic_tx_errors", nic_tx_errors}, {"rx_nombuf", rx_nombuf}};
}

std::vector<stat_value> worker_stats::values() const {
    return {{"rx_packets", rx_packets},         {"busy_cycles", busy_cycles},
            {"idle_cycles", idle_cycles},       {"sleeps", sleeps},
            {"redirected_out", redirected_out}, {"redirected_in", redirected_in},
            {"ct_events_lost", ct_events_lost}, {"to_control", to_control},
            {"from_control", from_control},     {"exception_copy_failed", exception_copy_failed}};
}

stats_report collect_stats(const port_set& ports, const worker_set& workers, const policy_snapshot& policy,
                           uint32_t generation) {
    stats_report r;
    r.tsc_hz = rte_get_tsc_hz();
    for (std::size_t i = 0; i < ports.ports.size(); ++i) {
        port_stats p;
        p.name = ports.ports[i].name;
        p.link_up = ports.ports[i].link_up.load(std::memory_order_relaxed);
        for (const auto& w : workers.workers) {
            const auto& c = w->counters.port[i];
            p.rx_packets += c.rx_packets.get();
            p.rx_bytes += c.rx_bytes.get();
            p.tx_packets += c.tx_packets.get();
            p.tx_bytes += c.tx_bytes.get();
        }
        rte_eth_stats hw{};
        rte_eth_stats_get(ports.ports[i].id, &hw);
        p.nic_missed = hw.imissed;
        p.nic_rx_errors = hw.ierrors;
        p.nic_tx_errors = hw.oerrors;
        p.rx_nombuf = hw.rx_nombuf;
        r.ports.push_back(std::move(p));
    }
    for (const auto& w : workers.workers) {
        const auto& c = w->counters;
        worker_stats s;
        s.index = w->index;
        s.lcore = w->lcore;
        for (std::size_t i = 0; i < ports.ports.size(); ++i) s.rx_packets += c.port[i].rx_packets.get();
        s.busy_cycles = c.busy_cycles.get();
        s.idle_cycles = c.idle_cycles.get();
        s.sleeps = c.sleeps.get();
        s.redirected_out = c.redirected_out.get();
        s.redirected_in = c.redirected_in.get();
        s.ct_events_lost = c.ct_events_lost.get();
        s.to_control = c.to_control.get();
        s.from_control = c.from_control.get();
        s.exception_copy_failed = c.exception_copy_failed.get();
        for (std::size_t k = 0; k < drop_reason_count; ++k) {
            s.drops[k] = c.drops[k].get();
            r.drops[k] += s.drops[k];
            r.would_drop[k] += w->filter->counters().would_drop[k].get();
        }
        r.workers.push_back(s);
    }
    r.conntrack = conntrack_totals(workers);
    r.generation = generation;
    r.mode = policy.mode;
    return r;
}

std::string stats_table(const port_set& ports, const worker_set& workers, const policy_snapshot& policy,
                        uint32_t generation) {
    const stats_report t = collect_stats(ports, workers, policy, generation);
    std::ostringstream s;
    s << "ports:\n";
    for (const auto& p : t.ports)
        s << "  " << p.name << (p.link_up ? " up" : " down") << "  rx " << p.rx_packets << " pkts "
          << p.rx_bytes << " B  tx " << p.tx_packets << " pkts " << p.tx_bytes << " B  nic-missed "
          << p.nic_missed << " nic-rx-errors " << p.nic_rx_errors << " nic-tx-errors "
          << p.nic_tx_errors << " rx-nombuf " << p.rx_nombuf << "\n";
    s << "workers:\n";
    for (const auto& w : t.workers) {
        uint64_t busy = w.busy_cycles, idle = w.idle_cycles;
        double pct = busy + idle ? 100.0 * double(busy) / double(busy + idle) : 0.0;
        s << "  worker " << w.index << " (lcore " << w.lcore << ")  rx " << w.rx_packets
          << "  redirected out/in " << w.redirected_out << "/" << w.redirected_in << "  busy "
          << busy << " cyc (" << int(pct) << "%)  idle " << idle << " cyc  sleeps " << w.sleeps;
        if (w.ct_events_lost) s << "  ct-events-lost " << w.ct_events_lost;
        s << "  to/from control " << w.to_control << "/" << w.from_control;
        if (w.exception_copy_failed) s << "  exception-copy-failed " << w.exception_copy_failed;
        s << "\n";
    }
    auto reasons = [&](const drop_counters& d, const char* none) {
        bool any = false;
        for (std::size_t r = 0; r < drop_reason_count; ++r)
            if (d[r]) {
                s << "\n  " << drop_reasons[r].name << " " << d[r];
                any = true;
            }
        if (!any) s << none;
    };
    s << "drops:";
    reasons(t.drops, " none");
    if (t.mode == filter_mode::monitor) {
        s << "\nmonitor mode, would have dropped:";
        reasons(t.would_drop, " nothing");
    }
    s << "\nconntrack:";
    for (const auto& v : t.conntrack) s << " " << v.name << " " << v.value;
    s << "\npolicy generation " << t.generation << ", mode " << name_of(t.mode) << ":";
    for_each_rule(policy, [&](bool v6, const std::string& chain, uint32_t pos, const std::string& spec,
                              uint64_t pk, uint64_t by) {
        s << "\n  " << (v6 ? "ip6 " : "ip4 ") << chain << " " << pos << "  pkts " << pk << " bytes "
          << by << "  " << spec;
    });
    return s.str();
}

std::string stats_json(const port_set& ports, const worker_set& workers, const policy_snapshot& policy,
                       uint32_t generation) {
    const stats_report t = collect_stats(ports, workers, policy, generation);
    std::ostringstream s;
    s << "{\"tsc_hz\":" << t.tsc_hz << ",\"ports\":[";
    for (std::size_t i = 0; i < t.ports.size(); ++i) {
        const auto& p = t.ports[i];
        s << (i ? "," : "") << "{\"name\":";
        json_string(s, p.name);
        s << ",\"link_up\":" << (p.link_up ? "true" : "false");
        json_values(s, p.values(), true);
        s << "}";
    }
    s << "],\"workers\":[";
    for (std::size_t k = 0; k < t.workers.size(); ++k) {
        const auto& w = t.workers[k];
        s << (k ? "," : "") << "{\"index\":" << w.index << ",\"lcore\":" << w.lcore;
        json_values(s, w.values(), true);
        s << ",\"drops\":";
        json_reasons(s, w.drops);
        s << "}";
    }
    s << "],\"drops\":";
    json_reasons(s, t.drops);
    s << ",\"would_drop\":";
    json_reasons(s, t.would_drop);
    s << ",\"conntrack\":{";
    json_values(s, t.conntrack, false);
    s << "},\"policy\":{\"generation\":" << t.generation << ",\"mode\":\"" << name_of(t.mode)
      << "\",\"rules\":[";
    bool first = true;
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
