// See netlink.hpp.
#include "netlink.hpp"

#include <cerrno>
#include <sys/socket.h>

namespace sluice::nl {

namespace {
template <class T>
std::optional<T> fixed(std::span<const uint8_t> d) noexcept {
    if (d.size() != sizeof(T)) return std::nullopt;
    T v;
    std::memcpy(&v, d.data(), sizeof v);
    return v;
}
header read_header(const uint8_t* p) noexcept {
    header h;
    std::memcpy(&h.len, p, 4);
    std::memcpy(&h.type, p + 4, 2);
    std::memcpy(&h.flags, p + 6, 2);
    std::memcpy(&h.seq, p + 8, 4);
    std::memcpy(&h.pid, p + 12, 4);
    return h;
}
void write_header(uint8_t* p, const header& h) noexcept {
    std::memcpy(p, &h.len, 4);
    std::memcpy(p + 4, &h.type, 2);
    std::memcpy(p + 6, &h.flags, 2);
    std::memcpy(p + 8, &h.seq, 4);
    std::memcpy(p + 12, &h.pid, 4);
}
} // namespace

std::optional<uint8_t> attr::u8() const noexcept { return fixed<uint8_t>(data); }
std::optional<uint16_t> attr::u16() const noexcept { return fixed<uint16_t>(data); }
std::optional<uint32_t> attr::u32() const noexcept { return fixed<uint32_t>(data); }
std::optional<uint64_t> attr::u64() const noexcept { return fixed<uint64_t>(data); }
std::optional<int32_t> attr::s32() const noexcept { return fixed<int32_t>(data); }
std::optional<std::string_view> attr::str() const noexcept {
    if (data.empty() || data.back() != 0) return std::nullopt;
    std::string_view s(reinterpret_cast<const char*>(data.data()), data.size() - 1);
    if (s.find('\0') != std::string_view::npos) return std::nullopt;
    return s;
}

const attr* attr_list::find(uint16_t type) const noexcept {
    for (const attr& a : items)
        if (a.type == type) return &a;
    return nullptr;
}
std::optional<std::string> attr_list::text(uint16_t type) const {
    std::optional<std::string> out;
    for (const attr& a : items) {
        if (a.type != type) continue;
        auto s = a.str();
        if (!s) return std::nullopt;
        if (!out) out.emplace();
        out->append(*s);
    }
    return out;
}

std::vector<const attr*> attr_list::all(uint16_t type) const {
    std::vector<const attr*> out;
    for (const attr& a : items)
        if (a.type == type) out.push_back(&a);
    return out;
}

attr_list parse_attrs(std::span<const uint8_t> payload, uint32_t base) noexcept {
    attr_list out;
    size_t off = 0;
    while (off < payload.size()) {
        if (payload.size() - off < attr_header_len) {
            out.error = "truncated attribute header";
            out.error_offset = uint32_t(base + off);
            return out;
        }
        uint16_t len, type;
        std::memcpy(&len, payload.data() + off, 2);
        std::memcpy(&type, payload.data() + off + 2, 2);
        if (len < attr_header_len || len > payload.size() - off) {
            out.error = "attribute length " + std::to_string(len) + " out of bounds";
            out.error_offset = uint32_t(base + off);
            return out;
        }
        attr a;
        a.type = uint16_t(type & ~attr_nested);
        a.nested = (type & attr_nested) != 0;
        a.data = payload.subspan(off + attr_header_len, len - attr_header_len);
        a.offset = uint32_t(base + off);
        out.items.push_back(a);
        off += align4(len);
    }
    return out;
}

split_result split(std::span<const uint8_t> d) noexcept {
    split_result out;
    size_t off = 0;
    while (off < d.size()) {
        if (d.size() - off < header_len) {
            out.error = "truncated message header";
            return out;
        }
        header h = read_header(d.data() + off);
        if (h.len < header_len || h.len > d.size() - off) {
            out.error = "message length " + std::to_string(h.len) + " out of bounds";
            return out;
        }
        message m;
        m.hdr = h;
        m.bytes = d.subspan(off, h.len);
        m.payload = d.subspan(off + header_len, h.len - header_len);
        out.messages.push_back(m);
        off += align4(h.len);
    }
    return out;
}

void builder::begin(uint16_t type, uint16_t flags, uint32_t seq, uint32_t pid) {
    start_ = buf_.size();
    buf_.resize(start_ + header_len);
    header h{uint32_t(header_len), type, flags, seq, pid};
    write_header(buf_.data() + start_, h);
}

void builder::put_raw(const void* data, size_t len) {
    const auto* p = static_cast<const uint8_t*>(data);
    buf_.insert(buf_.end(), p, p + len);
    buf_.resize(align4(buf_.size()));
}

void builder::put(uint16_t type, const void* data, size_t len) {
    uint16_t l = uint16_t(attr_header_len + len);
    uint8_t h[4];
    std::memcpy(h, &l, 2);
    std::memcpy(h + 2, &type, 2);
    buf_.insert(buf_.end(), h, h + 4);
    if (len) buf_.insert(buf_.end(), static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + len);
    buf_.resize(align4(buf_.size()));
}

void builder::put_str(uint16_t type, std::string_view s) {
    std::string z(s);
    put(type, z.c_str(), z.size() + 1);
}

void builder::put_text(uint16_t type, std::string_view s) {
    do {
        put_str(type, s.substr(0, text_chunk));
        s.remove_prefix(std::min(s.size(), text_chunk));
    } while (!s.empty());
}

size_t builder::begin_nest(uint16_t type) {
    size_t at = buf_.size();
    put(uint16_t(type | attr_nested), nullptr, 0);
    return at;
}

void builder::end_nest(size_t token) {
    uint16_t l = uint16_t(buf_.size() - token);
    std::memcpy(buf_.data() + token, &l, 2);
}

size_t builder::end() {
    uint32_t l = uint32_t(buf_.size() - start_);
    std::memcpy(buf_.data() + start_, &l, 4);
    return l;
}

void put_error(builder& b, const header& req, int err, std::string_view text, uint32_t offset) {
    uint16_t flags = f_capped;
    if (!text.empty() || offset) flags |= f_ack_tlvs;
    b.begin(msg_error, flags, req.seq, req.pid);
    int32_t e = -err;
    b.put_raw(&e, 4);
    uint8_t h[header_len];
    write_header(h, req);
    b.put_raw(h, header_len);
    if (!text.empty()) b.put_str(errattr_msg, text);
    if (offset) b.put_u32(errattr_offs, offset);
    b.end();
}

void put_done(builder& b, uint32_t seq, uint32_t pid) {
    b.begin(msg_done, f_multi, seq, pid);
    int32_t zero = 0;
    b.put_raw(&zero, 4);
    b.end();
}

std::optional<error_reply> parse_error(const message& m) noexcept {
    if (m.hdr.type != msg_error || m.payload.size() < 4 + header_len) return std::nullopt;
    error_reply r;
    int32_t e;
    std::memcpy(&e, m.payload.data(), 4);
    r.err = -e;
    r.request = read_header(m.payload.data() + 4);
    if (m.hdr.flags & f_ack_tlvs) {
        auto al = parse_attrs(m.payload.subspan(4 + header_len), uint32_t(header_len + 4 + header_len));
        if (const attr* a = al.find(errattr_msg))
            if (auto s = a->str()) r.text = std::string(*s);
        if (const attr* a = al.find(errattr_offs))
            if (auto v = a->u32()) r.offset = *v;
    }
    return r;
}

void set_socket_buffers(int fd) noexcept {
    int sz = int(max_datagram + (1u << 20));
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) != 0)
        ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) != 0)
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
}

long receive_datagram(int fd, std::vector<uint8_t>& buf, int flags) noexcept {
    // Peek at the size first (MSG_TRUNC reports the whole datagram's length).
    uint8_t probe;
    ssize_t n = ::recv(fd, &probe, 1, flags | MSG_PEEK | MSG_TRUNC);
    if (n <= 0) return long(n);
    if (size_t(n) > max_datagram) {
        (void)::recv(fd, &probe, 1, flags); // discard it
        errno = EMSGSIZE;
        return -1;
    }
    if (buf.size() < size_t(n)) buf.resize(size_t(n));
    return long(::recv(fd, buf.data(), buf.size(), flags));
}

} // namespace sluice::nl
