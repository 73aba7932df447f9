// trt_edge_parity: the ctest programs that hold libtrt_edge to the Python runtime. Each reads a reference
// JSON written by tests/cpp/test_cpp_library.py from the Python side (its tokenizer, ONNX Runtime session
// and `trt-edge run`), runs the same inputs through the library, and exits non-zero on any difference.
//   trt_edge_parity tokens REF     identical input_ids / token_type_ids for every text
//   trt_edge_parity logits REF     logits within REF.tolerance, the same top label
//   trt_edge_parity labels REF     classify() gives the label `trt-edge run` printed, text by text
//   trt_edge_parity images REF     the same for images (pixel and logit differences are printed)
//   trt_edge_parity audio REF      the same for audio files (feature differences within REF.feature_tolerance,
//                                  logits within REF.tolerance)
//   trt_edge_parity features REF   AudioProcessor features of REF.processor within REF.feature_tolerance
//   trt_edge_parity resample REF   resample_poly within REF.tolerance of scipy's on every case
//   trt_edge_parity embed REF      embed() within REF.tolerance of the Python TextEmbedder's vectors
//   trt_edge_parity refuse REF     loading a tampered folder fails with the expected one-line message
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "manifest.hpp"
#include "trt_edge/trt_edge.hpp"

namespace {

using trt_edge::Json;

std::vector<int64_t> ints(const Json& array) {
    std::vector<int64_t> out;
    for (const Json& v : array.array) out.push_back(static_cast<int64_t>(v.number));
    return out;
}

std::string show(const std::vector<int64_t>& v) {
    std::string s;
    for (const int64_t x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
    return s;
}

trt_edge::LoadOptions options(const Json& ref) {
    trt_edge::LoadOptions o;
    if (ref["max_length"].type == Json::Type::Number) o.max_length = static_cast<std::size_t>(ref["max_length"].number);
    o.threads = 2;
    return o;
}

int tokens(const Json& ref) {
    const auto tok = trt_edge::Tokenizer::from_file(ref["tokenizer"].str());
    const std::size_t max_length = static_cast<std::size_t>(ref["max_length"].number);
    const auto& texts = ref["texts"].array;
    std::size_t same = 0, shown = 0;
    for (std::size_t i = 0; i < texts.size(); ++i) {
        const trt_edge::Encoding enc = tok->encode(texts[i].str(), max_length);
        const auto want = ints(ref["input_ids"].at(i));
        const auto want_types = ints(ref["token_type_ids"].at(i));
        if (enc.input_ids == want && enc.token_type_ids == want_types && enc.attention_mask.size() == want.size()) {
            ++same;
        } else if (shown++ < 5) {
            std::cout << "DIFF text " << i << ": " << texts[i].str() << "\n  python " << show(want) << "\n  c++    "
                      << show(enc.input_ids) << "\n";
        }
    }
    std::cout << "token ids identical on " << same << "/" << texts.size() << " texts\n";
    return same == texts.size() && !texts.empty() ? 0 : 1;
}

int logits(const Json& ref) {
    const auto model = trt_edge::Model::load(ref["model"].str(), options(ref));
    const double tolerance = ref["tolerance"].number;
    const auto& texts = ref["texts"].array;
    double worst = 0.0;
    std::size_t labels = 0;
    for (std::size_t i = 0; i < texts.size(); ++i) {
        const std::vector<float> got = model.logits(texts[i].str());
        const Json& want = ref["logits"].at(i);
        if (got.size() != want.array.size()) { std::cout << "text " << i << ": " << got.size() << " logits\n"; return 1; }
        for (std::size_t k = 0; k < got.size(); ++k) worst = std::max(worst, std::fabs(got[k] - want.at(k).number));
        if (model.classify(texts[i].str()).front().label == ref["labels"].at(i).str()) ++labels;
    }
    std::cout << "logits: max |c++ - python| = " << worst << " over " << texts.size() << " texts (tolerance " << tolerance
              << "); same label on " << labels << "/" << texts.size() << " (" << model.backend() << ")\n";
    return worst <= tolerance && labels == texts.size() && !texts.empty() ? 0 : 1;
}

int labels(const Json& ref) {
    const auto model = trt_edge::Model::load(ref["model"].str(), options(ref));
    const auto& texts = ref["texts"].array;
    std::size_t same = 0;
    for (std::size_t i = 0; i < texts.size(); ++i) {
        const auto scores = model.classify(texts[i].str());
        if (scores.front().label == ref["labels"].at(i).str()) ++same;
        else std::cout << "DIFF text " << i << ": c++ " << scores.front().label << ", trt-edge run " << ref["labels"].at(i).str() << "\n";
    }
    std::cout << "classify on " << model.model_file() << ": the label of trt-edge run on " << same << "/" << texts.size()
              << " texts\n";
    return same == texts.size() && !texts.empty() ? 0 : 1;
}

int images(const Json& ref) {
    const auto model = trt_edge::Model::load(ref["model"].str(), options(ref));
    const auto& files = ref["images"].array;
    std::size_t same = 0;
    double worst_pixel = 0.0, worst_logit = 0.0;
    for (std::size_t i = 0; i < files.size(); ++i) {
        const trt_edge::Image image = trt_edge::Image::decode_file(files[i].str());
        const trt_edge::Tensor pixels = model.image_processor().preprocess(image);
        const Json& want_pixels = ref["pixel_values"].at(i);
        if (want_pixels.array.size() != pixels.floats.size()) { std::cout << "image " << i << ": pixel count differs\n"; return 1; }
        for (std::size_t k = 0; k < pixels.floats.size(); ++k)
            worst_pixel = std::max(worst_pixel, std::fabs(pixels.floats[k] - want_pixels.at(k).number));
        const std::vector<float> got = model.logits(image);
        for (std::size_t k = 0; k < got.size(); ++k)
            worst_logit = std::max(worst_logit, std::fabs(got[k] - ref["logits"].at(i).at(k).number));
        if (model.classify(image).front().label == ref["labels"].at(i).str()) ++same;
        else std::cout << "DIFF image " << files[i].str() << ": c++ " << model.classify(image).front().label << "\n";
    }
    std::cout << "images: max |pixel c++ - python| = " << worst_pixel << ", max |logit diff| = " << worst_logit
              << "; the label of trt-edge run on " << same << "/" << files.size() << "\n";
    return same == files.size() && !files.empty() && worst_pixel <= ref["pixel_tolerance"].number ? 0 : 1;
}

int audio(const Json& ref) {
    const auto model = trt_edge::Model::load(ref["model"].str(), options(ref));
    const auto& files = ref["files"].array;
    std::size_t same = 0;
    double worst_feature = 0.0, worst_logit = 0.0;
    for (std::size_t i = 0; i < files.size(); ++i) {
        const trt_edge::Audio clip = trt_edge::Audio::decode_file(files[i].str());
        const trt_edge::Tensor features = model.audio_processor().preprocess(clip);
        const Json& want = ref["features"].at(i);
        if (want.array.size() != features.floats.size()) {
            std::cout << "audio " << files[i].str() << ": " << features.floats.size() << " feature values, python "
                      << want.array.size() << "\n";
            return 1;
        }
        for (std::size_t k = 0; k < features.floats.size(); ++k)
            worst_feature = std::max(worst_feature, std::fabs(features.floats[k] - want.at(k).number));
        const std::vector<float> got = model.logits(clip);
        for (std::size_t k = 0; k < got.size(); ++k)
            worst_logit = std::max(worst_logit, std::fabs(got[k] - ref["logits"].at(i).at(k).number));
        const std::string label = model.classify(clip).front().label;
        if (label == ref["labels"].at(i).str()) ++same;
        else std::cout << "DIFF audio " << files[i].str() << ": c++ " << label << "\n";
    }
    std::cout << "audio (" << model.audio_processor().input << "): max |feature c++ - python| = " << worst_feature
              << " (tolerance " << ref["feature_tolerance"].number << "), max |logit diff| = " << worst_logit
              << " (tolerance " << ref["tolerance"].number << "); the label of trt-edge run on " << same << "/"
              << files.size() << "\n";
    return same == files.size() && !files.empty() && worst_feature <= ref["feature_tolerance"].number &&
                   worst_logit <= ref["tolerance"].number ? 0 : 1;
}

int features(const Json& ref) {
    const auto processor = trt_edge::AudioProcessor::from_file(ref["processor"].str());
    const auto& files = ref["files"].array;
    double worst = 0.0;
    for (std::size_t i = 0; i < files.size(); ++i) {
        const trt_edge::Tensor got = processor.preprocess(trt_edge::Audio::decode_file(files[i].str()));
        const Json& want = ref["features"].at(i);
        if (want.array.size() != got.floats.size()) {
            std::cout << files[i].str() << ": " << got.floats.size() << " values, python " << want.array.size() << "\n";
            return 1;
        }
        for (std::size_t k = 0; k < got.floats.size(); ++k) worst = std::max(worst, std::fabs(got.floats[k] - want.at(k).number));
    }
    std::cout << "features (" << ref["processor"].str() << "): max |c++ - python| = " << worst << " over " << files.size()
              << " files (tolerance " << ref["feature_tolerance"].number << ")\n";
    return worst <= ref["feature_tolerance"].number && !files.empty() ? 0 : 1;
}

int resample(const Json& ref) {
    double worst = 0.0;
    const auto& cases = ref["cases"].array;
    for (const Json& c : cases) {
        std::vector<float> x;
        for (const Json& v : c["x"].array) x.push_back(static_cast<float>(v.number));
        const std::vector<float> y = trt_edge::resample_poly(x, static_cast<int>(c["up"].number), static_cast<int>(c["down"].number));
        if (y.size() != c["y"].array.size()) {
            std::cout << "resample " << c["up"].number << "/" << c["down"].number << ": " << y.size() << " samples, scipy "
                      << c["y"].array.size() << "\n";
            return 1;
        }
        double here = 0.0;
        for (std::size_t k = 0; k < y.size(); ++k) here = std::max(here, std::fabs(y[k] - c["y"].at(k).number));
        std::cout << "resample " << c["up"].number << "/" << c["down"].number << " (" << x.size() << " -> " << y.size()
                  << " samples): max |c++ - scipy| = " << here << "\n";
        worst = std::max(worst, here);
    }
    std::cout << "resample: max |c++ - scipy| = " << worst << " over " << cases.size() << " cases (tolerance "
              << ref["tolerance"].number << ")\n";
    return worst <= ref["tolerance"].number && !cases.empty() ? 0 : 1;
}

int embed(const Json& ref) {
    const auto model = trt_edge::Model::load(ref["model"].str(), options(ref));
    const auto& texts = ref["texts"].array;
    double worst = 0.0;
    for (std::size_t i = 0; i < texts.size(); ++i) {
        const std::vector<float> got = model.embed(texts[i].str());
        const Json& want = ref["vectors"].at(i);
        if (got.size() != want.array.size()) { std::cout << "text " << i << ": " << got.size() << " dims\n"; return 1; }
        for (std::size_t k = 0; k < got.size(); ++k) worst = std::max(worst, std::fabs(got[k] - want.at(k).number));
    }
    std::cout << "embed: max |c++ - python| = " << worst << " over " << texts.size() << " texts (tolerance "
              << ref["tolerance"].number << ")\n";
    return worst <= ref["tolerance"].number && !texts.empty() ? 0 : 1;
}

int refuse(const Json& ref) {
    try {
        trt_edge::Model::load(ref["model"].str(), options(ref));
    } catch (const trt_edge::Error& e) {
        const std::string message = e.what();
        std::cout << "refused: " << message << "\n";
        return message.find(ref["expect"].str()) != std::string::npos && message.find('\n') == std::string::npos ? 0 : 1;
    }
    std::cout << "loaded a folder that should have been refused\n";
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: " << argv[0] << " tokens|logits|labels|images|audio|features|resample|embed|refuse REFERENCE.json\n";
        return 2;
    }
    try {
        const Json ref = trt_edge::parse_json(trt_edge::read_file(argv[2]));
        const std::string what = argv[1];
        if (what == "tokens") return tokens(ref);
        if (what == "logits") return logits(ref);
        if (what == "labels") return labels(ref);
        if (what == "images") return images(ref);
        if (what == "audio") return audio(ref);
        if (what == "resample") return resample(ref);
        if (what == "features") return features(ref);
        if (what == "refuse") return refuse(ref);
        if (what == "embed") return embed(ref);
        std::cerr << "unknown check " << what << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
