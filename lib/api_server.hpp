// api_server: the listening side of the policy API — an AF_UNIX SOCK_SEQPACKET socket,
// its clients, and the loop that hands each request message to a handler. Used by
// sluice-control (for sluicectl and orchestrators) and by sluice-fastpath (its agent
// socket, for sluice-control).
//
// The server is single-threaded and non-blocking: poll_once() waits up to a timeout for
// activity, accepts clients, reads datagrams, splits them into messages (a malformed
// datagram gets an NLMSG_ERROR naming the problem, nothing else happens) and calls the
// handler once per message with a reply builder; whatever the handler put in the builder is
// sent back. Clients are identified by a number and their peer credentials (SO_PEERCRED).
//
// Lifecycle: listen() once, poll_once() in the owner's loop, destructor closes everything
// and unlinks the socket. Thread safety: one thread (the owner's).
#pragma once

#include "netlink.hpp"

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace sluice {

struct api_peer {
    int id = 0; // stable for the connection's life
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
};

struct socket_access {
    uid_t owner = 0;
    gid_t group = 0;
    unsigned mode = 0600;
};

class api_server {
public:
    // Handler: answer `m` from `peer` into `reply` (any number of messages, possibly none).
    using handler = std::function<void(const api_peer& peer, const nl::message& m, nl::builder& reply)>;
    using closed_handler = std::function<void(const api_peer& peer)>;

    api_server() = default;
    ~api_server();
    api_server(const api_server&) = delete;
    api_server& operator=(const api_server&) = delete;

    // Create the socket at `path` (a stale socket file is replaced) with `access`.
    // Returns "" or the reason.
    std::string listen(const std::string& path, const socket_access& access);

    // Wait up to timeout_ms, then serve what arrived. Returns false only if not listening.
    bool poll_once(int timeout_ms, const handler& h, const closed_handler& on_close = {});

    // Send bytes to one client (events, dump continuation). False if the client is gone
    // or its socket buffer is full (the message is not sent).
    bool send_to(int peer_id, std::span<const uint8_t> bytes);
    // Send what `b` holds so far to one client and clear it: a handler streaming a large
    // dump calls this every few hundred messages. False if the client is gone or stalled.
    bool flush(int peer_id, nl::builder& b);
    // Peers connected now.
    std::vector<api_peer> peers() const;
    const std::string& path() const noexcept { return path_; }

private:
    struct client {
        int fd;
        api_peer peer;
    };
    void drop_client(size_t k, const closed_handler& on_close);
    int listen_fd_ = -1;
    int next_id_ = 1;
    std::string path_;
    std::vector<client> clients_;
    std::vector<uint8_t> buf_;
};

// Send a reply that may exceed one datagram: split `b`'s messages into datagrams of at most
// nl::max_datagram bytes. Returns false on a send error. Any thread owning the fd.
bool send_messages(int fd, std::span<const uint8_t> bytes);

} // namespace sluice
