// Model: a trt-edge model folder loaded for inference. Finds the files the way the Python runtime does
// (trt_edge.tasks.spec.preprocessor_dir: the stage's `preprocessor` artifact, else preprocessor/ or tokenizer/
// beside the model, else the folder itself), refuses a folder whose files changed since trt-edge wrote them
// (SHA256SUMS, as `trt-edge build --plan` and build_on_device.sh do), and runs the task's post-processing.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "manifest.hpp"
#include "trt_edge/trt_edge.hpp"

namespace trt_edge {

namespace {

bool is_file(const std::string& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_dir(const std::string& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string join(const std::string& folder, const std::string& name) {
    return folder.empty() || folder.back() == '/' ? folder + name : folder + "/" + name;
}

Json read_json(const std::string& path, const std::string& what) {
    try {
        return parse_json(read_file(path));
    } catch (const std::exception& e) {
        throw Error(path + ": unreadable " + what + " (" + e.what() + ")");
    }
}

// Every file SHA256SUMS lists must match; all mismatches are named at once.
void verify_checksums(const std::string& folder) {
    const std::string path = join(folder, "SHA256SUMS");
    std::string text;
    try { text = read_file(path); } catch (const std::exception& e) { throw Error(path + ": unreadable (" + e.what() + ")"); }
    std::vector<std::string> bad;
    std::string onnx_digest;
    std::size_t start = 0, lineno = 0;
    while (start < text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        const std::string line = text.substr(start, end - start);
        start = end + 1;
        ++lineno;
        if (line.empty()) continue;
        const std::size_t sep = line.find("  ");
        std::string digest = line.substr(0, sep == std::string::npos ? line.size() : sep);
        std::string name = sep == std::string::npos ? "" : line.substr(sep + 2);
        if (!name.empty() && name[0] == '*') name.erase(0, 1);
        const bool hex = digest.size() == 64 &&
                         std::all_of(digest.begin(), digest.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
        if (!hex || name.empty() || name[0] == '/' || name == ".." || name.rfind("../", 0) == 0 ||
            name.find("/../") != std::string::npos)
            throw Error(path + ":" + std::to_string(lineno) + ": not a sha256sum line for a file inside the folder; rebuild the bundle");
        const std::string file = join(folder, name);
        if (!is_file(file) || sha256_file(file) != digest) bad.push_back(name);
        if (name == "model.onnx") onnx_digest = digest;
    }
    if (!bad.empty()) {
        std::string names;
        for (const auto& n : bad) names += (names.empty() ? "" : ", ") + n;
        throw Error(folder + ": files changed since trt-edge wrote them (sha256 mismatch): " + names +
                    "; rebuild the bundle instead of running it");
    }
    // The plan template names the ONNX the bundle was made for: a model.onnx swapped together with a
    // regenerated SHA256SUMS still disagrees with it (as trt_edge.engine.bundle.verify_bundle checks).
    const std::string template_file = join(folder, "model.plan.json.template");
    if (!onnx_digest.empty() && is_file(template_file)) {
        const std::string recorded = read_json(template_file, "manifest template")["onnx_sha256"].str();
        if (!recorded.empty() && recorded != onnx_digest)
            throw Error(folder + ": model.onnx is not the model the bundle was made for (its sha256 differs from "
                        "model.plan.json.template); rebuild the bundle");
    }
}

std::string preprocessor_folder(const std::string& folder) {
    const std::string stage = join(folder, "stage.json");
    if (is_file(stage)) {
        const std::string rel = read_json(stage, "stage record")["artifacts"]["preprocessor"].str();
        if (!rel.empty() && is_dir(join(folder, rel))) return join(folder, rel);
    }
    for (const char* name : {"preprocessor", "tokenizer"})
        if (is_dir(join(folder, name))) return join(folder, name);
    return folder;
}

const char* dtype_name(DType d) { return d == DType::Float32 ? "float32" : d == DType::Int64 ? "int64" : "int32"; }

}  // namespace

std::size_t Tensor::size() const {
    return std::accumulate(shape.begin(), shape.end(), std::size_t{1},
                           [](std::size_t a, int64_t b) { return a * static_cast<std::size_t>(b < 0 ? 0 : b); });
}

std::vector<float> softmax(const std::vector<float>& logits) {
    if (logits.empty()) return {};
    const float top = *std::max_element(logits.begin(), logits.end());
    std::vector<float> out(logits.size());
    double sum = 0.0;
    for (std::size_t i = 0; i < logits.size(); ++i) {
        out[i] = std::exp(logits[i] - top);
        sum += out[i];
    }
    for (float& p : out) p = static_cast<float>(p / sum);
    return out;
}

std::string version() { return "0.1.0"; }

struct Model::Impl {
    std::string folder;
    std::string model_file;
    LoadOptions options;
    std::unique_ptr<Backend> backend;
    std::vector<TensorInfo> inputs, outputs;
    std::unique_ptr<Tokenizer> tokenizer;
    std::unique_ptr<ImageProcessor> processor;
    std::unique_ptr<AudioProcessor> audio;
    std::vector<std::string> labels;

    std::string output_name(const std::string& preferred) const {
        for (const auto& o : outputs) if (o.name == preferred) return o.name;
        return outputs.front().name;
    }

    Tensors text_feed(const std::string& text) const {
        if (!tokenizer) throw Error(model_file + ": " + what() + ", not a text");
        const Encoding enc = tokenizer->encode(text, options.max_length);
        Tensors feed;
        const int64_t n = static_cast<int64_t>(enc.input_ids.size());
        for (const TensorInfo& meta : inputs) {
            Tensor t;
            t.dtype = meta.dtype;
            t.shape = {1, n};
            if (meta.name == "input_ids") t.ints = enc.input_ids;
            else if (meta.name == "attention_mask") t.ints = enc.attention_mask;
            else if (meta.name == "token_type_ids") t.ints = enc.token_type_ids;
            else throw Error(model_file + ": the model wants input " + meta.name + ", which the tokenizer does not produce");
            if (meta.dtype == DType::Float32) throw Error(model_file + ": input " + meta.name + " is float32, a text model takes integers");
            feed[meta.name] = std::move(t);
        }
        return feed;
    }

    // What the model classifies, for the one-line refusal of another input.
    std::string what() const {
        return tokenizer ? "a text model: classify a text" : audio ? "an audio model: classify audio"
                                                                    : "an image model: classify an image";
    }

    std::vector<float> row(const Tensors& out, const std::string& preferred) const {
        const auto it = out.find(output_name(preferred));
        if (it == out.end() || it->second.dtype != DType::Float32) throw Error(model_file + ": no float output " + preferred);
        return it->second.floats;
    }

    std::vector<Score> scores(const std::vector<float>& logits) {
        if (labels.empty() || labels.size() != logits.size()) {
            if (!labels.empty())
                throw Error(model_file + ": the model has " + std::to_string(logits.size()) + " classes but " +
                            std::to_string(labels.size()) + " label names");
            for (std::size_t i = 0; i < logits.size(); ++i) labels.push_back("LABEL_" + std::to_string(i));
        }
        const std::vector<float> p = softmax(logits);
        std::vector<Score> out;
        for (std::size_t i = 0; i < p.size(); ++i) out.push_back({labels[i], static_cast<int>(i), p[i]});
        std::stable_sort(out.begin(), out.end(), [](const Score& a, const Score& b) { return a.score > b.score; });
        return out;
    }
};

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Model Model::load(const std::string& folder, const LoadOptions& options) {
    if (!is_dir(folder)) throw Error(folder + ": not a folder (give the model folder: a bundle, a plan folder or a stage folder)");
    if (options.max_length < 3) throw Error("max_length " + std::to_string(options.max_length) + " leaves no room for a token");
    if (options.backend != "auto" && options.backend != "onnxruntime" && options.backend != "tensorrt")
        throw Error("backend " + options.backend + " is not one of auto, onnxruntime, tensorrt");
    Model model;
    Impl& m = *model.impl_;
    m.folder = folder;
    m.options = options;
    if (options.verify && is_file(join(folder, "SHA256SUMS"))) verify_checksums(folder);

    const std::string plan = join(folder, "model.plan");
    const bool want_trt = options.backend == "tensorrt" ||
                          (options.backend == "auto" && is_file(plan) && has_tensorrt_backend());
    if (want_trt) {
        if (!is_file(plan)) throw Error(folder + ": no model.plan for the TensorRT backend (build the bundle on the device)");
        m.model_file = plan;
        m.backend = make_tensorrt_backend(plan, false);
    } else {
        for (const char* name : {"model.cpu.onnx", "model.onnx"}) {
            if (is_file(join(folder, name))) { m.model_file = join(folder, name); break; }
        }
        if (m.model_file.empty())
            throw Error(folder + ": no model.cpu.onnx or model.onnx for the ONNX Runtime backend" +
                        (is_file(plan) ? std::string(" (it has a model.plan, but this libtrt_edge was built without TensorRT)") : ""));
        m.backend = make_onnxruntime_backend(m.model_file, options.threads);
    }
    m.inputs = m.backend->inputs();
    m.outputs = m.backend->outputs();
    if (m.outputs.empty()) throw Error(m.model_file + ": the model has no output");

    const std::string pre = preprocessor_folder(folder);
    if (is_file(join(pre, "tokenizer.json"))) {
        m.tokenizer = Tokenizer::from_file(join(pre, "tokenizer.json"));
    } else if (is_file(join(pre, "preprocessor_config.json"))) {
        // An audio feature extractor states its sampling_rate; an image processor never does.
        const std::string file = join(pre, "preprocessor_config.json");
        if (!read_json(file, "preprocessor config")["sampling_rate"].is_null())
            m.audio = std::make_unique<AudioProcessor>(AudioProcessor::from_file(file));
        else
            m.processor = std::make_unique<ImageProcessor>(ImageProcessor::from_file(file));
    } else {
        throw Error(folder + ": no tokenizer.json or preprocessor_config.json in " + pre +
                    " (the preprocessing travels with the model: export it with trt-edge)");
    }
    const std::string config = join(pre, "config.json");
    if (is_file(config)) {
        const Json doc = read_json(config, "model config");
        const Json& id2label = doc["id2label"];
        std::vector<std::string> names(id2label.object.size());
        bool complete = true;
        for (const auto& [key, value] : id2label.object) {
            char* end = nullptr;
            const long index = std::strtol(key.c_str(), &end, 10);
            if (*end != '\0' || index < 0 || static_cast<std::size_t>(index) >= names.size()) { complete = false; break; }
            names[static_cast<std::size_t>(index)] = value.str();
        }
        if (complete) m.labels = names;
    }
    return model;
}

Tensors Model::infer(const Tensors& feeds) const {
    for (const TensorInfo& meta : impl_->inputs) {
        const auto it = feeds.find(meta.name);
        if (it == feeds.end()) throw Error(impl_->model_file + ": input " + meta.name + " is missing from the feed");
        const bool int_wanted = meta.dtype != DType::Float32, int_given = it->second.dtype != DType::Float32;
        if (int_wanted != int_given)
            throw Error(impl_->model_file + ": input " + meta.name + " must be " + dtype_name(meta.dtype) + ", not " +
                        dtype_name(it->second.dtype));
    }
    return impl_->backend->infer(feeds);
}

std::vector<float> Model::logits(const std::string& text) const {
    return impl_->row(impl_->backend->infer(impl_->text_feed(text)), "logits");
}

std::vector<float> Model::logits(const Image& image) const {
    if (!impl_->processor) throw Error(impl_->model_file + ": " + impl_->what() + ", not an image");
    Tensors feed;
    feed["pixel_values"] = impl_->processor->preprocess(image);
    return impl_->row(infer(feed), "logits");
}

std::vector<float> Model::logits(const Audio& audio) const {
    if (!impl_->audio) throw Error(impl_->model_file + ": " + impl_->what() + ", not audio");
    const AudioProcessor& p = *impl_->audio;
    if (impl_->inputs.size() != 1 || impl_->inputs.front().name != p.input)
        throw Error(impl_->model_file + ": the model wants inputs other than " + p.input +
                    ", which its feature extractor makes; is it an audio model?");
    Tensors feed;
    feed[p.input] = p.preprocess(audio);
    return impl_->row(infer(feed), "logits");
}

std::vector<Score> Model::classify(const std::string& text) const { return impl_->scores(logits(text)); }
std::vector<Score> Model::classify(const Image& image) const { return impl_->scores(logits(image)); }
std::vector<Score> Model::classify(const Audio& audio) const { return impl_->scores(logits(audio)); }

std::vector<float> Model::embed(const std::string& text) const {
    return impl_->row(impl_->backend->infer(impl_->text_feed(text)), "sentence_embedding");
}

const Tokenizer& Model::tokenizer() const {
    if (!impl_->tokenizer) throw Error(impl_->model_file + ": " + impl_->what() + "; it has no tokenizer");
    return *impl_->tokenizer;
}

const ImageProcessor& Model::image_processor() const {
    if (!impl_->processor) throw Error(impl_->model_file + ": " + impl_->what() + "; it has no image processor");
    return *impl_->processor;
}

const AudioProcessor& Model::audio_processor() const {
    if (!impl_->audio) throw Error(impl_->model_file + ": " + impl_->what() + "; it has no feature extractor");
    return *impl_->audio;
}

const std::vector<std::string>& Model::labels() const { return impl_->labels; }
const std::vector<TensorInfo>& Model::inputs() const { return impl_->inputs; }
std::string Model::backend() const { return impl_->backend->name(); }
std::string Model::model_file() const { return impl_->model_file; }

}  // namespace trt_edge
