"""A small Python client of Sluice's netlink-framed policy API (lib/netlink.hpp), for tests.

Framing: nlmsghdr (len u32, type u16, flags u16, seq u32, pid u32) + nlattr TLVs (len u16,
type u16, 0x8000 = nested), 4-byte aligned, host byte order, several messages per
AF_UNIX SOCK_SEQPACKET datagram. Message and attribute numbers are read from
lib/policy_api.hpp (load_api), so this file never goes out of date with the C++ table.

    api = load_api()                       # api.msg["CT_GET"], api.attr["CT_FILTER"], ...
    c = Client(path)
    r = c.request(api.msg["GEN_GET"])      # Reply: err, text, offset, messages
    r.messages[0].attrs()[0].u32()
    c.request(api.msg["CT_GET"], DUMP, [nest(api.attr["CT_FILTER"], u8(api.attr["PROTO"], 17))])

Malformed input (for negative tests) is built with `raw`/`attr` directly and sent with
Client.send. Runs under Debian's /usr/bin/python3; no third-party modules."""
import os
import re
import socket
import struct

# Framing constants (linux/netlink.h).
NOOP, ERROR, DONE = 1, 2, 3
REQUEST, MULTI, ACK, ECHO = 0x1, 0x2, 0x4, 0x8
DUMP = 0x300
CAPPED, ACK_TLVS = 0x100, 0x200
NESTED = 0x8000
ERRATTR_MSG, ERRATTR_OFFS = 1, 2
HDR = struct.Struct("=IHHII")
AHDR = struct.Struct("=HH")


class NlError(Exception):
    pass


def align4(n):
    return (n + 3) & ~3


# ---- encoding ----

def attr(type_, payload=b"", nested=False):
    """One attribute: header + payload + padding."""
    n = AHDR.size + len(payload)
    return AHDR.pack(n, type_ | (NESTED if nested else 0)) + payload + b"\0" * (align4(n) - n)


def u8(t, v):
    return attr(t, struct.pack("=B", v))


def u16(t, v):
    return attr(t, struct.pack("=H", v))


def u32(t, v):
    return attr(t, struct.pack("=I", v))


def u64(t, v):
    return attr(t, struct.pack("=Q", v))


def string(t, s):
    """NUL-terminated string; longer texts are split in 65000-byte pieces (netlink.hpp text_chunk)."""
    b = s.encode() if isinstance(s, str) else s
    if len(b) <= 65000:
        return attr(t, b + b"\0")
    return b"".join(attr(t, b[i:i + 65000] + b"\0") for i in range(0, len(b), 65000))


def flag(t):
    return attr(t)


def nest(t, *children):
    return attr(t, b"".join(children), nested=True)


def message(type_, flags=REQUEST, seq=1, attrs=(), pid=0):
    body = b"".join(attrs)
    return HDR.pack(HDR.size + len(body), type_, flags, seq, pid) + body


# ---- decoding ----

class Attr:
    def __init__(self, type_, nested, data, offset):
        self.type, self.nested, self.data, self.offset = type_, nested, data, offset

    def u8(self):
        return struct.unpack("=B", self.data)[0]

    def u16(self):
        return struct.unpack("=H", self.data)[0]

    def u32(self):
        return struct.unpack("=I", self.data)[0]

    def u64(self):
        return struct.unpack("=Q", self.data)[0]

    def str(self):
        if not self.data or self.data[-1] != 0:
            raise NlError(f"attribute {self.type}: not a NUL-terminated string")
        return self.data[:-1].decode()

    def nest(self):
        return parse_attrs(self.data, self.offset + AHDR.size)

    def __repr__(self):
        return f"Attr({self.type}{' nested' if self.nested else ''}, {len(self.data)} B @{self.offset})"


def parse_attrs(payload, base=HDR.size):
    out, off = [], 0
    while off < len(payload):
        if len(payload) - off < AHDR.size:
            raise NlError(f"truncated attribute header at {base + off}")
        n, t = AHDR.unpack_from(payload, off)
        if n < AHDR.size or n > len(payload) - off:
            raise NlError(f"attribute length {n} out of bounds at {base + off}")
        out.append(Attr(t & ~NESTED, bool(t & NESTED), bytes(payload[off + AHDR.size:off + n]), base + off))
        off += align4(n)
    return out


def attr_map(attrs):
    """type -> Attr (the first of each type)."""
    m = {}
    for a in attrs:
        m.setdefault(a.type, a)
    return m


class Msg:
    def __init__(self, type_, flags, seq, pid, payload, raw):
        self.type, self.flags, self.seq, self.pid, self.payload, self.raw = type_, flags, seq, pid, payload, raw

    def attrs(self):
        return parse_attrs(self.payload)

    def error(self):
        """(errno, text, offset) of an NLMSG_ERROR message (errno 0: ACK)."""
        if self.type != ERROR or len(self.payload) < 4 + HDR.size:
            raise NlError("not an NLMSG_ERROR message")
        err = -struct.unpack_from("=i", self.payload)[0]
        text, offs = "", 0
        if self.flags & ACK_TLVS:
            for a in parse_attrs(self.payload[4 + HDR.size:], HDR.size + 4 + HDR.size):
                if a.type == ERRATTR_MSG:
                    text = a.str()
                elif a.type == ERRATTR_OFFS:
                    offs = a.u32()
        return err, text, offs

    def __repr__(self):
        return f"Msg(type=0x{self.type:04x} flags=0x{self.flags:x} seq={self.seq} {len(self.payload)} B)"


def split(datagram):
    out, off = [], 0
    while off < len(datagram):
        if len(datagram) - off < HDR.size:
            raise NlError("truncated message header")
        n, t, f, seq, pid = HDR.unpack_from(datagram, off)
        if n < HDR.size or n > len(datagram) - off:
            raise NlError(f"message length {n} out of bounds")
        out.append(Msg(t, f, seq, pid, bytes(datagram[off + HDR.size:off + n]), bytes(datagram[off:off + n])))
        off += align4(n)
    return out


# ---- the numbers ----

class Api:
    def __init__(self, msg, attr):
        self.msg, self.attr = msg, attr
        self.msg_name = {v: k for k, v in msg.items()}


def load_api(header=None):
    """Message and attribute numbers from lib/policy_api.hpp: msg["FP_POLICY"], attr["CT_FLOW"]."""
    if header is None:
        header = os.path.join(os.path.dirname(__file__), "..", "..", "lib", "policy_api.hpp")
    text = open(header).read()
    fams = {m.group(1): int(m.group(2), 0) for m in re.finditer(r"\b(fam_\w+)\s*=\s*(0x[0-9a-fA-F]+|\d+)", text)}
    msgs = {m.group(1).upper(): (fams[m.group(2)] << 8) | int(m.group(3))
            for m in re.finditer(r"\b(\w+)\s*=\s*msg\((fam_\w+),\s*(\d+)\)", text)}
    attrs = {m.group(1).upper(): int(m.group(2))
             for m in re.finditer(r"\ba_(\w+)\s*=\s*(\d+)", text)}
    return Api(msgs, attrs)


# ---- the socket ----

class Reply:
    def __init__(self):
        self.err, self.text, self.offset, self.messages = 0, "", 0, []

    def __repr__(self):
        return f"Reply(err={self.err} text={self.text!r} offset={self.offset} {len(self.messages)} message(s))"


class Client:
    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.connect(path)
        self.seq = 0
        self.pending = []
        self.events = []  # messages with seq 0 met while waiting for an answer

    def close(self):
        self.sock.close()

    def next_seq(self):
        self.seq += 1
        return self.seq

    def send(self, data):
        self.sock.send(data)

    def recv(self, timeout=None):
        """The next message (buffered per datagram); None on timeout or EOF."""
        if self.pending:
            return self.pending.pop(0)
        old = self.sock.gettimeout()
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            # Size the buffer to the datagram (MSG_TRUNC reports its whole length): a fixed
            # 64 MiB buffer per receive would be allocated, and with MALLOC_PERTURB_ (meson
            # test) also written, every time.
            n = self.sock.recv_into(bytearray(1), 1, socket.MSG_PEEK | socket.MSG_TRUNC)
            if n <= 0:
                return None
            buf = bytearray(n)
            got = self.sock.recv_into(buf, n)
        except (socket.timeout, BlockingIOError):
            return None
        finally:
            self.sock.settimeout(old)
        data = bytes(buf[:got])
        if not data:
            return None
        self.pending = split(data)
        return self.pending.pop(0) if self.pending else None

    def request(self, type_, flags=0, attrs=(), each=None, timeout=None):
        """Send one request (NLM_F_REQUEST added) and collect its answer as api_client does:
        a dump until NLMSG_DONE, otherwise replies then the ACK (with NLM_F_ACK) or exactly
        one reply or error. Data messages go to `each` or to Reply.messages."""
        seq = self.next_seq()
        self.send(message(type_, flags | REQUEST, seq, attrs))
        return self.collect(seq, flags, each, timeout)

    def collect(self, seq, flags, each=None, timeout=None):
        r = Reply()
        dump, ack = (flags & DUMP) == DUMP, bool(flags & ACK)
        while True:
            m = self.recv(timeout)
            if m is None:
                raise NlError("no answer (timeout or connection closed)")
            if m.seq == 0 and m.type != ERROR:
                self.events.append(m)
                continue
            if m.type == ERROR:
                r.err, r.text, r.offset = m.error()
                return r
            if m.type == DONE:
                return r
            if each:
                each(m)
            else:
                r.messages.append(m)
            if not dump and not ack:
                return r
