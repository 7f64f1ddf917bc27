// control_service: what sluice-control does with each policy API message. It decodes
// requests, checks the peer's rights, turns changes into policy_store transactions
// (single messages, or BATCH_BEGIN … BATCH_END all-or-nothing, optionally checked against
// a generation), persists each committed generation, publishes it to sluice-fastpath
// through its agent socket (the whole policy text, or only set lines when only set
// elements changed), answers reads from the store, and relays what only the fast path
// knows (counters, conntrack, events) from the agent socket.
//
// The fast path may be absent or restart at any time: the service reconnects once a
// second, and on every (re)connection brings the fast path to the store's generation.
// Nothing here blocks on the fast path for longer than the agent client's timeout.
//
// Lifecycle: one per process, driven by sluice-control's main loop (poll()). Thread
// safety: that one thread only.
#pragma once

#include "api_client.hpp"
#include "api_server.hpp"
#include "control_config.hpp"
#include "policy_store.hpp"

#include <chrono>
#include <map>
#include <set>

namespace sluice {

class control_service {
public:
    explicit control_service(const control_config& cfg);

    // Load the persisted policy and open the API socket. "" or the reason.
    std::string start();
    // Serve for up to timeout_ms; keep the fast-path link and the event relay going.
    void poll(int timeout_ms);
    // Whether the fast path's agent answered at the last attempt.
    bool fastpath_connected() const noexcept { return fp_.connected(); }
    // Set when the fast path went away after having been reached (it restarted: a DPDK
    // secondary must attach again).
    bool fastpath_lost() const noexcept { return lost_; }
    void clear_lost() noexcept { lost_ = false; }
    const policy_store& store() const noexcept { return store_; }

private:
    struct batch {
        bool open = false;
        std::optional<uint32_t> generation;
        std::vector<change> changes;
        std::vector<uint16_t> types; // message type of each change (errors)
    };

    void handle(const api_peer& peer, const nl::message& m, nl::builder& reply);
    bool is_writer(const api_peer& peer) const noexcept;
    // Decode a change request; false (with the error put in `reply`) if malformed.
    bool decode_change(const nl::message& m, const nl::attr_list& a, change& c, nl::builder& reply);
    void commit(const api_peer& peer, const nl::message& m, std::vector<change> changes,
                const std::vector<uint16_t>& types, std::optional<uint32_t> generation,
                nl::builder& reply);
    void publish(const commit_result& r);
    bool push_full_policy();
    // Relay `m` to the fast path and its answer to the peer (re-stamped with m's seq).
    void relay(const api_peer& peer, const nl::message& m, nl::builder& reply,
               const std::function<bool(const nl::message&)>& keep = {});
    void reply_rules(const api_peer& peer, const nl::message& m, const nl::attr_list& a, nl::builder& reply);
    void reply_chains(const nl::message& m, const nl::attr_list& a, nl::builder& reply);
    void reply_sets(const api_peer& peer, const nl::message& m, const nl::attr_list& a, nl::builder& reply);
    void tend_fastpath();
    void relay_events();

    control_config cfg_;
    policy_store store_;
    api_server server_;
    api_client fp_;     // requests to the fast path's agent
    api_client fp_ev_;  // its conntrack event stream (while someone subscribed)
    bool ever_connected_ = false, lost_ = false;
    std::chrono::steady_clock::time_point last_try_{};
    std::map<int, batch> batches_;
    std::set<int> subscribers_;
};

} // namespace sluice
