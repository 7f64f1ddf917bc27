// See run_report.hpp. JSON is written by hand (names are [A-Za-z0-9_.-], specs are escaped).
#include "run_report.hpp"

#include <cstdio>
#include <sstream>

namespace sluice::gen {

namespace {

double us(uint64_t cycles, uint64_t hz) { return double(cycles) * 1e6 / double(hz); }

std::string escaped(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\';
        o += c;
    }
    return o;
}

std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

void latency_json(std::ostringstream& o, const latency_histogram& h, uint64_t hz) {
    o << "{\"samples\": " << h.count() << ", \"min_us\": " << fmt("%.3f", us(h.min(), hz))
      << ", \"median_us\": " << fmt("%.3f", us(h.quantile(0.5), hz)) << ", \"p99_us\": "
      << fmt("%.3f", us(h.quantile(0.99), hz)) << ", \"max_us\": " << fmt("%.3f", us(h.max(), hz)) << "}";
}

std::string latency_text(const latency_histogram& h, uint64_t hz) {
    if (!h.count()) return "-";
    return fmt("%.1f", us(h.min(), hz)) + " / " + fmt("%.1f", us(h.quantile(0.5), hz)) + " / " +
           fmt("%.1f", us(h.quantile(0.99), hz)) + " / " + fmt("%.1f", us(h.max(), hz));
}

double tx_seconds(const stream_result& s, uint64_t hz) {
    return s.last_tx_tsc > s.start_tsc ? double(s.last_tx_tsc - s.start_tsc) / double(hz) : 0;
}

int64_t lost(const stream_result& s) { return int64_t(s.tx_packets) - int64_t(s.rx_packets); }

} // namespace

std::string result_json(const gen_config& cfg, const run_result& r) {
    std::ostringstream o;
    o << "{\n  \"send_seconds\": " << fmt("%.6f", r.send_seconds) << ",\n  \"send_cpu_seconds\": "
      << fmt("%.6f", r.send_cpu_seconds) << ",\n  \"drain_seconds\": "
      << fmt("%.6f", r.drain_seconds) << ",\n  \"interrupted\": " << (r.interrupted ? "true" : "false")
      << ",\n  \"tsc_hz\": " << r.tsc_hz << ",\n  \"streams\": [";
    for (std::size_t i = 0; i < cfg.streams.size(); ++i) {
        const auto& s = r.streams[i];
        const auto& sp = cfg.streams[i];
        double secs = tx_seconds(s, r.tsc_hz);
        o << (i ? "," : "") << "\n    {\"name\": \"" << sp.name << "\", \"spec\": \"" << escaped(format_stream_spec(sp))
          << "\", \"flows\": " << sp.flows() << ", \"tx_packets\": " << s.tx_packets << ", \"tx_bytes\": " << s.tx_bytes
          << ", \"tx_pps\": " << fmt("%.1f", secs > 0 ? double(s.tx_packets) / secs : 0);
        if (!sp.rx.empty())
            o << ", \"rx_packets\": " << s.rx_packets << ", \"rx_bytes\": " << s.rx_bytes << ", \"lost\": " << lost(s)
              << ", \"loss_ratio\": " << fmt("%.6f", s.tx_packets ? double(lost(s)) / double(s.tx_packets) : 0)
              << ", \"reordered\": " << s.reordered << ", \"latency\": ";
        if (!sp.rx.empty()) latency_json(o, s.latency, r.tsc_hz);
        o << "}";
    }
    o << "\n  ],\n  \"ports\": [";
    for (std::size_t i = 0; i < cfg.ports.size(); ++i) {
        const auto& p = r.ports[i];
        o << (i ? "," : "") << "\n    {\"name\": \"" << cfg.ports[i].name << "\", \"device\": \""
          << escaped(cfg.ports[i].device) << "\", \"tx_packets\": " << p.tx_packets << ", \"tx_bytes\": " << p.tx_bytes
          << ", \"rx_packets\": " << p.rx_packets << ", \"rx_bytes\": " << p.rx_bytes << ", \"rx_unmatched\": "
          << p.rx_unmatched << ", \"tx_dropped\": " << p.tx_dropped << ", \"alloc_failed\": " << p.alloc_failed
          << ", \"nic\": {\"ipackets\": " << p.nic_ipackets << ", \"opackets\": " << p.nic_opackets
          << ", \"imissed\": " << p.nic_imissed << ", \"ierrors\": " << p.nic_ierrors << ", \"oerrors\": "
          << p.nic_oerrors << ", \"rx_nombuf\": " << p.nic_rx_nombuf << "}}";
    }
    o << "\n  ]";
    if (r.tcp) {
        const auto& t = *r.tcp;
        o << ",\n  \"tcp\": {\"spec\": \"" << escaped(format_tcp_spec(*cfg.tcp)) << "\", \"opened\": " << t.opened
          << ", \"completed\": " << t.completed << ", \"lost\": " << t.lost << ", \"unfinished\": "
          << t.opened - t.completed - t.lost << ", \"cps\": "
          << fmt("%.1f", r.send_seconds > 0 ? double(t.completed) / r.send_seconds : 0) << ", \"postponed\": "
          << t.postponed << ", \"segments_sent\": " << t.segments_sent << ", \"segments_received\": "
          << t.segments_received << ", \"unexpected\": " << t.unexpected << ", \"lost_in\": {";
        bool first = true;
        for (unsigned s = 1; s < tcp_stage_count; ++s) {
            o << (first ? "" : ", ") << "\"" << tcp_stage_name(tcp_stage(s)) << "\": " << t.lost_in[s];
            first = false;
        }
        o << "}, \"connect_latency\": ";
        latency_json(o, t.connect, r.tsc_hz);
        o << ", \"complete_latency\": ";
        latency_json(o, t.complete, r.tsc_hz);
        o << "}";
    }
    o << "\n}\n";
    return o.str();
}

std::string result_summary(const gen_config& cfg, const run_result& r) {
    std::ostringstream o;
    o << "sluice-gen: sent for " << fmt("%.3f", r.send_seconds) << " s, drained " << fmt("%.3f", r.drain_seconds)
      << " s" << (r.interrupted ? " (interrupted)" : "") << "\n";
    if (!cfg.streams.empty()) {
        char line[256];
        std::snprintf(line, sizeof line, "%-12s %12s %12s %12s %10s %9s  %s\n", "stream", "tx pkts", "tx pps",
                      "rx pkts", "lost", "reorder", "latency us min / median / p99 / max");
        o << line;
        for (std::size_t i = 0; i < cfg.streams.size(); ++i) {
            const auto& s = r.streams[i];
            bool rx = !cfg.streams[i].rx.empty();
            double secs = tx_seconds(s, r.tsc_hz);
            std::snprintf(line, sizeof line, "%-12s %12llu %12.0f %12s %10s %9s  %s\n", cfg.streams[i].name.c_str(),
                          (unsigned long long)s.tx_packets, secs > 0 ? double(s.tx_packets) / secs : 0.0,
                          rx ? std::to_string(s.rx_packets).c_str() : "-", rx ? std::to_string(lost(s)).c_str() : "-",
                          rx ? std::to_string(s.reordered).c_str() : "-",
                          rx ? latency_text(s.latency, r.tsc_hz).c_str() : "-");
            o << line;
        }
    }
    if (r.tcp) {
        const auto& t = *r.tcp;
        o << "tcp: " << t.opened << " opened, " << t.completed << " completed ("
          << fmt("%.0f", r.send_seconds > 0 ? double(t.completed) / r.send_seconds : 0) << " conn/s), " << t.lost
          << " lost";
        for (unsigned s = 1; s < tcp_stage_count; ++s)
            if (t.lost_in[s]) o << " [" << t.lost_in[s] << " in " << tcp_stage_name(tcp_stage(s)) << "]";
        o << ", " << t.unexpected << " unexpected segments, " << t.postponed << " opens postponed\n"
          << "tcp: connect (SYN -> SYN|ACK) us " << latency_text(t.connect, r.tsc_hz)
          << "; whole connection us " << latency_text(t.complete, r.tsc_hz) << "\n";
    }
    for (std::size_t i = 0; i < cfg.ports.size(); ++i) {
        const auto& p = r.ports[i];
        o << "port " << cfg.ports[i].name << ": tx " << p.tx_packets << " pkts " << p.tx_bytes << " B, rx "
          << p.rx_packets << " pkts " << p.rx_bytes << " B, unmatched " << p.rx_unmatched << ", nic imissed "
          << p.nic_imissed << " ierrors " << p.nic_ierrors << " oerrors " << p.nic_oerrors << "\n";
    }
    return o.str();
}

} // namespace sluice::gen
