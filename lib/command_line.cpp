// See command_line.hpp.
#include "command_line.hpp"

#include <fstream>
#include <sstream>

namespace po = boost::program_options;

namespace sluice {

command_line_result parse_command_line(int argc, const char* const* argv,
                                       const po::options_description& opts, std::string_view usage,
                                       std::vector<std::string>& passthrough) {
    std::string config_file;
    po::options_description generic("general");
    generic.add_options()("help,h", "show this help and exit")(
        "config,c", po::value(&config_file), "INI-style configuration file (`option = value` lines)");
    po::options_description all;
    all.add(generic).add(opts);

    std::vector<std::string> args;
    int i = 1;
    for (; i < argc; ++i) {
        if (std::string_view(argv[i]) == "--") {
            ++i;
            break;
        }
        args.emplace_back(argv[i]);
    }
    for (; i < argc; ++i) passthrough.emplace_back(argv[i]);

    command_line_result res;
    try {
        po::variables_map vm;
        po::store(po::command_line_parser(args).options(all).run(), vm);
        if (vm.count("help")) {
            std::ostringstream s;
            s << usage << "\n" << generic << "\n" << opts;
            res.help = true;
            res.text = s.str();
            return res;
        }
        if (vm.count("config")) {
            auto file = vm["config"].as<std::string>();
            std::ifstream in(file);
            if (!in) {
                res.text = "option 'config' value '" + file + "': cannot open file";
                return res;
            }
            try {
                po::store(po::parse_config_file(in, opts), vm);
            } catch (const po::error& e) {
                res.text = file + ": " + e.what();
                return res;
            }
        }
        po::notify(vm);
    } catch (const po::error& e) {
        res.text = e.what();
    }
    return res;
}

} // namespace sluice
