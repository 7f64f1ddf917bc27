// See api_server.hpp.
#include "api_server.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace sluice {

api_server::~api_server() {
    for (auto& c : clients_) ::close(c.fd);
    if (listen_fd_ >= 0) {
        ::close(listen_fd_);
        ::unlink(path_.c_str());
    }
}

std::string api_server::listen(const std::string& path, const socket_access& access) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) return "socket path too long: " + path;
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return std::string("socket: ") + std::strerror(errno);
    // A socket file left by a process that died: replace it only if nobody answers there.
    int probe = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (probe >= 0) {
        if (::connect(probe, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
            ::close(probe);
            ::close(fd);
            return path + ": another process is serving this socket";
        }
        ::close(probe);
    }
    ::unlink(path.c_str());
    mode_t old = ::umask(0177);
    int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    ::umask(old);
    if (rc != 0) {
        std::string e = "bind " + path + ": " + std::strerror(errno);
        ::close(fd);
        return e;
    }
    if (::chown(path.c_str(), access.owner, access.group) != 0 ||
        ::chmod(path.c_str(), access.mode) != 0) {
        std::string e = "chown/chmod " + path + ": " + std::strerror(errno);
        ::close(fd);
        ::unlink(path.c_str());
        return e;
    }
    if (::listen(fd, 64) != 0) {
        std::string e = "listen " + path + ": " + std::strerror(errno);
        ::close(fd);
        ::unlink(path.c_str());
        return e;
    }
    listen_fd_ = fd;
    path_ = path;
    return {};
}

void api_server::drop_client(size_t k, const closed_handler& on_close) {
    api_peer p = clients_[k].peer;
    ::close(clients_[k].fd);
    clients_.erase(clients_.begin() + long(k));
    if (on_close) on_close(p);
}

bool api_server::send_to(int peer_id, std::span<const uint8_t> bytes) {
    for (auto& c : clients_)
        if (c.peer.id == peer_id)
            return ::send(c.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT) == ssize_t(bytes.size());
    return false;
}

bool api_server::flush(int peer_id, nl::builder& b) {
    bool ok = false;
    for (auto& c : clients_)
        if (c.peer.id == peer_id) ok = send_messages(c.fd, b.bytes());
    b.clear();
    return ok;
}

std::vector<api_peer> api_server::peers() const {
    std::vector<api_peer> out;
    for (const auto& c : clients_) out.push_back(c.peer);
    return out;
}

bool send_messages(int fd, std::span<const uint8_t> bytes) {
    auto s = nl::split(bytes);
    size_t start = 0, end = 0;
    auto flush = [&]() {
        if (end == start) return true;
        // Blocking send with the socket's own timeout: a slow reader slows the dump, it does
        // not lose parts of it.
        size_t off = start;
        while (true) {
            ssize_t n = ::send(fd, bytes.data() + off, end - off, MSG_NOSIGNAL);
            if (n == ssize_t(end - off)) break;
            if (n < 0 && errno == EAGAIN) {
                pollfd p{fd, POLLOUT, 0};
                if (::poll(&p, 1, 5000) <= 0) return false;
                continue;
            }
            return false;
        }
        start = end;
        return true;
    };
    for (const auto& m : s.messages) {
        size_t at = size_t(m.bytes.data() - bytes.data());
        size_t next = at + nl::align4(m.bytes.size());
        if (next - start > nl::dump_datagram && end > start && !flush()) return false;
        end = std::min(next, bytes.size());
    }
    return flush();
}

bool api_server::poll_once(int timeout_ms, const handler& h, const closed_handler& on_close) {
    if (listen_fd_ < 0) return false;
    std::vector<pollfd> fds;
    fds.push_back({listen_fd_, POLLIN, 0});
    for (auto& c : clients_) fds.push_back({c.fd, POLLIN, 0});
    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n <= 0) return true;
    // Clients first (indices shift when one leaves), newest last.
    for (size_t k = clients_.size(); k-- > 0;) {
        short ev = fds[k + 1].revents;
        if (!ev) continue;
        long got = nl::receive_datagram(clients_[k].fd, buf_, MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
            drop_client(k, on_close);
            continue;
        }
        if (got < 0) continue;
        nl::builder reply;
        auto s = nl::split({buf_.data(), size_t(got)});
        for (const auto& m : s.messages) h(clients_[k].peer, m, reply);
        if (!s.error.empty()) {
            nl::header bad{};
            nl::put_error(reply, bad, EINVAL, "malformed datagram: " + s.error);
        }
        if (reply.size() && !send_messages(clients_[k].fd, reply.bytes())) drop_client(k, on_close);
    }
    if (fds[0].revents & POLLIN) {
        while (true) {
            int cfd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (cfd < 0) break;
            ucred cr{};
            socklen_t len = sizeof cr;
            ::getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cr, &len);
            // Blocking sends with a bound: a client that stops reading is dropped, the
            // server never waits on it for long.
            timeval tv{5, 0};
            ::setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            nl::set_socket_buffers(cfd);
            clients_.push_back({cfd, {next_id_++, cr.pid, cr.uid, cr.gid}});
        }
    }
    return true;
}

} // namespace sluice
