// api_client: the C++ client of the policy API (sluicectl uses it, sluice-control uses it
// towards sluice-fastpath, other programs may link it). One connected AF_UNIX
// SOCK_SEQPACKET socket; requests are built with nl::builder and answered with the
// messages the server sent, the NLMSG_ERROR/NLMSG_DONE ending decoded.
//
// Lifecycle: connect() once; request() any number of times; the destructor closes the
// socket. Thread safety: one thread at a time per client.
#pragma once

#include "netlink.hpp"
#include "policy_api.hpp"

#include <functional>
#include <string>
#include <vector>

namespace sluice {

struct api_reply {
    int err = 0;                      // 0, or the positive errno the server answered
    std::string text;                 // extended ack text
    uint32_t offset = 0;              // offending attribute's offset in the request
    std::vector<std::vector<uint8_t>> messages; // data messages (dump parts, answers), whole
    // Parse message k (valid while *this lives).
    nl::message at(size_t k) const;
};

class api_client {
public:
    api_client() = default;
    ~api_client();
    api_client(const api_client&) = delete;
    api_client& operator=(const api_client&) = delete;

    // "" or "connect PATH: reason".
    std::string connect(const std::string& path, int timeout_ms = 30000);
    bool connected() const noexcept { return fd_ >= 0; }
    void close() noexcept;

    // Send `b` (one or more messages) and collect the answers, matched on seq: a dump's
    // messages until its NLMSG_DONE, a query's answer, the ACK of a message that asked for
    // one; a change without NLM_F_ACK waits for nothing (only its failure would come back).
    // Data messages go to reply.messages, or to `each` when given (a dump of millions streams
    // through it). Returns the first error met.
    api_reply request(const nl::builder& b, const std::function<void(const nl::message&)>& each = {});

    // Sequence number for the next request message.
    uint32_t next_seq() noexcept { return ++seq_; }

    // Wait for and return the next message (events). Empty on EOF/error.
    std::vector<uint8_t> receive(int timeout_ms = -1);

    int fd() const noexcept { return fd_; }

private:
    int fd_ = -1;
    uint32_t seq_ = 0;
    std::vector<uint8_t> buf_;
    std::vector<std::vector<uint8_t>> pending_; // messages of a datagram not yet consumed
};

} // namespace sluice
