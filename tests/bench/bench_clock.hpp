// What the micro-benchmarks share: the tick source (rdtsc cycles on x86, else steady-clock
// nanoseconds) and the summary they report (median with 10th/90th percentile), robust
// against preemption on a shared machine. Benchmark-only code.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
inline uint64_t ticks() { return __rdtsc(); }
inline const char* tick_unit = "cycles";
#else
inline uint64_t ticks() {
    return uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
}
inline const char* tick_unit = "ns";
#endif

struct spread {
    double median, p10, p90;
};

inline spread summarise(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return {v[v.size() / 2], v[v.size() / 10], v[v.size() * 9 / 10]};
}
