// libtrt_edge: run a trt-edge model (an on-device bundle, a built plan folder, or a stage folder with an ONNX
// file such as calibrate's CPU artifact) from a C++ application, with the preprocessing that travels with
// the model: the tokenizer read from tokenizer.json, the image processor or the audio feature extractor from
// preprocessor_config.json, and the labels from config.json. Two backends behind one interface: ONNX Runtime's C API (CPU; built and run
// in CI) and TensorRT (the device; compiled against the public headers in CI, never run there).
//
//   auto model = trt_edge::Model::load("bundle/");           // checks SHA256SUMS, picks the backend
//   for (const auto& s : model.classify("what a great day")) std::cout << s.label << " " << s.score << "\n";
//
// Every failure is a trt_edge::Error whose what() is one line naming the file and the problem.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace trt_edge {

// One-line, user-facing failure: a bad folder, a checksum mismatch, an input the model cannot take.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

enum class DType { Float32, Int64, Int32 };

// A dense row-major host tensor. Integer tensors keep their values in `ints` (int32 inputs are narrowed by
// the backend), float tensors in `floats`.
struct Tensor {
    DType dtype = DType::Float32;
    std::vector<int64_t> shape;
    std::vector<float> floats;
    std::vector<int64_t> ints;
    std::size_t size() const;
};
using Tensors = std::map<std::string, Tensor>;

// What a model input or output is declared as (-1 for a dynamic axis).
struct TensorInfo {
    std::string name;
    DType dtype = DType::Float32;
    std::vector<int64_t> shape;
};

// A tokenized text, as the model's inputs take it (no padding: one text, its own length).
struct Encoding {
    std::vector<int64_t> input_ids;
    std::vector<int64_t> attention_mask;
    std::vector<int64_t> token_type_ids;
    std::vector<std::string> tokens;
};

// A text tokenizer read from a Hugging Face tokenizer.json (WordPiece, the BERT family, is what is built).
class Tokenizer {
public:
    virtual ~Tokenizer() = default;
    // Tokens, ids, mask and token types of `text`, truncated to `max_length` tokens including the specials.
    virtual Encoding encode(const std::string& text, std::size_t max_length) const = 0;
    // Reads `path` (tokenizer.json); refuses a model type or a normaliser this library does not implement.
    static std::unique_ptr<Tokenizer> from_file(const std::string& path);
};

// A decoded 8-bit image, interleaved channels (1 = grey, 3 = RGB, 4 = RGBA), rows top to bottom.
struct Image {
    int width = 0;
    int height = 0;
    int channels = 0;
    std::vector<uint8_t> pixels;
    // Decodes a PNG or JPEG file (by its signature, not its name).
    static Image decode_file(const std::string& path);
};

// The image processor of preprocessor_config.json: resize, rescale, normalise, as the model takes it.
class ImageProcessor {
public:
    static ImageProcessor from_file(const std::string& path);
    // pixel_values [1, 3, height, width], float32.
    Tensor preprocess(const Image& image) const;
    int width = 224;
    int height = 224;
    bool do_resize = true;
    bool do_rescale = true;
    bool do_normalize = true;
    int resample = 2;  // PIL's numbering: 2 bilinear, 3 bicubic
    double rescale_factor = 1.0 / 255.0;
    std::vector<double> mean{0.5, 0.5, 0.5};
    std::vector<double> std{0.5, 0.5, 0.5};
    bool convert_rgb = true;
};

// Decoded audio: mono float samples at `rate` Hz, as soundfile gives them to the Python runtime (PCM scaled to
// [-1, 1), a multi-channel file averaged to mono; `channels` is the file's count before the downmix).
struct Audio {
    int rate = 0;
    int channels = 1;
    std::vector<float> samples;
    std::string source;  // the file it was decoded from (named in errors about it)
    double seconds() const;
    // Decodes a WAV file: PCM 8/16/24/32-bit or float 32/64, any channel count (WAVE_FORMAT_EXTENSIBLE too);
    // FLAC/OGG and a WAV cut short are refused in one line.
    static Audio decode_file(const std::string& path);
};

// scipy.signal.resample_poly(x, up, down) with its default Kaiser (beta 5) filter, as float32.
std::vector<float> resample_poly(const std::vector<float>& x, int up, int down);

// The feature extractor of preprocessor_config.json: resample to its sampling_rate, fix the length, featurise.
class AudioProcessor {
public:
    // Waveform: Wav2Vec2FeatureExtractor (wav2vec2, HuBERT); Whisper: WhisperFeatureExtractor's log-mel;
    // Kaldi: ASTFeatureExtractor's fbank.
    enum class Kind { Waveform, Whisper, Kaldi };
    static AudioProcessor from_file(const std::string& path);
    // The model input: waveform [1, samples] / AST [1, frames, mel] (input_values), Whisper [1, mel, frames]
    // (input_features).
    Tensor preprocess(const Audio& audio) const;
    // The mono samples the extractor featurises: resampled to sampling_rate (duration kept), a waveform model's
    // clip centre-cropped or zero-padded to clip_samples.
    std::vector<float> prepare(const Audio& audio) const;
    double frame_seconds() const;  // clips shorter than one analysis window are refused
    Kind kind = Kind::Waveform;
    std::string input = "input_values";
    int sampling_rate = 16000;
    bool do_normalize = true;
    double clip_seconds = 1.0;  // the audio one model input holds
    int clip_samples = 16000;   // waveform: the clip; Whisper: the chunk (n_samples)
    int n_fft = 400, hop_length = 160, num_mel_bins = 0, max_length = 0;
    double mean = 0.0, std = 1.0;  // AST's normalisation
    std::vector<std::vector<double>> mel_filters;  // [frequency bin][mel]
};

struct Score {
    std::string label;
    int index = 0;
    float score = 0.0f;  // softmax probability
};

struct LoadOptions {
    std::string backend = "auto";  // "auto" (TensorRT when the folder has a plan and the library has it, else
                                   // ONNX Runtime), "onnxruntime" or "tensorrt"
    std::size_t max_length = 128;  // tokens, as `trt-edge run` truncates
    int threads = 0;               // ONNX Runtime intra-op threads; 0 = its default
    bool verify = true;            // check SHA256SUMS when the folder has one
};

// The backend interface: one model file, named tensors in, named tensors out.
class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    virtual std::vector<TensorInfo> inputs() const = 0;
    virtual std::vector<TensorInfo> outputs() const = 0;
    virtual Tensors infer(const Tensors& feeds) = 0;
};

std::unique_ptr<Backend> make_onnxruntime_backend(const std::string& onnx_path, int threads);
// Throws trt_edge::Error when the library was built without TensorRT.
std::unique_ptr<Backend> make_tensorrt_backend(const std::string& plan_path, bool allow_host_code);
bool has_tensorrt_backend();

class Model {
public:
    // Loads a model folder: verifies SHA256SUMS (when present), reads manifest.json (when present), finds the
    // model file (model.plan for TensorRT; model.cpu.onnx, else model.onnx for ONNX Runtime), the
    // preprocessor folder (preprocessor/, tokenizer/ or the folder itself) and the label names.
    static Model load(const std::string& folder, const LoadOptions& options = {});
    Model(Model&&) noexcept;
    Model& operator=(Model&&) noexcept;
    ~Model();

    Tensors infer(const Tensors& feeds) const;          // the raw model
    std::vector<Score> classify(const std::string& text) const;  // best first
    std::vector<Score> classify(const Image& image) const;       // best first
    std::vector<Score> classify(const Audio& audio) const;       // best first
    std::vector<float> logits(const std::string& text) const;
    std::vector<float> logits(const Image& image) const;
    std::vector<float> logits(const Audio& audio) const;
    std::vector<float> embed(const std::string& text) const;     // the graph's pooled (and normalised) vector

    const Tokenizer& tokenizer() const;                 // throws Error for an image model
    const ImageProcessor& image_processor() const;      // throws Error for a text or audio model
    const AudioProcessor& audio_processor() const;      // throws Error for a text or image model
    const std::vector<std::string>& labels() const;
    const std::vector<TensorInfo>& inputs() const;
    std::string backend() const;
    std::string model_file() const;

private:
    Model();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Softmax probabilities of one logit row (max-shifted, as the Python runtime computes them).
std::vector<float> softmax(const std::vector<float>& logits);

// The library's version ("0.1.0") and the ONNX Runtime version it runs on ("" without that backend).
std::string version();
std::string onnxruntime_version();

}  // namespace trt_edge
