// sluice-control: the slow-path process. Start-up:
//   1. read and validate the configuration (a bad value: one line, exit 2);
//   2. load the persisted policy from the state directory and open the policy API socket;
//   3. loop: serve API requests, keep the link to sluice-fastpath's agent socket (bringing
//      the fast path to the persisted generation whenever it (re)appears), relay conntrack
//      events, and run the exception path (attached as a DPDK secondary process once the
//      fast path runs; retried once a second until then).
// SIGINT/SIGTERM stop it. The fast path never depends on this process: killed, it leaves
// the last policy forwarding (fail-static); restarted, it finds the same generation and
// changes nothing. When the fast path itself restarts, a DPDK secondary cannot attach to
// the new primary: this process then re-executes itself (same arguments) and starts over.
#include "control_config.hpp"
#include "control_service.hpp"
#include "exception_path.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <linux/close_range.h>
#include <unistd.h>

namespace {
std::atomic<bool> g_quit{false};
void on_signal(int) { g_quit.store(true); }

std::string counters_line(const sluice::exception_path& ep) {
    std::string s;
    for (auto [name, v] : ep.counters().values()) s += " " + std::string(name) + " " + std::to_string(v);
    return s;
}

// "FORWARD rule 3 (-p udp -j LOG ...)" for the classifier's global rule index g.
std::string describe_rule(const sluice::policy_store& store, bool v6, uint32_t g) {
    const auto& rs = store.rules(v6 ? sluice::ip_family::ipv6 : sluice::ip_family::ipv4);
    for (const auto& c : rs.chains) {
        if (g < c.rules.size())
            return c.name + " rule " + std::to_string(g + 1) + " (" + sluice::to_rule_spec(c.rules[g]) + ")";
        g -= uint32_t(c.rules.size());
    }
    return std::string(v6 ? "ip6" : "ip4") + " rule #" + std::to_string(g);
}
} // namespace

int main(int argc, char** argv) {
    using namespace sluice;
    auto res = load_control_config(argc, argv);
    if (res.help) {
        std::fputs(res.error.c_str(), stdout);
        return 0;
    }
    if (!res.config) {
        std::fprintf(stderr, "sluice-control: config error: %s\n", res.error.c_str());
        return 2;
    }
    const control_config& cfg = *res.config;
    spdlog::set_level(spdlog::level::from_str(cfg.log_level));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGPIPE, SIG_IGN);

    control_service service(cfg);
    if (auto e = service.start(); !e.empty()) {
        std::fprintf(stderr, "sluice-control: %s\n", e.c_str());
        return 1;
    }
    spdlog::info("sluice-control running (generation {}); SIGINT/SIGTERM stops", service.store().generation());

    std::unique_ptr<exception_path> exc;
    if (cfg.exceptions != exceptions_mode::off) {
        exception_path_config ec;
        ec.file_prefix = cfg.file_prefix;
        ec.cpu = cfg.cpu;
        ec.log_pcap = cfg.log_pcap;
        ec.eal_args = cfg.eal_args;
        ec.describe_rule = [&service](bool v6, uint32_t g) { return describe_rule(service.store(), v6, g); };
        exc = std::make_unique<exception_path>(ec);
    }
    auto next_attach = std::chrono::steady_clock::now();
    bool waiting_said = false;
    int rc = 0;
    while (!g_quit.load()) {
        // Attach only to a fast path whose agent answered: its EAL is then fully up (a
        // secondary must not start while the primary is still initialising).
        if (exc && !exc->eal_up() && service.fastpath_connected() &&
            std::chrono::steady_clock::now() >= next_attach) {
            next_attach = std::chrono::steady_clock::now() + std::chrono::seconds(1);
            auto st = exc->attach(argv[0]);
            if (!st.ok && !st.retry) {
                if (cfg.exceptions == exceptions_mode::on) {
                    spdlog::error("exception path: {}", st.error);
                    rc = 1;
                    break;
                }
                spdlog::warn("exception path unavailable, going on without it: {}", st.error);
                exc.reset();
            } else if (!st.ok && !waiting_said) {
                spdlog::info("exception path waiting: {}", st.error);
                waiting_said = true;
            }
        }
        const bool exc_live = exc && exc->ready();
        // The rings are not file descriptors: poll them every 2 ms while attached.
        service.poll(exc_live ? 2 : 20);
        if (exc_live) {
            for (int i = 0; i < 16 && exc->poll(); ++i) {
            }
        }
        if (exc && exc->eal_up() && (exc->fastpath_gone() || service.fastpath_lost())) {
            spdlog::warn("sluice-fastpath is gone; exception path counters:{}; restarting to attach to the next one",
                         counters_line(*exc));
            // DPDK keeps files of the old primary open (and locked) without O_CLOEXEC: a new
            // primary cannot map its memory while they stay open, so close them all on exec.
            ::close_range(3, ~0u, CLOSE_RANGE_CLOEXEC);
            ::execv("/proc/self/exe", argv);
            spdlog::error("re-exec failed: {}", std::strerror(errno));
            rc = 1;
            break;
        }
        if (service.fastpath_lost() && !(exc && exc->eal_up())) service.clear_lost();
    }
    if (exc) spdlog::info("exception path counters:{}", counters_line(*exc));
    spdlog::info("stopping");
    return rc;
}
