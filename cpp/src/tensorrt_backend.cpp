// The TensorRT backend (the device): checks the plan's manifest (model.plan.json: TensorRT version, GPU,
// host code, the sha256 of the plan and of every plugin library), loads the plugin libraries it names,
// deserializes the plan and runs it by tensor name (setInputShape, setTensorAddress, enqueueV3: the API of
// TensorRT 8.5 through 11). CI compiles this file against the public 10.3, 10.13 and 11.1 headers
// (.ci/cxx-check); it has never run: no GPU or TensorRT on the build machines.
#include <NvInfer.h>
#include <NvInferVersion.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cstdint>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "../include/trt_edge/trt_edge.hpp"
#include "manifest.hpp"

namespace trt_edge {

namespace {

class Logger : public nvinfer1::ILogger {
public:
    void log(Severity severity, const char* msg) noexcept override {
        if (severity <= Severity::kWARNING) std::cerr << "[TensorRT] " << msg << "\n";
    }
};

void check_cuda(cudaError_t err, const char* what) {
    if (err != cudaSuccess) throw Error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(err));
}

std::string trt_version() {
    const int v = getInferLibVersion();
    // TensorRT 10+: major*10000 + minor*100 + patch; 8.x: major*1000 + minor*100 + patch.
    const int major = v >= 10000 ? v / 10000 : v / 1000;
    const int minor = v >= 10000 ? (v / 100) % 100 : (v / 100) % 10;
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(v % 100);
}

float half_to_float(uint16_t h) {
    const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal
            int e = -1;
            uint32_t m = mant;
            do { ++e; m <<= 1; } while ((m & 0x400u) == 0);
            bits = sign | ((127 - 15 - e) << 23) | ((m & 0x3FFu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

DType dtype_of(nvinfer1::DataType t, const std::string& name) {
    switch (t) {
        case nvinfer1::DataType::kFLOAT: case nvinfer1::DataType::kHALF: return DType::Float32;  // half: converted
        case nvinfer1::DataType::kINT32: return DType::Int32;
#if NV_TENSORRT_MAJOR >= 10
        case nvinfer1::DataType::kINT64: return DType::Int64;
#endif
        default: throw Error("tensor " + name + " has a TensorRT type libtrt_edge does not handle");
    }
}

struct DeviceBuffer {
    void* ptr = nullptr;
    DeviceBuffer() = default;
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    ~DeviceBuffer() { if (ptr != nullptr) cudaFree(ptr); }
};

class TensorRtBackend final : public Backend {
public:
    TensorRtBackend(const std::string& plan_path, bool allow_host_code) : path_(plan_path) {
        RuntimeFacts facts;
        facts.allow_host_code = allow_host_code;
        facts.tensorrt = trt_version();
        cudaDeviceProp prop{};
        check_cuda(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
        facts.compute_capability = std::to_string(prop.major) + "." + std::to_string(prop.minor);
        std::vector<std::string> plugins;
        Json manifest;
        try {
            manifest = parse_json(read_file(plan_path + ".json"));
        } catch (const std::exception& e) {
            throw Error(plan_path + ".json: " + e.what() + " (the manifest must lie next to the plan)");
        }
        const std::vector<std::string> problems = check_manifest(manifest, plan_path, facts, &plugins);
        if (!problems.empty()) {
            std::string all;
            for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
            throw Error(plan_path + ": refused: " + all);
        }
        for (const auto& lib : plugins) {  // plugin creators register themselves when the library loads
            if (dlopen(lib.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr)
                throw Error("cannot load plugin library " + lib + ": " + dlerror());
        }
        runtime_.reset(nvinfer1::createInferRuntime(logger_));
        if (!runtime_) throw Error("TensorRT: createInferRuntime failed");
#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6)
        runtime_->setEngineHostCodeAllowed(allow_host_code);  // 8.5 plans never embed host code
#endif
        const std::string blob = read_file(plan_path);
        engine_.reset(runtime_->deserializeCudaEngine(blob.data(), blob.size()));
        if (!engine_) throw Error(plan_path + ": TensorRT could not deserialize the plan");
        context_.reset(engine_->createExecutionContext());
        if (!context_) throw Error(plan_path + ": TensorRT could not create an execution context");
        for (int32_t i = 0; i < engine_->getNbIOTensors(); ++i) {
            const char* name = engine_->getIOTensorName(i);
            TensorInfo meta;
            meta.name = name;
            meta.dtype = dtype_of(engine_->getTensorDataType(name), name);
            const nvinfer1::Dims dims = engine_->getTensorShape(name);
            meta.shape.assign(dims.d, dims.d + dims.nbDims);
            (engine_->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT ? inputs_ : outputs_).push_back(meta);
        }
    }

    std::string name() const override { return "tensorrt " + trt_version(); }
    std::vector<TensorInfo> inputs() const override { return inputs_; }
    std::vector<TensorInfo> outputs() const override { return outputs_; }

    Tensors infer(const Tensors& feeds) override {
        std::vector<DeviceBuffer> buffers(inputs_.size() + outputs_.size());
        std::size_t next = 0;
        for (const TensorInfo& meta : inputs_) {
            const auto it = feeds.find(meta.name);
            if (it == feeds.end()) throw Error(path_ + ": input " + meta.name + " is missing from the feed");
            const Tensor& t = it->second;
            nvinfer1::Dims dims{};
            dims.nbDims = static_cast<int32_t>(t.shape.size());
            for (std::size_t k = 0; k < t.shape.size(); ++k) dims.d[k] = t.shape[k];
            if (!context_->setInputShape(meta.name.c_str(), dims))
                throw Error(path_ + ": input " + meta.name + "'s shape is outside the engine's optimization profile");
            const nvinfer1::DataType type = engine_->getTensorDataType(meta.name.c_str());
            std::vector<int32_t> narrow;
            const void* host = nullptr;
            std::size_t bytes = 0;
            if (type == nvinfer1::DataType::kINT32) {
                narrow.assign(t.ints.begin(), t.ints.end());
                host = narrow.data();
                bytes = narrow.size() * sizeof(int32_t);
            } else if (type == nvinfer1::DataType::kFLOAT) {
                host = t.floats.data();
                bytes = t.floats.size() * sizeof(float);
            } else {
                host = t.ints.data();
                bytes = t.ints.size() * sizeof(int64_t);
            }
            DeviceBuffer& buf = buffers[next++];
            check_cuda(cudaMalloc(&buf.ptr, bytes), "cudaMalloc");
            check_cuda(cudaMemcpy(buf.ptr, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
            context_->setTensorAddress(meta.name.c_str(), buf.ptr);
        }
        std::vector<std::size_t> counts;
        for (const TensorInfo& meta : outputs_) {
            const nvinfer1::Dims dims = context_->getTensorShape(meta.name.c_str());
            std::size_t count = 1;
            for (int32_t k = 0; k < dims.nbDims; ++k) count *= static_cast<std::size_t>(dims.d[k] < 0 ? 0 : dims.d[k]);
            counts.push_back(count);
            const nvinfer1::DataType type = engine_->getTensorDataType(meta.name.c_str());
            const std::size_t elem = type == nvinfer1::DataType::kHALF ? 2 : type == nvinfer1::DataType::kINT32 ||
                                                                                type == nvinfer1::DataType::kFLOAT ? 4 : 8;
            DeviceBuffer& buf = buffers[next++];
            check_cuda(cudaMalloc(&buf.ptr, count * elem), "cudaMalloc");
            context_->setTensorAddress(meta.name.c_str(), buf.ptr);
        }
        cudaStream_t stream = nullptr;
        check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");
        const bool ok = context_->enqueueV3(stream);
        const cudaError_t synced = cudaStreamSynchronize(stream);
        cudaStreamDestroy(stream);
        if (!ok) throw Error(path_ + ": enqueueV3 failed");
        check_cuda(synced, "cudaStreamSynchronize");
        Tensors result;
        for (std::size_t i = 0; i < outputs_.size(); ++i) {
            const TensorInfo& meta = outputs_[i];
            const nvinfer1::Dims dims = context_->getTensorShape(meta.name.c_str());
            Tensor t;
            t.shape.assign(dims.d, dims.d + dims.nbDims);
            t.dtype = meta.dtype;
            const void* device = buffers[inputs_.size() + i].ptr;
            const nvinfer1::DataType type = engine_->getTensorDataType(meta.name.c_str());
            if (type == nvinfer1::DataType::kHALF) {
                std::vector<uint16_t> raw(counts[i]);
                check_cuda(cudaMemcpy(raw.data(), device, raw.size() * 2, cudaMemcpyDeviceToHost), "cudaMemcpy");
                for (const uint16_t h : raw) t.floats.push_back(half_to_float(h));
            } else if (type == nvinfer1::DataType::kFLOAT) {
                t.floats.resize(counts[i]);
                check_cuda(cudaMemcpy(t.floats.data(), device, counts[i] * 4, cudaMemcpyDeviceToHost), "cudaMemcpy");
            } else if (type == nvinfer1::DataType::kINT32) {
                std::vector<int32_t> raw(counts[i]);
                check_cuda(cudaMemcpy(raw.data(), device, counts[i] * 4, cudaMemcpyDeviceToHost), "cudaMemcpy");
                t.ints.assign(raw.begin(), raw.end());
            } else {
                t.ints.resize(counts[i]);
                check_cuda(cudaMemcpy(t.ints.data(), device, counts[i] * 8, cudaMemcpyDeviceToHost), "cudaMemcpy");
            }
            result[meta.name] = std::move(t);
        }
        return result;
    }

private:
    std::string path_;
    Logger logger_;
    std::unique_ptr<nvinfer1::IRuntime> runtime_;
    std::unique_ptr<nvinfer1::ICudaEngine> engine_;
    std::unique_ptr<nvinfer1::IExecutionContext> context_;
    std::vector<TensorInfo> inputs_, outputs_;
};

}  // namespace

std::unique_ptr<Backend> make_tensorrt_backend(const std::string& plan_path, bool allow_host_code) {
    return std::make_unique<TensorRtBackend>(plan_path, allow_host_code);
}

}  // namespace trt_edge
