// See latency_histogram.hpp.
#include "latency_histogram.hpp"

#include <algorithm>
#include <cmath>

namespace sluice::gen {

uint64_t latency_histogram::bucket_low(unsigned b) noexcept {
    constexpr unsigned per = 1u << sub_bits;
    if (b < per) return b;
    unsigned e = b / per - 1 + sub_bits, sub = b % per;
    return uint64_t(per + sub) << (e - sub_bits);
}

uint64_t latency_histogram::bucket_high(unsigned b) noexcept {
    constexpr unsigned per = 1u << sub_bits;
    if (b < per) return b;
    unsigned e = b / per - 1 + sub_bits;
    return bucket_low(b) + ((uint64_t(1) << (e - sub_bits)) - 1);
}

uint64_t latency_histogram::quantile(double q) const noexcept {
    if (!count_) return 0;
    q = std::clamp(q, 0.0, 1.0);
    uint64_t rank = std::max<uint64_t>(1, uint64_t(std::ceil(q * double(count_))));
    uint64_t seen = 0;
    for (unsigned b = 0; b < n_buckets; ++b) {
        seen += buckets_[b];
        if (seen >= rank) {
            uint64_t mid = bucket_low(b) + (bucket_high(b) - bucket_low(b)) / 2;
            return std::clamp(mid, min_, max_);
        }
    }
    return max_;
}

} // namespace sluice::gen
