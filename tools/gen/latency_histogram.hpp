// Latency histogram: log-linear buckets (exact below 64, then 64 buckets per power of two,
// so any value is known to within 1/64 = 1.6 %), fixed size, no allocation after
// construction. Records raw TSC cycles; quantiles are converted to microseconds on report.
// Exact min, max and count are kept beside the buckets.
//
// Thread safety: one writer (the generator's lcore); read after the run has stopped.
#pragma once

#include <array>
#include <cstdint>

namespace sluice::gen {

class latency_histogram {
public:
    static constexpr unsigned sub_bits = 6;
    static constexpr unsigned n_buckets = (1u << sub_bits) * (64 - sub_bits + 1);

    void record(uint64_t v) noexcept {
        ++buckets_[bucket_of(v)];
        ++count_;
        if (v < min_) min_ = v;
        if (v > max_) max_ = v;
    }

    uint64_t count() const noexcept { return count_; }
    uint64_t min() const noexcept { return count_ ? min_ : 0; }
    uint64_t max() const noexcept { return max_; }
    // The value at quantile q (0..1): the midpoint of the bucket holding the
    // ceil(q * count)-th smallest sample, clamped to [min, max]. 0 when empty.
    uint64_t quantile(double q) const noexcept;

    static unsigned bucket_of(uint64_t v) noexcept {
        if (v < (1u << sub_bits)) return unsigned(v);
        unsigned e = 63u - unsigned(__builtin_clzll(v)); // >= sub_bits
        unsigned sub = unsigned(v >> (e - sub_bits)) & ((1u << sub_bits) - 1);
        return (1u << sub_bits) * (e - sub_bits + 1) + sub;
    }
    static uint64_t bucket_low(unsigned b) noexcept;
    static uint64_t bucket_high(unsigned b) noexcept; // inclusive

private:
    std::array<uint64_t, n_buckets> buckets_{};
    uint64_t count_ = 0, min_ = UINT64_MAX, max_ = 0;
};

} // namespace sluice::gen
