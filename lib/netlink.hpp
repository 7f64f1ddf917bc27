// netlink: the framing of Sluice's policy API — Linux netlink's wire format (nlmsghdr +
// nlattr TLVs, 4-byte alignment, host byte order) carried over an AF_UNIX SOCK_SEQPACKET
// socket, one or more messages per datagram. control/API.md documents the bytes; this file
// is the one encoder/decoder both sides (sluice-control, sluice-fastpath, sluicectl, any C++
// client) use.
//
//   nlmsghdr (16 B): len u32 (header included) | type u16 | flags u16 | seq u32 | pid u32
//   nlattr   (4 B) : len u16 (header included, padding excluded) | type u16 (0x8000 = nested)
//   payload of an attribute, padded to 4 bytes
//
// Errors follow the kernel: NLMSG_ERROR carries a negative errno (0 = ACK), the request's
// header (NLM_F_CAPPED: never its payload) and, with NLM_F_ACK_TLVS, the extended ack:
// NLMSGERR_ATTR_MSG (text) and NLMSGERR_ATTR_OFFS (byte offset of the offending attribute
// within the request message).
//
// Decoding never reads past the buffer: every length is checked before use and a
// malformed message is reported, never trusted. Thread safety: plain values and pure
// functions; any thread.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::nl {

// Framing constants, as in <linux/netlink.h>.
inline constexpr uint16_t msg_noop = 1, msg_error = 2, msg_done = 3;
inline constexpr uint16_t f_request = 0x1, f_multi = 0x2, f_ack = 0x4, f_echo = 0x8;
inline constexpr uint16_t f_root = 0x100, f_match = 0x200, f_dump = f_root | f_match;
inline constexpr uint16_t f_replace = 0x100, f_excl = 0x200, f_create = 0x400, f_append = 0x800;
inline constexpr uint16_t f_capped = 0x100, f_ack_tlvs = 0x200; // in NLMSG_ERROR replies
inline constexpr uint16_t attr_nested = 0x8000;
inline constexpr uint16_t errattr_msg = 1, errattr_offs = 2;
inline constexpr size_t header_len = 16, attr_header_len = 4;
// Largest datagram either side accepts; a dump is split into datagrams of at most
// `dump_datagram` bytes. A sender needs a socket buffer as large as its largest message
// (set_socket_buffers raises it; as root beyond net.core.wmem_max).
inline constexpr size_t max_datagram = 64u << 20, dump_datagram = 256u << 10;
// Text longer than an attribute can hold (65531 bytes) is carried in consecutive
// attributes of the same type, each a NUL-terminated piece; readers concatenate them.
inline constexpr size_t text_chunk = 65000;

constexpr size_t align4(size_t n) noexcept { return (n + 3) & ~size_t(3); }

struct header {
    uint32_t len = 0;
    uint16_t type = 0;
    uint16_t flags = 0;
    uint32_t seq = 0;
    uint32_t pid = 0;
};

// One attribute as found in a message: its type (nested flag removed), whether it was
// marked nested, its payload, and its offset within the message (for the extended ack).
struct attr {
    uint16_t type = 0;
    bool nested = false;
    std::span<const uint8_t> data;
    uint32_t offset = 0;

    std::optional<uint8_t> u8() const noexcept;
    std::optional<uint16_t> u16() const noexcept;
    std::optional<uint32_t> u32() const noexcept;
    std::optional<uint64_t> u64() const noexcept;
    std::optional<int32_t> s32() const noexcept;
    // NUL-terminated string (the NUL is required, as NLA_NUL_STRING); nullopt otherwise.
    std::optional<std::string_view> str() const noexcept;
};

// The attributes of a message or of a nested attribute, in order. `error` is set (and the
// list is what came before) when a length is wrong.
struct attr_list {
    std::vector<attr> items;
    std::string error;
    uint32_t error_offset = 0;

    const attr* find(uint16_t type) const noexcept;
    // The concatenation of every attribute of `type` (text pieces, see text_chunk);
    // nullopt if there is none or one is not a valid string.
    std::optional<std::string> text(uint16_t type) const;
    std::vector<const attr*> all(uint16_t type) const;
};

// Parse the attributes in `payload`, which starts at byte `base` of its message.
attr_list parse_attrs(std::span<const uint8_t> payload, uint32_t base) noexcept;

struct message {
    header hdr;
    std::span<const uint8_t> bytes;   // the whole message, header included
    std::span<const uint8_t> payload; // after the header
    attr_list attrs() const noexcept { return parse_attrs(payload, header_len); }
};

// Split a datagram into messages. On a malformed header (length below 16 or past the
// end) returns what came before and sets `error`.
struct split_result {
    std::vector<message> messages;
    std::string error;
};
split_result split(std::span<const uint8_t> datagram) noexcept;

// Builds one message (or several back to back in one buffer).
class builder {
public:
    // Start a message (end() closes it).
    void begin(uint16_t type, uint16_t flags, uint32_t seq, uint32_t pid = 0);
    void put(uint16_t type, const void* data, size_t len);
    void put_u8(uint16_t type, uint8_t v) { put(type, &v, 1); }
    void put_u16(uint16_t type, uint16_t v) { put(type, &v, 2); }
    void put_u32(uint16_t type, uint32_t v) { put(type, &v, 4); }
    void put_u64(uint16_t type, uint64_t v) { put(type, &v, 8); }
    void put_s32(uint16_t type, int32_t v) { put(type, &v, 4); }
    void put_str(uint16_t type, std::string_view s); // NUL-terminated, < text_chunk
    void put_text(uint16_t type, std::string_view s); // any length: pieces of text_chunk
    // Nested attributes: begin_nest returns a token for end_nest.
    size_t begin_nest(uint16_t type);
    void end_nest(size_t token);
    // Close the current message (fixes its length). Returns its size.
    size_t end();
    // Raw bytes (e.g. an embedded request header in an error reply).
    void put_raw(const void* data, size_t len);

    std::span<const uint8_t> bytes() const noexcept { return buf_; }
    size_t size() const noexcept { return buf_.size(); }
    void clear() noexcept { buf_.clear(); start_ = 0; }

private:
    std::vector<uint8_t> buf_;
    size_t start_ = 0;
};

// An NLMSG_ERROR reply to `req`: err is 0 (ACK) or a positive errno (sent negated); `text`
// and `offset` (byte offset of the offending attribute in the request, 0: none) form the
// extended ack.
void put_error(builder& b, const header& req, int err, std::string_view text = {},
               uint32_t offset = 0);
void put_done(builder& b, uint32_t seq, uint32_t pid = 0);

// A decoded NLMSG_ERROR payload.
struct error_reply {
    int err = 0; // positive errno, 0 for an ACK
    header request;
    std::string text;
    uint32_t offset = 0;
};
std::optional<error_reply> parse_error(const message& m) noexcept;

// Raise a socket's send and receive buffers so that messages up to max_datagram fit
// (SO_SNDBUFFORCE/SO_RCVBUFFORCE when privileged, else as far as the sysctl allows).
void set_socket_buffers(int fd) noexcept;
// Receive one datagram into `buf` (grown to its size; nothing is truncated). Returns its
// length, 0 on EOF, -1 on error (errno set). `flags` as for recv (MSG_DONTWAIT).
long receive_datagram(int fd, std::vector<uint8_t>& buf, int flags) noexcept;

} // namespace sluice::nl
