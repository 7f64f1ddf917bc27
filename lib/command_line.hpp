// Command-line and configuration-file reading shared by Sluice's programs (sluice-fastpath,
// sluice-gen): the same Boost.Program_options declarations serve `--name value` words and
// `name = value` lines of the file named by --config; the command line wins where both set
// a value; words after `--` are handed back untouched (for DPDK's EAL). Validation of the
// values is the caller's.
//
// Thread safety: a pure function of its arguments (and of the file it reads).
#pragma once

#include <boost/program_options.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace sluice {

struct command_line_result {
    bool help = false; // --help was given: `text` is the help
    std::string text;  // the help, or one line saying what is wrong
    bool ok() const noexcept { return !help && text.empty(); }
};

// Parse argv[1..argc) against `opts` plus --help and --config FILE and notify the bound
// variables. `usage` heads the help text. Words after "--" go to `passthrough`.
command_line_result parse_command_line(int argc, const char* const* argv,
                                       const boost::program_options::options_description& opts,
                                       std::string_view usage, std::vector<std::string>& passthrough);

} // namespace sluice
