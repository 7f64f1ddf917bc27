// ipset-style sets that fast-path workers look up without locks while one control thread
// changes them: hash:ip, hash:net, hash:ip,port, hash:net,port, hash:net,iface, bitmap:port
// and list:set, families inet and inet6, with ipset's semantics (nomatch, maxelem,
// per-element timeouts, `-m set --match-set NAME src,dst` direction flags).
//
// Objects and their lives. A `set_table` is the registry: name -> `ip_set`. An `ip_set` is
// the stable identity that rules hold a pointer to (with `ref()`/`unref()`); it never moves
// and keeps its type and family for life. Its contents live in a body behind one atomic
// pointer, so `swap` exchanges two sets' contents (as ipset does: names and the rules that
// use them stay, the elements change places) with two pointer stores. A hash body holds one
// open-addressing table (linear probing, power-of-two array allocated up front); hash:net*
// bodies keep all prefix lengths in that table, the prefix length being part of the key,
// plus a bitmap of the prefix lengths present so lookups try only those, most specific
// first, and the first hit decides (a nomatch hit means "no match", exactly as ipset).
//
// Concurrency contract. Exactly one writer thread (the control side) calls the non-const
// set_table functions; any number of reader threads call `ip_set::match*` and `ip_set::test`
// concurrently, never block and never see a torn element:
//  * a slot's key is written completely while its state word is `empty`, then published
//    by a release store of the state; readers acquire-load the state before reading the
//    key. A published key is never rewritten: delete stores a tombstone state, and a
//    tombstone is revived only by re-adding the very same key; other keys never reuse it.
//  * when live + tombstoned slots pass 3/4 of the array (or on flush), the writer builds a
//    new table privately and publishes it with a release store of the table pointer. The
//    old table is handed to the retire hook (`retire_fn`): the owner must free it only after
//    every reader has passed a quiescent point (QSBR grace period). Destroyed sets and
//    replaced list:set member arrays go the same way. Without a hook, retired memory is kept
//    until `collect_garbage()` (caller asserts no reader is inside) or the table dies.
//  * a reader that races with an add/del sees the element either before or after the
//    change; elements not being changed are always answered correctly.
// Lookups do no allocation, locking, exceptions or logging and are noexcept.
//
// Options: maxelem is enforced; hashsize sets the initial array size; timeout (set default
// and per element) is honoured lazily against a coarse clock the writer advances with
// `tick()` — expired elements stop matching at once and their slots are reclaimed at the
// next rebuild. counters, comment, skbinfo, forceadd are accepted and saved back on the
// create line, but no per-element counters or comments are kept.
#pragma once

#include "packet.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice {

enum class set_type : uint8_t {
    hash_ip,
    hash_net,
    hash_ip_port,
    hash_net_port,
    hash_net_iface,
    bitmap_port,
    list_set,
};

enum class set_family : uint8_t { inet, inet6 };

// "hash:ip", ... ; parse returns nullopt for an unknown name. Pure; any thread.
std::string_view set_type_name(set_type t) noexcept;
std::optional<set_type> set_type_from_name(std::string_view name) noexcept;
// Number of match dimensions (hash:ip 1, hash:ip,port 2, bitmap:port 1, list:set 0). Pure.
int set_dimension(set_type t) noexcept;
// Whether the type has an address dimension (and therefore a family). Pure.
bool set_type_has_family(set_type t) noexcept;
// Whether elements may carry `nomatch` (the net types). Pure.
bool set_type_supports_nomatch(set_type t) noexcept;

// Direction flags of `-m set --match-set NAME src,dst`: dimension i is taken from the
// source (address, port, incoming interface) when bit i of src_mask is set, else from the
// destination (outgoing interface). A set with more dimensions than flags never matches.
struct dim_flags {
    uint8_t count = 0;    // number of flags given, 1..6
    uint8_t src_mask = 0; // bit i: dimension i is "src"
    bool src(int i) const noexcept { return (src_mask >> i) & 1u; }
};
// Parse "src", "dst,src", ...; nullopt when malformed. Pure; any thread.
std::optional<dim_flags> parse_dim_flags(std::string_view text) noexcept;

inline constexpr size_t iface_name_size = 16; // IFNAMSIZ, including the terminating NUL

struct set_options {
    set_family family = set_family::inet;
    uint32_t hashsize = 1024;
    uint32_t maxelem = 65536;
    std::optional<uint32_t> timeout; // default element timeout in seconds, 0 = permanent
    uint16_t range_from = 0;         // bitmap:port
    uint16_t range_to = 0;
    uint32_t size = 8; // list:set
    bool counters = false, comment = false, skbinfo = false, forceadd = false;
};

// One element as written in an add/del/test command; ranges are expanded by the set.
struct set_element {
    ip_addr addr{};    // first address (IPv4-mapped for inet)
    ip_addr addr_to{}; // last address when `addr_range`, else unused
    bool addr_range = false;
    uint8_t cidr = 0; // prefix length in the family's terms (32 / 128 = host)
    uint8_t proto = 0;
    uint16_t port = 0, port_to = 0; // inclusive port range (equal for one port)
    char iface[iface_name_size] = {};
    std::string member; // list:set: the member set's name
    enum class position : uint8_t { end, before, after } where = position::end;
    std::string where_ref; // list:set: the set named by before/after
    bool nomatch = false;
    std::optional<uint32_t> timeout; // seconds, 0 = permanent
};

// Success is an empty message; failures carry ipset's wording.
struct set_status {
    std::string error;
    bool ok() const noexcept { return error.empty(); }
};

// Hands memory that readers may still be looking at to its owner: call `free_it` once every
// reader has passed a quiescent point. Called only from the writer thread.
using retire_fn = std::function<void(std::function<void()> free_it)>;

struct set_body;
class set_table;

class ip_set {
  public:
    ip_set(const ip_set&) = delete;
    ip_set& operator=(const ip_set&) = delete;
    ~ip_set();

    // The fast-path lookup, as `-m set --match-set NAME dims` would decide for this packet.
    // `in_iface`/`out_iface` serve hash:net,iface (src = incoming). Any thread, lock-free.
    bool match(const packet_meta& pkt, dim_flags dims, std::string_view in_iface = {},
               std::string_view out_iface = {}) const noexcept;
    // Burst form: out[i] = match(*pkts[i], ...). Any thread, lock-free.
    void match_burst(std::span<const packet_meta* const> pkts, dim_flags dims,
                     std::span<uint8_t> out, std::string_view in_iface = {},
                     std::string_view out_iface = {}) const noexcept;
    // `ipset test`: is this single element (no ranges) in the set. Any thread, lock-free.
    bool test(const set_element& e) const noexcept;

    // Immutable for the set's life; any thread.
    set_type type() const noexcept { return type_; }
    set_family family() const noexcept { return family_; }
    // The current name; writer thread only (rename changes it).
    const std::string& name() const noexcept { return name_; }
    // Elements stored (expired ones included until reclaimed). Writer thread only.
    size_t size() const noexcept;
    // Bytes of element storage (arrays, not the bookkeeping). Writer thread only.
    size_t memory_bytes() const noexcept;
    // Options of the current contents. Writer thread only.
    const set_options& options() const noexcept;

    // Reference count held by rules and list:set sets; destroy refuses while non-zero.
    // Any thread.
    void ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
    void unref() noexcept { refs_.fetch_sub(1, std::memory_order_relaxed); }
    uint32_t references() const noexcept { return refs_.load(std::memory_order_relaxed); }

  private:
    friend class set_table;
    ip_set(std::string name, set_type t, set_family f)
        : name_(std::move(name)), type_(t), family_(f) {}

    std::atomic<set_body*> body_{nullptr};
    std::atomic<uint32_t> refs_{0};
    std::string name_;
    set_type type_;
    set_family family_;
};

class set_table {
  public:
    explicit set_table(retire_fn retire = {});
    ~set_table();
    set_table(const set_table&) = delete;
    set_table& operator=(const set_table&) = delete;

    // All of the following are writer-thread only.
    // ipset create; with `exist`, an identical existing set is not an error.
    set_status create(std::string_view name, set_type type, const set_options& opt,
                      bool exist = false);
    // ipset destroy NAME; refuses while the set is referenced.
    set_status destroy(std::string_view name);
    // ipset destroy (no name): all sets, refusing (and changing nothing) if any is in use.
    set_status destroy_all();
    set_status flush(std::string_view name);
    set_status flush_all();
    // ipset swap: the two names exchange contents; types and families must agree.
    set_status swap(std::string_view a, std::string_view b);
    set_status rename(std::string_view from, std::string_view to);
    // ipset add / del; ranges are expanded (hash:net ranges become CIDR blocks). With
    // `exist`, re-adding updates timeout and nomatch, and deleting a missing element is ok.
    set_status add(std::string_view name, const set_element& e, bool exist = false);
    set_status del(std::string_view name, const set_element& e, bool exist = false);
    // ipset test (single elements only). Writer thread (name lookup).
    set_status test(std::string_view name, const set_element& e, bool& in_set) const;

    // Name lookup; the pointer is stable until the set is destroyed. Writer thread only.
    ip_set* find(std::string_view name) noexcept;
    const ip_set* find(std::string_view name) const noexcept;
    // Sets in creation order. Writer thread only.
    std::vector<const ip_set*> list() const;
    // `ipset save` text: non-list sets first, then list:set sets. Writer thread only.
    std::string save() const;
    std::string save(std::string_view name) const;

    // Advance the coarse clock (seconds) that element timeouts are measured against.
    void tick(uint32_t now_seconds) noexcept;
    uint32_t now() const noexcept { return clock_.load(std::memory_order_relaxed); }
    // Free retired memory held because no retire hook was given; only when no reader can
    // be inside a lookup.
    void collect_garbage();

    // Internal: deep copy of the named sets (and the members of list sets among them) into
    // `into`, references included; used to dry-run restore files. Writer thread only.
    void clone_into(set_table& into, const std::vector<std::string>& names) const;

  private:
    void retire(std::function<void()> free_it);
    retire_fn retirer();
    ip_set* find_mut(std::string_view name) const noexcept;
    void save_set(std::string& out, const ip_set& s) const;

    retire_fn retire_;
    std::vector<std::function<void()>> graveyard_;
    std::vector<ip_set*> sets_; // creation order; owned
    std::atomic<uint32_t> clock_{1};
};

} // namespace sluice
