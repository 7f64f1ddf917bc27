// sluice-gen: the DPDK traffic generator. Start-up order is the contract:
//   1. parse and validate the whole configuration (no device touched on error; exit 2);
//   2. build the EAL arguments (one lcore on --cpu, vdevs / PCI allow-list, hugepages or
//      --no-huge, --file-prefix) and initialise the EAL;
//   3. create the TX pool (filled once with the payload pattern) and the RX pool, open the
//      ports, wait for their links;
//   4. run the traffic on the main lcore (traffic_loop.hpp) until the run's bounds;
//   5. print the summary, write the JSON, close the ports, clean up the EAL.
// SIGINT/SIGTERM end the sending phase early; the drain and the report still happen.
#include "gen_config.hpp"
#include "run_report.hpp"
#include "traffic_loop.hpp"

#include "eal_args.hpp"
#include "eal_start.hpp"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <csignal>
#include <cstdio>
#include <fstream>

namespace {

std::atomic<bool> g_quit{false};

void on_signal(int) { g_quit.store(true); }

} // namespace

int main(int argc, char** argv) {
    using namespace sluice::gen;
    auto res = load_gen_config(argc, argv);
    if (res.help) {
        std::fputs(res.error.c_str(), stdout);
        return 0;
    }
    if (!res.config) {
        std::fprintf(stderr, "sluice-gen: config error: %s\n", res.error.c_str());
        return 2;
    }
    const gen_config& cfg = *res.config;
    // The summary may go to stdout; keep the log on stderr.
    spdlog::set_default_logger(spdlog::stderr_color_mt("sluice-gen"));
    spdlog::set_level(spdlog::level::from_str(cfg.log_level));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

    sluice::eal_plan plan{argv[0], cfg.file_prefix, {cfg.cpu}, cfg.huge, cfg.memory_mb, {}, cfg.eal_args};
    for (const auto& p : cfg.ports) plan.devices.push_back(p.device);
    if (!sluice::start_eal(sluice::eal_arguments(plan))) return 1;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    int rc = 0;
    uint16_t frame = cfg.largest_frame();
    uint16_t room = uint16_t(std::max<unsigned>(RTE_MBUF_DEFAULT_BUF_SIZE, frame + RTE_PKTMBUF_HEADROOM));
    int socket = int(rte_socket_id());
    rte_mempool* tx_pool = rte_pktmbuf_pool_create("gen_tx", cfg.mbufs, 256, 0, room, socket);
    rte_mempool* rx_pool = rte_pktmbuf_pool_create("gen_rx", cfg.mbufs, 256, 0, room, socket);
    std::vector<open_port> ports;
    std::string err;
    if (!tx_pool || !rx_pool) err = std::string("cannot create the mbuf pools: ") + rte_strerror(rte_errno);
    if (err.empty()) {
        fill_tx_pool(tx_pool);
        // The MTU that lets the largest frame through (Ethernet header and a VLAN tag aside).
        uint16_t mtu = uint16_t(std::max<int>(RTE_ETHER_MTU, frame - RTE_ETHER_HDR_LEN - RTE_VLAN_HLEN));
        err = open_gen_ports(cfg, rx_pool, mtu, ports);
    }
    if (err.empty()) err = wait_for_links(cfg, ports, g_quit);
    if (err.empty() && cfg.start_delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(cfg.start_delay_ms));
    if (!err.empty()) {
        spdlog::error("{}", err);
        rc = 1;
    } else {
        spdlog::info("sending: {} stream(s){}, up to {} s", cfg.streams.size(), cfg.tcp ? " and a TCP workload" : "",
                     cfg.duration_s);
        run_result r = run_traffic(cfg, ports, tx_pool, g_quit);
        std::string summary = result_summary(cfg, r);
        std::string json = result_json(cfg, r);
        if (cfg.json_file == "-") {
            std::fputs(summary.c_str(), stderr);
            std::fputs(json.c_str(), stdout);
        } else {
            std::fputs(summary.c_str(), stdout);
            if (!cfg.json_file.empty()) {
                std::ofstream f(cfg.json_file);
                f << json;
                if (!f) {
                    spdlog::error("cannot write --json file {}", cfg.json_file);
                    rc = 1;
                }
            }
        }
    }
    close_gen_ports(ports);
    rte_mempool_free(tx_pool);
    rte_mempool_free(rx_pool);
    rte_eal_cleanup();
    return rc;
}
