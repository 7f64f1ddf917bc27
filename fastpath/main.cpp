// sluice-fastpath: the DPDK primary process. Start-up order matters and is the contract:
//   1. parse and validate the whole configuration and compile the policy it names (rules,
//      rules6, sets): an error in either stops here, before any device is touched;
//   2. build the EAL arguments (lcores, vdevs / PCI allow-list, hugepages or --no-huge)
//      and initialise the EAL;
//   3. create the mbuf pool, open the ports, build the workers and their rings;
//   4. launch one worker per lcore; the main thread handles signals, link state and stats;
//   5. on SIGINT/SIGTERM: stop the workers, print the counters, close ports, clean up EAL.
// SIGUSR1 prints the counters (and writes --stats-file) without stopping. SIGHUP reloads the
// policy files: the new policy is compiled off the workers and published atomically; a
// file with an error is rejected whole (file:line:column: reason) and the running policy
// stays. With `state-dir` holding a persisted policy, that policy is used at start and on
// SIGHUP instead of the configuration's files. Between those duties the main thread serves
// the agent socket (agent.hpp) that sluice-control talks to.
#include "agent.hpp"
#include "config.hpp"
#include "exception.hpp"
#include "eal_start.hpp"
#include "policy_slot.hpp"
#include "port.hpp"
#include "stats.hpp"
#include "worker.hpp"

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <thread>
#include <unistd.h>

namespace {

std::atomic<bool> g_quit{false};
volatile std::sig_atomic_t g_dump = 0;
volatile std::sig_atomic_t g_reload = 0;

void on_signal(int sig) {
    if (sig == SIGUSR1) g_dump = 1;
    else if (sig == SIGHUP) g_reload = 1;
    else g_quit.store(true);
}

std::string describe(const sluice::policy_snapshot& p) {
    size_t sets = p.sets->list().size();
    return "generation " + std::to_string(p.generation) + ", mode " +
           std::string(sluice::name_of(p.mode)) + ", " + std::to_string(p.forward4->rule_count()) +
           " IPv4 rule(s), " + std::to_string(p.forward6->rule_count()) + " IPv6 rule(s), " +
           std::to_string(sets) + " set(s)" +
           (p.forward4->established_bypass_safe() && p.forward6->established_bypass_safe()
                ? ", established flows bypass the ruleset"
                : "");
}

std::vector<std::string> eal_arguments(const sluice::fastpath_config& c, const char* argv0,
                                       std::vector<unsigned>& worker_lcores) {
    sluice::eal_plan plan{argv0, c.file_prefix, {}, c.huge, c.memory_mb, {}, c.eal_args};
    unsigned ncpu = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i <= c.workers; ++i) {
        plan.lcore_cpus.push_back(c.cpus.empty() ? i % ncpu : c.cpus[i]);
        if (i) worker_lcores.push_back(i);
    }
    for (const auto& p : c.ports) plan.devices.push_back(p.device);
    return sluice::eal_arguments(plan);
}

void write_stats_file(const std::string& path, const std::string& json) {
    if (path.empty()) return;
    std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp);
        f << json;
    }
    std::rename(tmp.c_str(), path.c_str());
}

} // namespace

int main(int argc, char** argv) {
    using namespace sluice;
    auto res = load_config(argc, argv);
    if (res.help) {
        std::fputs(res.error.c_str(), stdout);
        return 0;
    }
    if (!res.config) {
        std::fprintf(stderr, "sluice-fastpath: config error: %s\n", res.error.c_str());
        return 2;
    }
    const fastpath_config& cfg = *res.config;
    spdlog::set_level(spdlog::level::from_str(cfg.log_level));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    uint32_t generation = 1;
    std::string policy_from;
    auto first = load_startup_policy(cfg, generation, policy_from);
    if (!first.snapshot) {
        std::fprintf(stderr, "sluice-fastpath: policy error: %s\n", first.error.c_str());
        return 2;
    }
    spdlog::info("policy from {}: {}", policy_from, describe(*first.snapshot));
    agent fp_agent(cfg);
    if (auto e = fp_agent.listen(); !e.empty())
        spdlog::error("agent socket unavailable, running without it: {}", e);
    else if (fp_agent.listening())
        spdlog::info("agent socket {}", cfg.agent_socket);

    std::vector<unsigned> lcores;
    if (!wait_for_detached_secondary(cfg.file_prefix, 10))
        spdlog::warn("sluice-control still holds the previous fast path's memory; starting anyway");
    if (!start_eal(eal_arguments(cfg, argv[0], lcores))) return 1;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGUSR1, on_signal);
    std::signal(SIGHUP, on_signal);

    int rc = 0;
    {
        policy_slot policy;
        port_set ports;
        worker_set workers;
        rte_mempool* pool = rte_pktmbuf_pool_create("sl_mbufs", cfg.mbufs, 256, 0,
                                                    uint16_t(cfg.mbuf_size), int(rte_socket_id()));
        std::string err;
        if (!pool) err = std::string("cannot create mbuf pool: ") + rte_strerror(rte_errno);
        if (err.empty()) err = policy.init(cfg.workers, std::move(first.snapshot));
        if (err.empty()) err = open_ports(cfg, pool, ports);
        if (err.empty()) err = build_workers(cfg, ports, g_quit, lcores, policy, pool, workers);
        if (!err.empty()) {
            spdlog::error("{}", err);
            rc = 1;
        } else {
            fp_agent.attach(policy, ports, workers, generation);
            for (auto& w : workers.workers) rte_eal_remote_launch(worker_main, w.get(), w->lcore);
            spdlog::info("forwarding with {} worker(s); SIGUSR1 prints counters, SIGINT/SIGTERM stops",
                         cfg.workers);
            auto last_stats = std::chrono::steady_clock::now();
            auto last_link = last_stats;
            while (!g_quit.load()) {
                fp_agent.poll(25); // serves sluice-control; waits up to 25 ms
                auto now = std::chrono::steady_clock::now();
                if (now - last_link >= std::chrono::seconds(1)) {
                    poll_links(ports);
                    last_link = now;
                }
                bool periodic = cfg.stats_interval_s &&
                                now - last_stats >= std::chrono::seconds(cfg.stats_interval_s);
                if (g_reload) {
                    g_reload = 0;
                    auto t_load = std::chrono::steady_clock::now();
                    uint32_t next_generation = generation + 1;
                    auto next = load_startup_policy(cfg, next_generation, policy_from);
                    if (!next.snapshot) {
                        spdlog::error("policy reload rejected, generation {} stays: {}", generation,
                                      next.error);
                    } else {
                        generation = next_generation;
                        std::string what = describe(*next.snapshot);
                        auto t0 = std::chrono::steady_clock::now();
                        policy.replace(std::move(next.snapshot));
                        auto us = [](auto a, auto b) {
                            return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
                        };
                        spdlog::info("policy reloaded: {} (from {}; read and compiled in {} us; "
                                     "published, old one freed after {} us)",
                                     what, policy_from, us(t_load, t0), us(t0, std::chrono::steady_clock::now()));
                    }
                }
                if (g_dump || periodic) {
                    g_dump = 0;
                    last_stats = now;
                    spdlog::info("counters\n{}", stats_table(ports, workers, *policy.current(), generation));
                    write_stats_file(cfg.stats_file, stats_json(ports, workers, *policy.current(), generation));
                }
            }
            spdlog::info("stopping");
            rte_eal_mp_wait_lcore();
            spdlog::info("final counters\n{}", stats_table(ports, workers, *policy.current(), generation));
            write_stats_file(cfg.stats_file, stats_json(ports, workers, *policy.current(), generation));
        }
        close_ports(ports);
        // workers (and their rings) are destroyed here, then the pool.
        workers.workers.clear();
        rte_mempool_free(pool);
    }
    rte_eal_cleanup();
    return rc;
}
