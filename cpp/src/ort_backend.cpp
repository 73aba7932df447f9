// The ONNX Runtime backend, on ONNX Runtime's C API (the vendored headers in third_party/onnxruntime, the
// shared library from the onnxruntime wheel: cpp/fetch-onnxruntime.sh). The C API is used rather than the
// C++ wrapper so the library depends on one stable ABI: any libonnxruntime at least as new as the headers'
// ORT_API_VERSION runs it.
#include <onnxruntime_c_api.h>

#include <cstring>
#include <string>
#include <vector>

#include "trt_edge/trt_edge.hpp"

namespace trt_edge {

namespace {

const OrtApi& api() {
    static const OrtApi* instance = OrtGetApiBase()->GetApi(ORT_API_VERSION);
    if (instance == nullptr)
        throw Error(std::string("the ONNX Runtime library (") + OrtGetApiBase()->GetVersionString() +
                    ") is older than the headers libtrt_edge was built with (C API " + std::to_string(ORT_API_VERSION) +
                    "): install a newer libonnxruntime");
    return *instance;
}

void check(OrtStatus* status, const std::string& what) {
    if (status == nullptr) return;
    std::string message = api().GetErrorMessage(status);
    api().ReleaseStatus(status);
    for (char& c : message) if (c == '\n') c = ' ';
    throw Error(what + ": " + message);
}

DType dtype_of(ONNXTensorElementDataType t, const std::string& name) {
    switch (t) {
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return DType::Float32;
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return DType::Int64;
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return DType::Int32;
        default: throw Error("tensor " + name + " has an element type libtrt_edge does not handle (float32, int64, int32)");
    }
}

class OrtBackend final : public Backend {
public:
    OrtBackend(const std::string& path, int threads) : path_(path) {
        check(api().CreateEnv(ORT_LOGGING_LEVEL_ERROR, "trt_edge", &env_), "ONNX Runtime");
        check(api().CreateSessionOptions(&options_), "ONNX Runtime");
        if (threads > 0) check(api().SetIntraOpNumThreads(options_, threads), "ONNX Runtime");
        check(api().CreateSession(env_, path.c_str(), options_, &session_), path);
        check(api().GetAllocatorWithDefaultOptions(&allocator_), "ONNX Runtime");
        check(api().CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory_), "ONNX Runtime");
        std::size_t n = 0;
        check(api().SessionGetInputCount(session_, &n), path);
        for (std::size_t i = 0; i < n; ++i) inputs_.push_back(info(i, true));
        check(api().SessionGetOutputCount(session_, &n), path);
        for (std::size_t i = 0; i < n; ++i) outputs_.push_back(info(i, false));
    }
    ~OrtBackend() override {
        if (memory_ != nullptr) api().ReleaseMemoryInfo(memory_);
        if (session_ != nullptr) api().ReleaseSession(session_);
        if (options_ != nullptr) api().ReleaseSessionOptions(options_);
        if (env_ != nullptr) api().ReleaseEnv(env_);
    }
    OrtBackend(const OrtBackend&) = delete;
    OrtBackend& operator=(const OrtBackend&) = delete;

    std::string name() const override { return std::string("onnxruntime ") + OrtGetApiBase()->GetVersionString(); }
    std::vector<TensorInfo> inputs() const override { return inputs_; }
    std::vector<TensorInfo> outputs() const override { return outputs_; }

    Tensors infer(const Tensors& feeds) override {
        std::vector<OrtValue*> values;
        std::vector<const char*> in_names;
        // Owned buffers for the narrowed (int32) inputs; ONNX Runtime does not copy the data.
        std::vector<std::vector<int32_t>> narrowed;
        std::vector<std::vector<int64_t>> wide;
        std::vector<std::vector<float>> floats;
        narrowed.reserve(inputs_.size());
        wide.reserve(inputs_.size());
        floats.reserve(inputs_.size());
        auto release = [&values]() { for (OrtValue* v : values) api().ReleaseValue(v); };
        try {
            for (const TensorInfo& meta : inputs_) {
                const auto it = feeds.find(meta.name);
                if (it == feeds.end()) throw Error(path_ + ": input " + meta.name + " is missing from the feed");
                const Tensor& t = it->second;
                if (t.shape.size() != meta.shape.size())
                    throw Error(path_ + ": input " + meta.name + " has " + std::to_string(t.shape.size()) +
                                " axes, the model wants " + std::to_string(meta.shape.size()));
                void* data = nullptr;
                std::size_t bytes = 0;
                ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
                if (meta.dtype == DType::Float32) {
                    if (t.dtype != DType::Float32) throw Error(path_ + ": input " + meta.name + " must be float32");
                    floats.push_back(t.floats);
                    data = floats.back().data();
                    bytes = floats.back().size() * sizeof(float);
                } else {
                    if (t.dtype == DType::Float32) throw Error(path_ + ": input " + meta.name + " must be integer");
                    if (meta.dtype == DType::Int32) {
                        narrowed.emplace_back(t.ints.begin(), t.ints.end());
                        data = narrowed.back().data();
                        bytes = narrowed.back().size() * sizeof(int32_t);
                        type = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
                    } else {
                        wide.push_back(t.ints);
                        data = wide.back().data();
                        bytes = wide.back().size() * sizeof(int64_t);
                        type = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
                    }
                }
                if (t.size() * (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 ? 8 : 4) != bytes)
                    throw Error(path_ + ": input " + meta.name + " holds a different number of values than its shape");
                OrtValue* value = nullptr;
                check(api().CreateTensorWithDataAsOrtValue(memory_, data, bytes, t.shape.data(), t.shape.size(), type,
                                                           &value), path_ + ": input " + meta.name);
                values.push_back(value);
                in_names.push_back(meta.name.c_str());
            }
            std::vector<const char*> out_names;
            for (const TensorInfo& meta : outputs_) out_names.push_back(meta.name.c_str());
            std::vector<OrtValue*> outs(outputs_.size(), nullptr);
            check(api().Run(session_, nullptr, in_names.data(), values.data(), values.size(), out_names.data(),
                            out_names.size(), outs.data()), path_);
            Tensors result;
            for (std::size_t i = 0; i < outs.size(); ++i) {
                values.push_back(outs[i]);  // released below with the inputs
                result[outputs_[i].name] = to_tensor(outs[i], outputs_[i].name);
            }
            release();
            return result;
        } catch (...) {
            release();
            throw;
        }
    }

private:
    TensorInfo info(std::size_t i, bool input) {
        char* raw = nullptr;
        check(input ? api().SessionGetInputName(session_, i, allocator_, &raw)
                    : api().SessionGetOutputName(session_, i, allocator_, &raw), path_);
        TensorInfo meta;
        meta.name = raw;
        check(api().AllocatorFree(allocator_, raw), path_);
        OrtTypeInfo* type = nullptr;
        check(input ? api().SessionGetInputTypeInfo(session_, i, &type) : api().SessionGetOutputTypeInfo(session_, i, &type),
              path_);
        const OrtTensorTypeAndShapeInfo* tensor = nullptr;
        try {
            check(api().CastTypeInfoToTensorInfo(type, &tensor), path_);
            if (tensor == nullptr) throw Error(path_ + ": " + meta.name + " is not a tensor");
            ONNXTensorElementDataType element = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
            check(api().GetTensorElementType(tensor, &element), path_);
            meta.dtype = dtype_of(element, meta.name);
            std::size_t rank = 0;
            check(api().GetDimensionsCount(tensor, &rank), path_);
            meta.shape.resize(rank);
            check(api().GetDimensions(tensor, meta.shape.data(), rank), path_);
        } catch (...) {
            api().ReleaseTypeInfo(type);
            throw;
        }
        api().ReleaseTypeInfo(type);
        return meta;
    }

    Tensor to_tensor(OrtValue* value, const std::string& name) {
        OrtTensorTypeAndShapeInfo* shape = nullptr;
        check(api().GetTensorTypeAndShape(value, &shape), path_);
        Tensor t;
        std::size_t rank = 0, count = 0;
        ONNXTensorElementDataType element = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
        OrtStatus* status = api().GetDimensionsCount(shape, &rank);
        if (status == nullptr) { t.shape.resize(rank); status = api().GetDimensions(shape, t.shape.data(), rank); }
        if (status == nullptr) status = api().GetTensorShapeElementCount(shape, &count);
        if (status == nullptr) status = api().GetTensorElementType(shape, &element);
        api().ReleaseTensorTypeAndShapeInfo(shape);
        check(status, path_);
        t.dtype = dtype_of(element, name);
        void* data = nullptr;
        check(api().GetTensorMutableData(value, &data), path_);
        if (t.dtype == DType::Float32) {
            t.floats.assign(static_cast<float*>(data), static_cast<float*>(data) + count);
        } else if (t.dtype == DType::Int64) {
            t.ints.assign(static_cast<int64_t*>(data), static_cast<int64_t*>(data) + count);
        } else {
            t.ints.assign(static_cast<int32_t*>(data), static_cast<int32_t*>(data) + count);
        }
        return t;
    }

    std::string path_;
    OrtEnv* env_ = nullptr;
    OrtSessionOptions* options_ = nullptr;
    OrtSession* session_ = nullptr;
    OrtAllocator* allocator_ = nullptr;
    OrtMemoryInfo* memory_ = nullptr;
    std::vector<TensorInfo> inputs_, outputs_;
};

}  // namespace

std::unique_ptr<Backend> make_onnxruntime_backend(const std::string& onnx_path, int threads) {
    return std::make_unique<OrtBackend>(onnx_path, threads);
}

std::string onnxruntime_version() { return OrtGetApiBase()->GetVersionString(); }

}  // namespace trt_edge
