// trt_edge_classify: check a plan's manifest, load its plugin libraries, deserialize it and classify one
// tokenized input. Token ids come from the command line (tokenize in Python or with your app's tokenizer):
//   trt_edge_classify model.plan --ids 101,2307,2265,999,102 [--allow-host-code]
// Written against the name-based API of TensorRT 8.5 through 11 (setInputShape, setTensorAddress, enqueueV3),
// so it runs a plan with either fused-attention plugin generation: the plugin library it loads (named in the
// manifest) registers the IPluginV2DynamicExt on 8.5/8.6 and the IPluginV3 on 10+. CI compiles it against
// the 10.3, 10.13 and 11.1 headers (.ci/cxx-check); docs/plugins.md records the 8.5.3/8.6.1 compile.
#include <NvInfer.h>
#include <NvInferVersion.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cstdint>
#include <cstring>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "../../cpp/src/manifest.hpp"

namespace {

class Logger : public nvinfer1::ILogger {
public:
    void log(Severity severity, const char* msg) noexcept override {
        if (severity <= Severity::kWARNING) std::cerr << "[TensorRT] " << msg << "\n";
    }
};

#define CHECK_CUDA(call)                                                                        \
    do {                                                                                        \
        cudaError_t err_ = (call);                                                              \
        if (err_ != cudaSuccess) {                                                              \
            std::cerr << "CUDA error " << cudaGetErrorString(err_) << " at " #call "\n";        \
            return 1;                                                                           \
        }                                                                                       \
    } while (0)

std::string trt_version() {
    const int v = getInferLibVersion();
    // TensorRT 10+: major*10000 + minor*100 + patch; 8.x: major*1000 + minor*100 + patch.
    const int major = v >= 10000 ? v / 10000 : v / 1000;
    const int minor = v >= 10000 ? (v / 100) % 100 : (v / 100) % 10;
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(v % 100);
}

std::vector<int64_t> parse_ids(const std::string& text) {
    std::vector<int64_t> ids;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) ids.push_back(std::stoll(item));
    return ids;
}

float half_to_float(uint16_t h) {
    const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) { bits = sign; }
        else {  // subnormal
            int e = -1; uint32_t m = mant;
            do { ++e; m <<= 1; } while ((m & 0x400u) == 0);
            bits = sign | ((127 - 15 - e) << 23) | ((m & 0x3FFu) << 13);
        }
    } else if (exp == 31) { bits = sign | 0x7F800000u | (mant << 13); }
    else { bits = sign | ((exp + 127 - 15) << 23) | (mant << 13); }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4 || std::string(argv[2]) != "--ids") {
        std::cerr << "usage: " << argv[0] << " PLAN --ids 101,2307,...,102 [--allow-host-code]\n";
        return 2;
    }
    const std::string plan_path = argv[1];
    const std::vector<int64_t> ids = parse_ids(argv[3]);
    trt_edge::RuntimeFacts facts;
    facts.allow_host_code = argc > 4 && std::string(argv[4]) == "--allow-host-code";
    facts.tensorrt = trt_version();
    cudaDeviceProp prop{};
    CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
    facts.compute_capability = std::to_string(prop.major) + "." + std::to_string(prop.minor);

    std::vector<std::string> plugins;
    try {
        const auto manifest = trt_edge::parse_json(trt_edge::read_file(plan_path + ".json"));
        const auto problems = trt_edge::check_manifest(manifest, plan_path, facts, &plugins);
        for (const auto& p : problems) std::cerr << "refused: " << p << "\n";
        if (!problems.empty()) return 2;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << " (is " << plan_path << ".json next to the plan?)\n";
        return 2;
    }
    for (const auto& lib : plugins) {  // plugin creators register themselves when the library loads
        if (dlopen(lib.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
            std::cerr << "error: cannot load plugin library " << lib << ": " << dlerror() << "\n";
            return 2;
        }
    }

    Logger logger;
    std::unique_ptr<nvinfer1::IRuntime> runtime(nvinfer1::createInferRuntime(logger));
#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6)
    runtime->setEngineHostCodeAllowed(facts.allow_host_code);  // 8.5 plans never embed host code
#endif
    const std::string blob = trt_edge::read_file(plan_path);
    std::unique_ptr<nvinfer1::ICudaEngine> engine(runtime->deserializeCudaEngine(blob.data(), blob.size()));
    if (!engine) { std::cerr << "error: TensorRT could not deserialize " << plan_path << "\n"; return 2; }
    std::unique_ptr<nvinfer1::IExecutionContext> context(engine->createExecutionContext());

    const int64_t seq = static_cast<int64_t>(ids.size());
    std::vector<void*> buffers;
    std::string output_name;
    nvinfer1::DataType output_type = nvinfer1::DataType::kFLOAT;
    for (int32_t i = 0; i < engine->getNbIOTensors(); ++i) {
        const char* name = engine->getIOTensorName(i);
        if (engine->getTensorIOMode(name) != nvinfer1::TensorIOMode::kINPUT) { output_name = name; continue; }
        const nvinfer1::DataType dtype = engine->getTensorDataType(name);
        std::vector<int64_t> values(ids.size(), 0);
        if (std::string(name) == "input_ids") values = ids;
        if (std::string(name) == "attention_mask") values.assign(ids.size(), 1);
        nvinfer1::Dims dims{};
        dims.nbDims = 2; dims.d[0] = 1; dims.d[1] = seq;
        if (!context->setInputShape(name, dims)) { std::cerr << "error: shape outside the engine's profile\n"; return 2; }
        void* device = nullptr;
        if (dtype == nvinfer1::DataType::kINT32) {
            std::vector<int32_t> v32(values.begin(), values.end());
            CHECK_CUDA(cudaMalloc(&device, v32.size() * sizeof(int32_t)));
            CHECK_CUDA(cudaMemcpy(device, v32.data(), v32.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
        } else {
            CHECK_CUDA(cudaMalloc(&device, values.size() * sizeof(int64_t)));
            CHECK_CUDA(cudaMemcpy(device, values.data(), values.size() * sizeof(int64_t), cudaMemcpyHostToDevice));
        }
        context->setTensorAddress(name, device);
        buffers.push_back(device);
    }
    const nvinfer1::Dims out_dims = context->getTensorShape(output_name.c_str());
    output_type = engine->getTensorDataType(output_name.c_str());
    const int64_t classes = out_dims.d[out_dims.nbDims - 1];
    const std::size_t elem = output_type == nvinfer1::DataType::kHALF ? 2 : 4;
    void* out_device = nullptr;
    CHECK_CUDA(cudaMalloc(&out_device, static_cast<std::size_t>(classes) * elem));
    context->setTensorAddress(output_name.c_str(), out_device);
    buffers.push_back(out_device);

    cudaStream_t stream;
    CHECK_CUDA(cudaStreamCreate(&stream));
    if (!context->enqueueV3(stream)) { std::cerr << "error: enqueueV3 failed\n"; return 1; }
    CHECK_CUDA(cudaStreamSynchronize(stream));
    std::vector<float> logits(static_cast<std::size_t>(classes));
    if (elem == 2) {
        std::vector<uint16_t> raw(logits.size());
        CHECK_CUDA(cudaMemcpy(raw.data(), out_device, raw.size() * 2, cudaMemcpyDeviceToHost));
        for (std::size_t i = 0; i < raw.size(); ++i) logits[i] = half_to_float(raw[i]);
    } else {
        CHECK_CUDA(cudaMemcpy(logits.data(), out_device, logits.size() * 4, cudaMemcpyDeviceToHost));
    }
    std::size_t best = 0;
    for (std::size_t i = 0; i < logits.size(); ++i) {
        std::cout << (i ? " " : "logits: ") << logits[i];
        if (logits[i] > logits[best]) best = i;
    }
    std::cout << "\nclass: " << best << "\n";
    cudaStreamDestroy(stream);
    for (void* p : buffers) cudaFree(p);
    return 0;
}
