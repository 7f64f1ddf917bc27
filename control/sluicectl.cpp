// sluicectl: the command-line tool users and scripts drive Sluice with — rules, chains,
// sets, whole-policy restore/save, conntrack, counters, mode, events and transactions —
// speaking the policy API to sluice-control's socket. Everything but this entry point is
// the cli_* library (cli_session.hpp), so it is tested without a server.
//
// Output goes to stdout (JSON with -j), diagnostics to stderr; the exit status says what
// happened (0 ok, 1 refused/failed, 2 usage, 3 cannot reach sluice-control).
#include "cli_session.hpp"

#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    std::ios::sync_with_stdio(false);
    std::vector<std::string> args(argv + 1, argv + argc);
    sluice::cli::socket_transport t;
    int status = sluice::cli::run_sluicectl(args, t, {std::cout, std::cerr, std::cin});
    std::cout.flush();
    return status;
}
