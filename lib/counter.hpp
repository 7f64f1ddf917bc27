// counter: a 64-bit statistic with exactly one writer (the worker that owns it) and any
// number of readers on other threads. The writer adds with a relaxed load + store, which
// compiles to an ordinary add (no locked instruction); readers get a coherent value.
//
// Thread safety: add() from the owning thread only; get() from any thread.
#pragma once

#include <atomic>
#include <cstdint>

namespace sluice {

class counter {
public:
    void add(uint64_t n) noexcept { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> v_{0};
};

// Packets and bytes of one rule (iptables -L -v), on one worker.
struct rule_counter {
    counter packets, bytes;
};

} // namespace sluice
