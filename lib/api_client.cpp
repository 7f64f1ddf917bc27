// See api_client.hpp.
#include "api_client.hpp"

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace sluice {

nl::message api_reply::at(size_t k) const {
    auto s = nl::split(messages.at(k));
    return s.messages.empty() ? nl::message{} : s.messages.front();
}

api_client::~api_client() { close(); }

void api_client::close() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    pending_.clear();
}

std::string api_client::connect(const std::string& path, int timeout_ms) {
    close();
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) return "connect " + path + ": path too long";
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return "connect " + path + ": socket: " + std::strerror(errno);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        std::string e = "connect " + path + ": " + std::strerror(errno);
        close();
        return e;
    }
    if (timeout_ms > 0) {
        timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    nl::set_socket_buffers(fd_);
    return {};
}

std::vector<uint8_t> api_client::receive(int timeout_ms) {
    if (!pending_.empty()) {
        auto m = std::move(pending_.front());
        pending_.erase(pending_.begin());
        return m;
    }
    if (fd_ < 0) return {};
    if (timeout_ms >= 0) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) <= 0) return {};
    }
    long n = nl::receive_datagram(fd_, buf_, 0);
    if (n <= 0) return {};
    auto s = nl::split({buf_.data(), size_t(n)});
    for (const auto& m : s.messages) pending_.emplace_back(m.bytes.begin(), m.bytes.end());
    if (pending_.empty()) return {};
    auto m = std::move(pending_.front());
    pending_.erase(pending_.begin());
    return m;
}

api_reply api_client::request(const nl::builder& b, const std::function<void(const nl::message&)>& each) {
    api_reply r;
    if (fd_ < 0) {
        r.err = ENOTCONN;
        r.text = "not connected";
        return r;
    }
    auto reqs = nl::split(b.bytes());
    if (::send(fd_, b.bytes().data(), b.size(), MSG_NOSIGNAL) != ssize_t(b.size())) {
        r.err = errno ? errno : EIO;
        r.text = std::string("send: ") + std::strerror(r.err);
        return r;
    }
    // What each request message waits for, by its seq: a dump ends with NLMSG_DONE (or an
    // error); NLM_F_ACK asks for the ACK (or an error) after any answer; a query without
    // ACK waits for its one answer; a change without ACK waits for nothing (netlink answers
    // it only if it fails). Replies are matched on seq, so an error for a message that waited
    // for nothing is still reported.
    struct pending_reply {
        uint32_t seq;
        bool dump, ack, answer;
    };
    std::vector<pending_reply> wait;
    for (const auto& q : reqs.messages) {
        pending_reply w{q.hdr.seq, (q.hdr.flags & nl::f_dump) == nl::f_dump, (q.hdr.flags & nl::f_ack) != 0,
                        api::has_answer(q.hdr.type)};
        if (w.dump || w.ack || w.answer) wait.push_back(w);
    }
    auto settle = [&](uint32_t seq, bool final) {
        for (auto it = wait.begin(); it != wait.end(); ++it)
            if (it->seq == seq) {
                if (final || (!it->dump && !it->ack)) wait.erase(it);
                return;
            }
    };
    while (!wait.empty()) {
        auto bytes = receive();
        if (bytes.empty()) {
            if (!r.err) {
                r.err = EPIPE;
                r.text = "connection closed or timed out waiting for the answer";
            }
            return r;
        }
        auto s = nl::split(bytes);
        if (s.messages.empty()) continue;
        const nl::message& m = s.messages.front();
        if (m.hdr.type == api::ct_event && m.hdr.seq == 0) continue; // events: not ours
        if (m.hdr.type == nl::msg_error) {
            auto e = nl::parse_error(m);
            if (e && e->err && !r.err) {
                r.err = e->err;
                r.text = e->text;
                r.offset = e->offset;
            }
            settle(m.hdr.seq, true);
        } else if (m.hdr.type == nl::msg_done) {
            settle(m.hdr.seq, true);
        } else {
            if (each) each(m);
            else r.messages.push_back(std::move(bytes));
            settle(m.hdr.seq, false);
        }
    }
    return r;
}

} // namespace sluice
