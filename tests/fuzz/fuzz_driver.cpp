// A small stand-in for libFuzzer's main(), used when the fuzz targets are built without
// -fsanitize=fuzzer (gcc builds, CI): it runs every file of the given corpus directories
// through LLVMFuzzerTestOneInput, then `--runs N` inputs made by mutating them (bit flips,
// byte sets, truncation, splicing, random lengths) with a fixed seed so a failure replays.
// A crash is reported by the sanitizers / the signal; on failure the input that was being
// run is written to ./fuzz-crash-<target>.bin first.
//
// Usage: fuzz_X [--runs N] [--seed S] [DIR|FILE ...]
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<uint8_t> g_current;
std::string g_crash_path = "fuzz-crash.bin";

void save_current() {
    std::ofstream out(g_crash_path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(g_current.data()),
              static_cast<std::streamsize>(g_current.size()));
}

void on_signal(int sig) {
    save_current();
    std::fprintf(stderr, "fuzz: signal %d, input saved to %s\n", sig, g_crash_path.c_str());
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

void run_one(const std::vector<uint8_t>& in) {
    g_current = in;
    // Copy into an exactly-sized heap buffer so ASan sees any over-read.
    auto* buf = static_cast<uint8_t*>(std::malloc(in.empty() ? 1 : in.size()));
    if (!in.empty()) std::memcpy(buf, in.data(), in.size());
    LLVMFuzzerTestOneInput(buf, in.size());
    std::free(buf);
}

std::vector<uint8_t> read_file(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

} // namespace

int main(int argc, char** argv) {
    unsigned long runs = 10000;
    unsigned long seed = 1;
    std::vector<std::vector<uint8_t>> corpus;
    std::string self = std::filesystem::path(argv[0]).filename().string();
    g_crash_path = "fuzz-crash-" + self + ".bin";
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = std::strtoul(argv[++i], nullptr, 10);
        } else if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = std::strtoul(argv[++i], nullptr, 10);
        } else {
            std::filesystem::path p(argv[i]);
            if (std::filesystem::is_directory(p)) {
                for (auto& e : std::filesystem::directory_iterator(p))
                    if (e.is_regular_file()) corpus.push_back(read_file(e.path()));
            } else if (std::filesystem::exists(p)) {
                corpus.push_back(read_file(p));
            } else {
                std::fprintf(stderr, "fuzz: no such corpus path: %s\n", argv[i]);
                return 2;
            }
        }
    }
    std::signal(SIGSEGV, on_signal);
    std::signal(SIGABRT, on_signal);
    std::signal(SIGBUS, on_signal);
    std::signal(SIGFPE, on_signal);

    for (auto& c : corpus) run_one(c);
    if (corpus.empty()) corpus.push_back({});

    std::mt19937_64 rng(seed);
    auto pick = [&](size_t n) { return n ? size_t(rng() % n) : size_t(0); };
    for (unsigned long r = 0; r < runs; ++r) {
        std::vector<uint8_t> in = corpus[pick(corpus.size())];
        unsigned edits = 1 + unsigned(pick(8));
        for (unsigned e = 0; e < edits; ++e) {
            switch (pick(7)) {
            case 0: if (!in.empty()) in[pick(in.size())] ^= uint8_t(1u << pick(8)); break;
            case 1: if (!in.empty()) in[pick(in.size())] = uint8_t(rng()); break;
            case 2: if (!in.empty()) in.resize(pick(in.size())); break;
            case 3: in.push_back(uint8_t(rng())); break;
            case 4: { // splice a piece of another corpus entry
                auto& o = corpus[pick(corpus.size())];
                if (!o.empty()) {
                    size_t from = pick(o.size()), len = 1 + pick(o.size() - from);
                    size_t at = pick(in.size() + 1);
                    in.insert(in.begin() + long(at), o.begin() + long(from),
                              o.begin() + long(from + len));
                }
                break;
            }
            case 5: if (!in.empty()) in[pick(in.size())] = uint8_t(pick(2) ? 0xff : 0); break;
            case 6: { // interesting 16-bit values
                static const uint16_t vals[] = {0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff};
                if (in.size() >= 2) {
                    size_t at = pick(in.size() - 1);
                    uint16_t v = vals[pick(std::size(vals))];
                    in[at] = uint8_t(v >> 8);
                    in[at + 1] = uint8_t(v);
                }
                break;
            }
            }
        }
        run_one(in);
    }
    std::printf("fuzz: %zu corpus inputs, %lu mutated runs, no crash\n", corpus.size(), runs);
    return 0;
}
