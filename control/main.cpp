// sluice-control: the slow-path process. Start-up:
//   1. read and validate the configuration (a bad value: one line, exit 2);
//   2. load the persisted policy from the state directory and open the policy API socket;
//   3. loop: serve API requests, keep the link to sluice-fastpath's agent socket (bringing
//      the fast path to the persisted generation whenever it (re)appears), relay conntrack
//      events, and run the exception path when attached.
// SIGINT/SIGTERM stop it. The fast path never depends on this process: killed, it leaves
// the last policy forwarding (fail-static); restarted, it finds the same generation and
// changes nothing.
#include "control_config.hpp"
#include "control_service.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <cstdio>

namespace {
std::atomic<bool> g_quit{false};
void on_signal(int) { g_quit.store(true); }
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
    while (!g_quit.load()) service.poll(20);
    spdlog::info("stopping");
    return 0;
}
