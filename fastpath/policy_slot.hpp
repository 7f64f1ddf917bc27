// policy_slot: where the workers find the current policy snapshot, and how a new one
// replaces it. Publication is one atomic pointer store (release); the workers load the
// pointer once per loop iteration (acquire) and report a quiescent state to a DPDK QSBR
// variable after each iteration, so the previous snapshot is freed only once every worker
// has finished the burst it may have been judging with it. A worker therefore judges a
// whole burst under one policy — never a mix — and no packet is held back by an update.
//
// Lifecycle: created after rte_eal_init with the first snapshot (built before EAL init
// from the config's files: a bad policy stops start-up before any device is touched);
// workers register with their index; replace() is called by the main thread (SIGHUP).
// Thread safety: current()/quiescent() from workers; replace() from the main thread only.
#pragma once

#include "config.hpp"
#include "policy.hpp"

#include <rte_rcu_qsbr.h>

#include <atomic>
#include <memory>
#include <string>

namespace sluice {

class policy_slot {
public:
    policy_slot() = default;
    ~policy_slot();
    policy_slot(const policy_slot&) = delete;
    policy_slot& operator=(const policy_slot&) = delete;

    // Allocate the QSBR variable for `workers` readers and install the first snapshot.
    // Returns "" or an error. Main thread.
    std::string init(unsigned workers, std::unique_ptr<policy_snapshot> first);

    // Publish `next`, wait for a grace period, free the previous snapshot. Main thread.
    void replace(std::unique_ptr<policy_snapshot> next);

    // Wait until every worker has passed a quiescent point: memory the workers could see
    // before the call (e.g. set bodies a live set change retired) may be freed after it.
    // Main thread.
    void synchronize() noexcept { rte_rcu_qsbr_synchronize(qs_, RTE_QSBR_THRID_INVALID); }

    // Worker side.
    void register_worker(unsigned index) noexcept;
    void unregister_worker(unsigned index) noexcept;
    const policy_snapshot* current() const noexcept { return cur_.load(std::memory_order_acquire); }
    void quiescent(unsigned index) noexcept { rte_rcu_qsbr_quiescent(qs_, index); }

private:
    std::atomic<policy_snapshot*> cur_{nullptr};
    rte_rcu_qsbr* qs_ = nullptr;
};

// Read and compile the policy the configuration names (rules, rules6, sets, mode), as
// generation `generation`. Control thread; allocates; never touches a device.
policy_build_result load_policy(const fastpath_config& cfg, uint32_t generation);

// Compile policy texts for this configuration's ports and workers (what load_policy does
// after reading the files; the agent's FP_POLICY and the state dir use it too).
policy_build_result compile_policy(const fastpath_config& cfg, const policy_sources& src,
                                   filter_mode mode, uint32_t generation);

} // namespace sluice
