// trt_edge_check_manifest PLAN [--trt X.Y.Z] [--cc M.m] [--allow-host-code]
// Prints every reason a plan must not be loaded on a machine with these facts; exit 0 when it may, 2 when not.
// Needs neither TensorRT nor a GPU: the facts are given on the command line (main.cpp reads them live).
#include <iostream>
#include <string>

#include "../../cpp/src/manifest.hpp"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: " << argv[0] << " PLAN [--trt X.Y.Z] [--cc M.m] [--allow-host-code]\n";
        return 2;
    }
    const std::string plan = argv[1];
    trt_edge::RuntimeFacts facts;
    for (int i = 2; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--trt" && i + 1 < argc) facts.tensorrt = argv[++i];
        else if (arg == "--cc" && i + 1 < argc) facts.compute_capability = argv[++i];
        else if (arg == "--allow-host-code") facts.allow_host_code = true;
        else { std::cerr << "unknown option " << arg << "\n"; return 2; }
    }
    try {
        const auto manifest = trt_edge::parse_json(trt_edge::read_file(plan + ".json"));
        std::vector<std::string> plugins;
        const auto problems = trt_edge::check_manifest(manifest, plan, facts, &plugins);
        for (const auto& p : problems) std::cerr << "refused: " << p << "\n";
        if (!problems.empty()) return 2;
        std::cout << "ok: " << plan << " may be loaded (" << plugins.size() << " plugin libraries)\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 2;
    }
}
