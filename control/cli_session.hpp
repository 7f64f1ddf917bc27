// cli_session: running one sluicectl command — read its input files, check it locally,
// connect, send its request(s) over a `transport`, print the answer (cli_format) and turn
// the outcome into the exit status (cli_command.hpp's exit_status).
//
// The transport is an interface so that the whole command path — argv to request bytes,
// reply bytes to output and exit status — runs in unit tests against canned replies;
// socket_transport is the real one (api_client on sluice-control's socket).
//
// Commands and what they send (policy_api.hpp has the attributes):
//   rule append|insert|delete|flush, chain new|delete|policy, set create|add|del|flush|swap|
//   destroy, restore, mode X, ct delete|flush: one change (NLM_F_ACK), answered by a
//   GENERATION message and the ACK; rule list: CHAIN_GET then RULE_GET dumps; chain list:
//   CHAIN_GET dump; set list: SET_GET dump (streamed); set test: SET_TEST (ACK: member,
//   ENOENT: not); save: TABLE_SAVE; ct list: CT_GET dump (streamed); ct count: CT_COUNT;
//   stats: STATS_GET, CHAIN_GET and RULE_GET dumps; mode, generation: MODE_GET, GEN_GET;
//   events: CT_SUBSCRIBE, then CT_EVENT messages until --count / --timeout; batch:
//   BATCH_BEGIN [GENERATION], the changes (in datagrams of at most batch_datagram bytes),
//   BATCH_END — or BATCH_ABORT if a change was refused on the way.
//
// Thread safety: one session per thread.
#pragma once

#include "api_client.hpp"
#include "cli_command.hpp"

#include <functional>
#include <istream>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

namespace sluice::cli {

// Changes of a batch are sent in datagrams of about this size (within any socket buffer).
inline constexpr size_t batch_datagram = 128 * 1024;

class transport {
public:
    virtual ~transport() = default;
    // "" or why not.
    virtual std::string connect(const std::string& path) = 0;
    // As api_client::request.
    virtual api_reply request(const nl::builder& b, const std::function<void(const nl::message&)>& each = {}) = 0;
    // The next message (events): nullopt when the connection is gone, empty when nothing
    // came within timeout_ms.
    virtual std::optional<std::vector<uint8_t>> receive(int timeout_ms) = 0;
    virtual uint32_t next_seq() = 0;
    // Whether the last request failed for want of a connection (exit status 3) rather than
    // because the server answered with an error (1). The reply alone cannot say: the server
    // relays the fast path's own transport errors with the same errnos and texts.
    virtual bool lost() const = 0;
};

// The policy API over sluice-control's socket.
class socket_transport final : public transport {
public:
    std::string connect(const std::string& path) override { return client_.connect(path, timeout_ms); }
    api_reply request(const nl::builder& b, const std::function<void(const nl::message&)>& each) override;
    std::optional<std::vector<uint8_t>> receive(int timeout_ms) override;
    uint32_t next_seq() override { return client_.next_seq(); }
    bool lost() const override { return lost_; }

    // How long a request may wait for its answer.
    static constexpr int timeout_ms = 30000;

private:
    api_client client_;
    bool lost_ = false;
};

struct cli_io {
    std::ostream& out;
    std::ostream& err;
    std::istream& in;
};

// Run a parsed command; returns the exit status.
int run_command(const command& c, transport& t, cli_io io);

// parse_arguments + run_command: what main() does.
int run_sluicectl(std::span<const std::string> args, transport& t, cli_io io);

} // namespace sluice::cli
