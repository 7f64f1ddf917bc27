// See policy_slot.hpp.
#include "policy_slot.hpp"

#include <rte_malloc.h>

namespace sluice {

policy_slot::~policy_slot() {
    delete cur_.load();
    rte_free(qs_);
}

std::string policy_slot::init(unsigned workers, std::unique_ptr<policy_snapshot> first) {
    size_t sz = rte_rcu_qsbr_get_memsize(workers);
    qs_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("sl_policy_qsbr", sz, RTE_CACHE_LINE_SIZE));
    if (!qs_) return "cannot allocate the policy QSBR variable";
    if (rte_rcu_qsbr_init(qs_, workers) != 0) return "cannot initialise the policy QSBR variable";
    cur_.store(first.release(), std::memory_order_release);
    return {};
}

void policy_slot::replace(std::unique_ptr<policy_snapshot> next) {
    policy_snapshot* old = cur_.exchange(next.release(), std::memory_order_acq_rel);
    // Every online worker passes a quiescent point after the swap before we free `old`.
    rte_rcu_qsbr_synchronize(qs_, RTE_QSBR_THRID_INVALID);
    delete old;
}

void policy_slot::register_worker(unsigned index) noexcept {
    rte_rcu_qsbr_thread_register(qs_, index);
    rte_rcu_qsbr_thread_online(qs_, index);
}

void policy_slot::unregister_worker(unsigned index) noexcept {
    rte_rcu_qsbr_thread_offline(qs_, index);
    rte_rcu_qsbr_thread_unregister(qs_, index);
}

policy_build_result load_policy(const fastpath_config& cfg, uint32_t generation) {
    policy_sources src;
    src.rules4.name = "rules";
    src.rules6.name = "rules6";
    src.sets.name = "sets";
    for (auto [path, text] : {std::pair{&cfg.rules_file, &src.rules4},
                              std::pair{&cfg.rules6_file, &src.rules6},
                              std::pair{&cfg.sets_file, &src.sets}})
        if (!path->empty())
            if (auto e = read_policy_file(*path, *text); !e.empty()) return {nullptr, e};
    return compile_policy(cfg, src, cfg.mode, generation);
}

policy_build_result compile_policy(const fastpath_config& cfg, const policy_sources& src,
                                   filter_mode mode, uint32_t generation) {
    std::vector<port_binding> ports;
    for (size_t i = 0; i < cfg.ports.size(); ++i) ports.push_back({cfg.ports[i].name, uint8_t(i)});
    return build_policy(src, mode, generation, ports, cfg.workers, steady_ns());
}

} // namespace sluice
