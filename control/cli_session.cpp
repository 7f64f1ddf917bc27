// See cli_session.hpp.
#include "cli_session.hpp"

#include "cli_format.hpp"
#include "cli_request.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <poll.h>
#include <sstream>

namespace sluice::cli {

using namespace api;

std::optional<std::vector<uint8_t>> socket_transport::receive(int timeout_ms) {
    if (!client_.connected()) return std::nullopt;
    // api_client::receive(0) answers both "nothing yet" and "closed" with nothing: a poll
    // that reports the socket readable followed by nothing to read is the close.
    auto m = client_.receive(0);
    if (!m.empty()) return m;
    pollfd p{client_.fd(), POLLIN, 0};
    int n = ::poll(&p, 1, timeout_ms);
    if (n == 0 || (n < 0 && errno == EINTR)) return std::vector<uint8_t>{};
    if (n < 0) return std::nullopt;
    m = client_.receive(0);
    if (m.empty()) return std::nullopt;
    return m;
}

api_reply socket_transport::request(const nl::builder& b, const std::function<void(const nl::message&)>& each) {
    auto t0 = std::chrono::steady_clock::now();
    api_reply r = client_.request(b, each);
    lost_ = false;
    if (!r.err) return r;
    if (!client_.connected()) {
        lost_ = true;
        return r;
    }
    // Our socket hung up (the server went away), or no answer within the timeout.
    pollfd p{client_.fd(), 0, 0};
    bool hup = ::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR));
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    lost_ = hup || (r.err == EPIPE && waited.count() >= timeout_ms - 100);
    return r;
}

namespace {

// ---- output helpers --------------------------------------------------------------------------

struct session {
    const command& c;
    transport& t;
    cli_io io;

    int error(int status, const std::string& message, int err = 0, const std::string& attribute = {}) {
        if (c.json) {
            io.out << "{\"error\":{\"status\":" << status << ",\"message\":" << json_quote(message);
            if (err) io.out << ",\"errno\":" << err << ",\"name\":" << json_quote(errno_name(err));
            if (!attribute.empty()) io.out << ",\"attribute\":" << json_quote(attribute);
            io.out << "}}\n";
        } else {
            io.err << "sluicectl: " << message << "\n";
        }
        return status;
    }

    // A request that came back with an error.
    int refused(const nl::builder& req, const api_reply& r, std::span<const named_text> sources = {},
                const std::string& prefix = {}) {
        if (t.lost())
            return error(exit_connect, "lost the connection to sluice-control at " + c.socket + ": " + r.text, r.err);
        std::string who = prefix.empty() ? std::string(verb_name(c.what)) + ": " : prefix;
        if (c.json) {
            std::string text = r.text.empty() ? std::string(std::strerror(r.err)) : r.text;
            return error(exit_failed, who + text, r.err, r.offset ? attribute_at(req.bytes(), r.offset) : "");
        }
        return error(exit_failed, who + describe_refusal(req.bytes(), r.err, r.text, r.offset, sources), r.err);
    }

    uint32_t seq() { return t.next_seq(); }

    // The GENERATION a change's answer carries (a message before its ACK), if any.
    static std::optional<uint32_t> generation_of(const api_reply& r) {
        for (size_t k = 0; k < r.messages.size(); ++k) {
            auto al = r.at(k).attrs(); // (find() points into it: keep it alive)
            if (const nl::attr* g = al.find(a_generation))
                if (auto v = g->u32()) return v;
        }
        return std::nullopt;
    }

    int changed(const api_reply& r) {
        if (c.json) {
            io.out << "{\"ok\":true";
            if (auto g = generation_of(r)) io.out << ",\"generation\":" << *g;
            io.out << "}\n";
        }
        return exit_ok;
    }
};

bool read_input(const std::string& path, std::istream& in, std::string& text, std::string& err) {
    if (path == "-") {
        text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        return true;
    }
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        err = "cannot read " + path + ": " + std::strerror(errno);
        return false;
    }
    text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    return true;
}

std::string display_name(const std::string& path) { return path == "-" ? "<stdin>" : path; }

// ---- commands ------------------------------------------------------------------------------------

int run_change(session& s, const policy_texts* texts) {
    nl::builder b;
    put_request(b, s.c, s.seq(), texts);
    auto r = s.t.request(b);
    if (r.err) {
        auto sources = sources_of(s.c, texts);
        return s.refused(b, r, sources);
    }
    return s.changed(r);
}

// A dump into `rows` through `decode`.
template <class Row, class Decode>
api_reply dump_rows(session& s, nl::builder& b, std::vector<Row>& rows, Decode decode) {
    return s.t.request(b, [&](const nl::message& m) {
        if (auto row = decode(m)) rows.push_back(std::move(*row));
    });
}

int run_rule_list(session& s) {
    std::vector<chain_row> chains;
    std::vector<rule_row> rules;
    nl::builder cb;
    put_dump(cb, chain_get, s.seq(), family_number(s.c.family));
    if (auto r = dump_rows(s, cb, chains, decode_chain); r.err) return s.refused(cb, r);
    nl::builder rb;
    put_request(rb, s.c, s.seq());
    if (auto r = dump_rows(s, rb, rules, decode_rule); r.err) return s.refused(rb, r);
    const uint8_t fam = family_number(s.c.family);
    if (s.c.json) s.io.out << rule_listing_json(chains, rules, fam, s.c.chain) << "\n";
    else s.io.out << format_rule_listing(chains, rules, fam, s.c.chain, s.c.exact);
    return exit_ok;
}

int run_chain_list(session& s) {
    std::vector<chain_row> chains;
    nl::builder b;
    put_request(b, s.c, s.seq());
    if (auto r = dump_rows(s, b, chains, decode_chain); r.err) return s.refused(b, r);
    s.io.out << (s.c.json ? chain_list_json(chains) + "\n" : format_chain_list(chains));
    return exit_ok;
}

int run_set_list(session& s) {
    nl::builder b;
    put_request(b, s.c, s.seq());
    set_printer p(s.io.out, s.c.json, s.c.names_only, s.c.terse);
    auto r = s.t.request(b, [&](const nl::message& m) { p.on_message(m); });
    if (r.err && p.sets() == 0) return s.refused(b, r);
    p.finish();
    if (r.err) return s.refused(b, r);
    return exit_ok;
}

int run_set_test(session& s) {
    nl::builder b;
    put_request(b, s.c, s.seq());
    auto r = s.t.request(b);
    const bool member = r.err == 0;
    const bool not_member = r.err == ENOENT && r.text.find("NOT in set") != std::string::npos;
    if (!member && !not_member) return s.refused(b, r);
    if (s.c.json)
        s.io.out << "{\"set\":" << json_quote(s.c.set) << ",\"element\":" << json_quote(s.c.elem)
                 << ",\"member\":" << (member ? "true" : "false") << "}\n";
    else s.io.out << s.c.elem << (member ? " is in set " : " is NOT in set ") << s.c.set << ".\n";
    return member ? exit_ok : exit_failed;
}

int run_save(session& s) {
    nl::builder b;
    put_request(b, s.c, s.seq());
    auto r = s.t.request(b);
    if (r.err) return s.refused(b, r);
    std::optional<std::string> r4, r6, sets;
    std::optional<uint32_t> gen;
    for (size_t k = 0; k < r.messages.size(); ++k) {
        auto al = r.at(k).attrs();
        auto append = [&](uint16_t type, std::optional<std::string>& to) {
            if (auto t = al.text(type)) to = to.value_or("") + *t;
        };
        append(a_rules4, r4);
        append(a_rules6, r6);
        append(a_sets, sets);
        if (const nl::attr* g = al.find(a_generation)) gen = g->u32();
    }
    struct part {
        bool wanted;
        const std::optional<std::string>* text;
        const char* key;
    };
    const part parts[] = {{s.c.save_sets, &sets, "sets"}, {s.c.save_rules4, &r4, "rules4"}, {s.c.save_rules6, &r6, "rules6"}};
    for (const auto& p : parts)
        if (p.wanted && !*p.text)
            return s.error(exit_failed, std::string("save: the answer has no ") + p.key + " text");
    if (s.c.json) {
        s.io.out << "{";
        bool first = true;
        if (gen) s.io.out << "\"generation\":" << *gen, first = false;
        for (const auto& p : parts)
            if (p.wanted) s.io.out << (first ? "" : ",") << json_quote(p.key) << ":" << json_quote(**p.text), first = false;
        s.io.out << "}\n";
        return exit_ok;
    }
    for (const auto& p : parts)
        if (p.wanted) s.io.out << **p.text;
    return exit_ok;
}

int run_ct_list(session& s) {
    nl::builder b;
    put_request(b, s.c, s.seq());
    uint64_t n = 0;
    auto r = s.t.request(b, [&](const nl::message& m) {
        auto f = decode_flow(m);
        if (!f) return;
        if (s.c.json) s.io.out << (n ? "," : "{\"flows\":[") << flow_json(*f);
        else s.io.out << format_flow(*f) << "\n";
        ++n;
    });
    if (s.c.json) {
        // One JSON object on success; on an error before any flow, only the error object.
        if (n || !r.err) s.io.out << (n ? "" : "{\"flows\":[") << "]}\n";
        if (r.err) return s.refused(b, r);
        return exit_ok;
    }
    if (r.err) return s.refused(b, r);
    s.io.err << "sluicectl: " << n << " flow entries have been shown.\n";
    return exit_ok;
}

std::optional<uint64_t> count_of(const api_reply& r) {
    for (size_t k = 0; k < r.messages.size(); ++k) {
        auto al = r.at(k).attrs();
        if (const nl::attr* a = al.find(a_count))
            if (auto v = a->u64()) return v;
    }
    return std::nullopt;
}

int run_ct_count(session& s) {
    nl::builder b;
    put_request(b, s.c, s.seq());
    auto r = s.t.request(b);
    if (r.err) return s.refused(b, r);
    auto n = count_of(r);
    if (!n) return s.error(exit_failed, std::string(verb_name(s.c.what)) + ": the answer has no COUNT");
    if (s.c.what == verb::ct_count) {
        if (s.c.json) s.io.out << "{\"count\":" << *n << "}\n";
        else s.io.out << *n << "\n";
    } else {
        if (s.c.json) s.io.out << "{\"deleted\":" << *n << "}\n";
        else s.io.out << *n << " flow entries have been deleted.\n";
    }
    return exit_ok;
}

int run_stats(session& s) {
    std::vector<stats_section> sections;
    nl::builder sb;
    put_request(sb, s.c, s.seq());
    auto r = s.t.request(sb, [&](const nl::message& m) {
        for (auto& x : decode_sections(m)) sections.push_back(std::move(x));
    });
    if (r.err) return s.refused(sb, r);
    std::vector<chain_row> chains;
    std::vector<rule_row> rules;
    nl::builder cb;
    put_dump(cb, chain_get, s.seq());
    if (auto e = dump_rows(s, cb, chains, decode_chain); e.err) return s.refused(cb, e);
    nl::builder rb;
    put_dump(rb, rule_get, s.seq());
    if (auto e = dump_rows(s, rb, rules, decode_rule); e.err) return s.refused(rb, e);
    if (s.c.json) {
        std::string fields = stats_json_fields(sections);
        s.io.out << "{" << fields << (fields.empty() ? "" : ",") << "\"rules\":{\"ipv4\":"
                 << rule_listing_json(chains, rules, 4, {}) << ",\"ipv6\":" << rule_listing_json(chains, rules, 6, {})
                 << "}}\n";
        return exit_ok;
    }
    s.io.out << format_stats(sections, s.c.all);
    for (uint8_t fam : {uint8_t(4), uint8_t(6)}) {
        bool any = std::any_of(rules.begin(), rules.end(), [&](const rule_row& x) { return x.family == fam; });
        s.io.out << "\nRules (IPv" << int(fam) << ")" << (any ? "\n" : ": none\n");
        if (any) s.io.out << format_rule_listing(chains, rules, fam, {}, s.c.exact);
    }
    return exit_ok;
}

int run_query_value(session& s) {
    nl::builder b;
    put_request(b, s.c, s.seq());
    auto r = s.t.request(b);
    if (r.err) return s.refused(b, r);
    if (s.c.what == verb::mode && !s.c.mode.empty()) return s.changed(r);
    std::optional<uint32_t> gen;
    std::optional<std::string> mode;
    for (size_t k = 0; k < r.messages.size(); ++k) {
        auto al = r.at(k).attrs();
        if (const nl::attr* g = al.find(a_generation)) gen = g->u32();
        if (auto m = al.text(a_mode)) mode = *m;
    }
    if (s.c.what == verb::mode) {
        if (!mode) return s.error(exit_failed, "mode: the answer has no MODE");
        s.io.out << (s.c.json ? "{\"mode\":" + json_quote(*mode) + "}" : *mode) << "\n";
    } else {
        if (!gen) return s.error(exit_failed, "generation: the answer has no GENERATION");
        if (s.c.json) s.io.out << "{\"generation\":" << *gen << "}\n";
        else s.io.out << *gen << "\n";
    }
    return exit_ok;
}

int run_events(session& s) {
    nl::builder b;
    put_request(b, s.c, s.seq());
    auto r = s.t.request(b);
    if (r.err) return s.refused(b, r);
    using clock = std::chrono::steady_clock;
    std::optional<clock::time_point> deadline;
    if (s.c.timeout_s)
        deadline = clock::now() + std::chrono::microseconds(int64_t(*s.c.timeout_s * 1e6));
    const bool want_new = s.c.ev_new || !s.c.ev_destroy, want_destroy = s.c.ev_destroy || !s.c.ev_new;
    uint64_t shown = 0;
    while (!s.c.count || shown < *s.c.count) {
        int wait = 1000;
        if (deadline) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - clock::now()).count();
            if (left <= 0) break;
            wait = int(std::min<int64_t>(left, 1000));
        }
        auto bytes = s.t.receive(wait);
        if (!bytes) return s.error(exit_connect, "events: sluice-control closed the connection");
        if (bytes->empty()) continue;
        auto parts = nl::split(*bytes);
        for (const nl::message& m : parts.messages) {
            if (m.hdr.type != ct_event) continue;
            auto f = decode_flow(m);
            if (!f) continue;
            if ((f->event == 1 && !want_new) || (f->event == 2 && !want_destroy)) continue;
            if (!filter_matches(s.c.filter, *f)) continue;
            s.io.out << (s.c.json ? flow_json(*f) : format_flow(*f)) << std::endl;
            if (s.c.count && ++shown >= *s.c.count) break;
        }
    }
    return exit_ok;
}

// ---- batch ------------------------------------------------------------------------------------------

struct batch_entry {
    size_t line;
    command cmd;
};

int run_batch(session& s) {
    const std::string name = display_name(s.c.file);
    std::string text, err;
    if (!read_input(s.c.file, s.io.in, text, err)) return s.error(exit_usage, "batch: " + err);
    std::vector<batch_entry> entries;
    std::istringstream lines(text);
    std::string line;
    for (size_t n = 1; std::getline(lines, line); ++n) {
        auto words = split_line(line, err);
        if (!err.empty()) return s.error(exit_usage, name + ":" + std::to_string(n) + ": " + err);
        if (words.empty()) continue;
        if (words[0] == "sluicectl") words.erase(words.begin());
        auto p = parse_arguments(words);
        if (!p.cmd) {
            std::string why = p.err.empty() ? "not a command" : p.err;
            if (why.rfind("sluicectl", 0) == 0) why = why.substr(why.find(':') + 2);
            return s.error(exit_usage, name + ":" + std::to_string(n) + ": " + why);
        }
        if (!is_batchable(p.cmd->what))
            return s.error(exit_usage, name + ":" + std::to_string(n) + ": '" + std::string(verb_name(p.cmd->what)) +
                                           "' cannot be part of a batch (rule, chain and set changes only)");
        if (auto e = check_command(*p.cmd); !e.empty())
            return s.error(exit_failed, name + ":" + std::to_string(n) + ": " + e);
        entries.push_back({n, std::move(*p.cmd)});
    }
    if (entries.empty()) {
        if (s.c.json) s.io.out << "{\"ok\":true,\"changes\":0}\n";
        return exit_ok;
    }
    if (auto e = s.t.connect(s.c.socket); !e.empty())
        return s.error(exit_connect, "cannot reach sluice-control: " + e);
    nl::builder begin;
    begin.begin(batch_begin, nl::f_request | nl::f_ack, s.seq());
    if (s.c.generation) begin.put_u32(a_generation, *s.c.generation);
    begin.end();
    if (auto r = s.t.request(begin); r.err) return s.refused(begin, r, {}, "batch: ");
    auto abort = [&] {
        nl::builder a;
        a.begin(batch_abort, nl::f_request | nl::f_ack, s.seq());
        a.end();
        s.t.request(a);
    };
    nl::builder chunk;
    size_t first = 0; // entry index of the chunk's first message
    auto send_chunk = [&](size_t end) -> int {
        if (!chunk.size()) return exit_ok;
        auto r = s.t.request(chunk);
        if (r.err) {
            if (s.t.lost()) return s.refused(chunk, r);
            abort();
            std::string where = name + ":" + std::to_string(entries[first].line);
            if (end - first > 1) where += "-" + std::to_string(entries[end - 1].line);
            return s.error(exit_failed, where + ": refused: " + (r.text.empty() ? std::strerror(r.err) : r.text) +
                                            "; nothing was applied",
                           r.err);
        }
        chunk.clear();
        first = end;
        return exit_ok;
    };
    for (size_t i = 0; i < entries.size(); ++i) {
        put_request(chunk, entries[i].cmd, s.seq());
        if (chunk.size() >= batch_datagram)
            if (int st = send_chunk(i + 1); st != exit_ok) return st;
    }
    if (int st = send_chunk(entries.size()); st != exit_ok) return st;
    nl::builder end;
    end.begin(batch_end, nl::f_request | nl::f_ack, s.seq());
    end.end();
    auto r = s.t.request(end);
    if (r.err) {
        if (s.t.lost()) return s.refused(end, r);
        if (r.err == ESTALE) {
            // The generation check is not about one change: drop a "change K of N (…): " prefix.
            std::string why = r.text;
            if (why.rfind("change ", 0) == 0 && why.find("): ") != std::string::npos) why = why.substr(why.find("): ") + 3);
            return s.error(exit_failed, "batch refused: " + why, r.err);
        }
        // "change K of N (TYPE): reason; nothing was applied" names the change; one change
        // alone is reported without the prefix.
        size_t k = 1;
        if (auto at = r.text.find("change "); at == 0) k = std::strtoul(r.text.c_str() + 7, nullptr, 10);
        if (k >= 1 && k <= entries.size()) {
            const batch_entry& e = entries[k - 1];
            std::string msg = name + ":" + std::to_string(e.line) + ": " + r.text;
            if (!s.c.json) {
                auto sources = sources_of(e.cmd);
                std::string pos = show_position(r.text, sources);
                if (!pos.empty()) msg += "\n" + pos.substr(0, pos.size() - 1);
            }
            return s.error(exit_failed, msg, r.err);
        }
        return s.error(exit_failed, "batch: " + r.text, r.err);
    }
    auto gen = session::generation_of(r);
    if (s.c.json) {
        s.io.out << "{\"ok\":true,\"changes\":" << entries.size();
        if (gen) s.io.out << ",\"generation\":" << *gen;
        s.io.out << "}\n";
    } else {
        s.io.out << "applied " << entries.size() << " change(s)";
        if (gen) s.io.out << ": generation " << *gen;
        s.io.out << "\n";
    }
    return exit_ok;
}

} // namespace

int run_command(const command& c, transport& t, cli_io io) {
    session s{c, t, io};
    policy_texts texts;
    if (c.what == verb::restore) {
        struct input {
            const std::optional<std::string>* file;
            std::optional<std::string>* text;
            std::string* name;
        };
        for (auto [file, text, name] : {input{&c.rules4_file, &texts.rules4, &texts.rules4_name},
                                        input{&c.rules6_file, &texts.rules6, &texts.rules6_name},
                                        input{&c.sets_file, &texts.sets, &texts.sets_name}}) {
            if (!*file) continue;
            std::string body, err;
            if (!read_input(**file, io.in, body, err)) return s.error(exit_usage, "restore: " + err);
            *text = std::move(body);
            *name = display_name(**file);
        }
    }
    if (c.what != verb::batch)
        if (auto e = check_command(c, &texts); !e.empty()) return s.error(exit_failed, std::string(verb_name(c.what)) + ": " + e);
    // A batch file is read and checked before run_batch connects.
    if (c.what != verb::batch)
        if (auto e = t.connect(c.socket); !e.empty())
            return s.error(exit_connect, "cannot reach sluice-control: " + e);
    switch (c.what) {
    case verb::rule_list: return run_rule_list(s);
    case verb::chain_list: return run_chain_list(s);
    case verb::set_list: return run_set_list(s);
    case verb::set_test: return run_set_test(s);
    case verb::save: return run_save(s);
    case verb::ct_list: return run_ct_list(s);
    case verb::ct_count:
    case verb::ct_delete:
    case verb::ct_flush: return run_ct_count(s);
    case verb::stats: return run_stats(s);
    case verb::mode:
    case verb::generation: return run_query_value(s);
    case verb::events: return run_events(s);
    case verb::batch: return run_batch(s);
    default: return run_change(s, c.what == verb::restore ? &texts : nullptr);
    }
}

int run_sluicectl(std::span<const std::string> args, transport& t, cli_io io) {
    parse_outcome p = parse_arguments(args);
    if (!p.cmd) {
        if (!p.out.empty()) io.out << p.out;
        if (!p.err.empty()) io.err << p.err << (p.err.back() == '\n' ? "" : "\n");
        return p.status;
    }
    return run_command(*p.cmd, t, io);
}

} // namespace sluice::cli
