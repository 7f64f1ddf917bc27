// Fuzz target for fastpath/config (load_config): the input is split at newlines into
// command-line words, and also written as a --config file; both must yield either a
// validated configuration or exactly one error message naming what is wrong — never an
// exception, a crash or a configuration that breaks its own invariants. Traps on any
// violation.
#include "config.hpp"

#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

using namespace sluice;

namespace {

void check(const config_result& r) {
    if (r.help) return;
    if (r.config.has_value() == !r.error.empty()) __builtin_trap(); // exactly one of them
    if (!r.config) return;
    const auto& c = *r.config;
    if (c.ports.empty() || c.workers < 1 || c.workers > 64 || c.burst < 1 || c.burst > 256) __builtin_trap();
    for (auto [a, b] : c.pairs)
        if (a >= c.ports.size() || b >= c.ports.size() || a == b) __builtin_trap();
    if (!c.cpus.empty() && c.cpus.size() != c.workers + 1) __builtin_trap();
    if (c.mtu < 68 || c.mtu > 9000 || c.conntrack_max < 1024 * c.workers) __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 4096) return 0;
    std::string text(reinterpret_cast<const char*>(data), size);
    // 1. as command-line words
    std::vector<std::string> words{"sluice-fastpath"};
    for (size_t start = 0; start <= text.size();) {
        size_t nl = text.find('\n', start);
        if (nl == std::string::npos) nl = text.size();
        if (nl > start) words.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    std::vector<const char*> argv;
    for (const auto& w : words) argv.push_back(w.c_str());
    check(load_config(int(argv.size()), argv.data()));
    // 2. as a configuration file
    static const std::string path = "/tmp/sluice-config-fuzz-" + std::to_string(getpid()) + ".conf";
    if (FILE* f = std::fopen(path.c_str(), "w")) {
        std::fwrite(text.data(), 1, text.size(), f);
        std::fclose(f);
        const char* file_argv[] = {"sluice-fastpath", "--config", path.c_str()};
        check(load_config(3, file_argv));
        std::remove(path.c_str());
    }
    return 0;
}
