// trt_edge_app: a robot or vehicle app's whole inference path, on libtrt_edge (docs/cpp.md).
//   trt_edge_app MODEL_FOLDER [--backend auto|onnxruntime|tensorrt] (--text TEXT | --image FILE | --audio WAV | --embed TEXT)...
#include <trt_edge/trt_edge.hpp>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
    if (argc < 4) {
        std::cerr << "usage: " << argv[0] << " MODEL_FOLDER [--backend NAME] (--text T | --image FILE | --audio WAV | --embed T)...\n";
        return 2;
    }
    try {
        trt_edge::LoadOptions options;
        int i = 2;
        if (std::string(argv[i]) == "--backend") { options.backend = argv[i + 1]; i += 2; }
        const auto model = trt_edge::Model::load(argv[1], options);  // checks SHA256SUMS and the manifest
        for (; i + 1 < argc; i += 2) {
            const std::string flag = argv[i], value = argv[i + 1];
            if (flag == "--embed") {
                std::cout << model.embed(value).size() << "-dim vector\t" << value << "\n";
            } else if (flag == "--text" || flag == "--image" || flag == "--audio") {
                const auto best = (flag == "--text"    ? model.classify(value)
                                   : flag == "--image" ? model.classify(trt_edge::Image::decode_file(value))
                                                       : model.classify(trt_edge::Audio::decode_file(value))).front();
                std::cout << best.label << "\t" << best.score << "\t" << value << "\n";
            } else {
                throw trt_edge::Error("unknown flag " + flag + " (use --text, --image, --audio or --embed)");
            }
        }
    } catch (const trt_edge::Error& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 2;
    }
    return 0;
}
