// Fuzz target for lib/netlink (the policy API's framing) and the agent's request decoding
// (fastpath/agent_codec): split arbitrary bytes into messages, parse every attribute list
// (nested ones too, a few levels deep), read every attribute with every accessor, decode
// errors, CT_FILTER nests and attribute specs — none may read out of bounds (ASan) or
// crash. Then round trips: every message that parsed is rebuilt with nl::builder and must
// split and parse to the same header and attributes; an error reply built from the input
// must decode to the same errno, text and offset. Traps on any violation.
#include "agent_codec.hpp"
#include "netlink.hpp"
#include "policy_api.hpp"

#include <cstdint>
#include <cstring>
#include <string>

using namespace sluice;

namespace {

void check(bool ok) {
    if (!ok) __builtin_trap();
}

void walk(const nl::attr_list& al, std::span<const uint8_t> msg, int depth) {
    uint32_t last = 0;
    for (const nl::attr& a : al.items) {
        // Offsets grow and data lies inside the message.
        check(a.offset >= last);
        last = a.offset;
        check(a.data.data() >= msg.data() &&
              a.data.data() + a.data.size() <= msg.data() + msg.size());
        check(size_t(a.data.data() - msg.data()) == a.offset + nl::attr_header_len);
        (void)a.u8(), (void)a.u16(), (void)a.u32(), (void)a.u64(), (void)a.s32();
        if (auto s = a.str()) check(s->size() + 1 == a.data.size());
        if (a.type == api::a_ct_filter) {
            ct_filter f;
            if (!parse_ct_filter(a, f)) (void)f.empty();
        }
        if (depth < 4)
            walk(nl::parse_attrs(a.data, a.offset + uint32_t(nl::attr_header_len)), msg, depth + 1);
    }
    if (!al.error.empty()) check(al.error_offset >= last);
    (void)al.text(api::a_rules4);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > (1u << 16)) return 0;
    std::span<const uint8_t> in(data, size);
    auto s = nl::split(in);
    static constexpr attr_spec spec[] = {
        {api::a_generation, attr_kind::u32, true}, {api::a_mode, attr_kind::str},
        {api::a_rules4, attr_kind::text},          {api::a_ct_filter, attr_kind::nest},
        {api::a_exist, attr_kind::flag},           {api::a_count, attr_kind::u64}};
    for (const nl::message& m : s.messages) {
        check(m.bytes.size() == m.hdr.len && m.hdr.len >= nl::header_len);
        check(m.payload.size() + nl::header_len == m.bytes.size());
        auto al = m.attrs();
        walk(al, m.bytes, 0);
        if (auto e = check_attrs("FUZZ", al, spec)) check(e->err == EINVAL && !e->text.empty());
        if (auto e = nl::parse_error(m)) (void)e->text.size();

        // Round trip: rebuild the message from what parsed (only when it all parsed).
        if (!al.error.empty()) continue;
        nl::builder b;
        b.begin(m.hdr.type, m.hdr.flags, m.hdr.seq, m.hdr.pid);
        for (const nl::attr& a : al.items)
            b.put(uint16_t(a.type | (a.nested ? nl::attr_nested : 0)), a.data.data(),
                  a.data.size());
        b.end();
        auto again = nl::split(b.bytes());
        check(again.error.empty() && again.messages.size() == 1);
        const nl::message& r = again.messages[0];
        check(r.hdr.type == m.hdr.type && r.hdr.flags == m.hdr.flags && r.hdr.seq == m.hdr.seq &&
              r.hdr.pid == m.hdr.pid);
        auto ral = r.attrs();
        check(ral.error.empty() && ral.items.size() == al.items.size());
        for (size_t i = 0; i < al.items.size(); ++i) {
            check(ral.items[i].type == al.items[i].type &&
                  ral.items[i].nested == al.items[i].nested);
            check(ral.items[i].data.size() == al.items[i].data.size());
            check(std::memcmp(ral.items[i].data.data(), al.items[i].data.data(),
                              al.items[i].data.size()) == 0);
        }
    }

    // Error replies: whatever header and text, they decode to what was put in.
    if (size >= nl::header_len + 8) {
        nl::header h;
        std::memcpy(&h.len, data, 4);
        std::memcpy(&h.type, data + 4, 2);
        std::memcpy(&h.flags, data + 6, 2);
        std::memcpy(&h.seq, data + 8, 4);
        std::memcpy(&h.pid, data + 12, 4);
        int err;
        uint32_t offset;
        std::memcpy(&err, data + 16, 4);
        std::memcpy(&offset, data + 20, 4);
        err = err == INT32_MIN ? 0 : (err < 0 ? -err : err) % 4096;
        std::string text(reinterpret_cast<const char*>(data + 24), size - 24);
        text = text.substr(0, std::min(text.find('\0'), size_t(nl::text_chunk)));
        nl::builder b;
        nl::put_error(b, h, err, text, offset);
        nl::put_done(b, h.seq, h.pid);
        auto sp = nl::split(b.bytes());
        check(sp.error.empty() && sp.messages.size() == 2);
        auto e = nl::parse_error(sp.messages[0]);
        check(e && e->err == err && e->text == text && e->offset == offset);
        check(e->request.type == h.type && e->request.seq == h.seq && e->request.len == h.len);
        check(sp.messages[1].hdr.type == nl::msg_done);
    }
    return 0;
}
