// Fuzz target for sluice-gen's traffic specifications (tools/gen/stream_spec): parse
// arbitrary text as a --stream and as a --tcp line; whatever parses must format to a line
// that parses back to the same spec, and a parsed stream's derived sizes must be coherent
// (min_size <= every packet's size <= 9000). Traps on any violation.
#include "stream_spec.hpp"

#include <cstdint>
#include <string>

using namespace sluice::gen;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    stream_spec s;
    if (parse_stream_spec(text, s).empty()) {
        stream_spec again;
        if (!parse_stream_spec(format_stream_spec(s), again).empty() || !(again == s)) __builtin_trap();
        for (uint64_t k = 0; k < 12; ++k)
            if (s.size_of(k) < s.min_size() || s.size_of(k) > max_frame) __builtin_trap();
        if (s.flows() == 0) __builtin_trap();
    }
    tcp_spec t;
    if (parse_tcp_spec(text, t).empty()) {
        tcp_spec again;
        if (!parse_tcp_spec(format_tcp_spec(t), again).empty() || !(again == t)) __builtin_trap();
        if (t.flows() == 0 || t.flows() > max_tcp_flows) __builtin_trap();
    }
    return 0;
}
