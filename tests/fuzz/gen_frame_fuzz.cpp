// Fuzz target for sluice-gen's receive fast path (tools/gen/frame_builder frame_signature):
// arbitrary bytes as a received frame, in a buffer of exactly their size (ASan traps a read
// beyond it). A signature found must be the bytes of one: magic first, inside the frame.
#include "frame_builder.hpp"

#include <cstdint>
#include <cstring>
#include <vector>

using namespace sluice::gen;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<uint8_t> frame(data, data + size);
    auto sig = frame_signature(frame.data(), uint32_t(frame.size()));
    if (sig) {
        if (size < 14 + 20 + 8 + signature_len) __builtin_trap(); // the shortest frame holding one
        bool found = false;
        for (size_t off = 0; off + signature_len <= size && !found; ++off)
            found = frame[off] == signature_magic >> 8 && frame[off + 1] == (signature_magic & 0xff) &&
                    std::memcmp(&frame[off + 8], &sig->tsc, 8) == 0;
        if (!found) __builtin_trap();
    }
    return 0;
}
