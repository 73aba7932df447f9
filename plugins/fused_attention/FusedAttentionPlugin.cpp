/*
 * trt-edge fused attention TensorRT plugin (IPluginV3): shapes, formats, attributes, enqueue, registration.
 *
 * Written against NvInferRuntime.h of TensorRT 10.3 (JetPack 6) and later; compiled on the device. The
 * kernel itself lives behind the C ABI in fused_attention.h, so the plugin holds no CUDA code.
 */
#include "FusedAttentionPlugin.h"

#include "fused_attention.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <sstream>

using nvinfer1::DataType;
using nvinfer1::DimsExprs;
using nvinfer1::DynamicPluginTensorDesc;
using nvinfer1::IExprBuilder;
using nvinfer1::IPluginCapability;
using nvinfer1::IPluginResourceContext;
using nvinfer1::IPluginV3;
using nvinfer1::PluginCapabilityType;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginFieldType;
using nvinfer1::PluginTensorDesc;
using nvinfer1::TensorFormat;
using nvinfer1::TensorRTPhase;

namespace trt_edge {
namespace plugin {
namespace {

constexpr int32_t kNbInputs = 4;
constexpr int32_t kNbOutputs = 1;
constexpr int32_t kMaskIndex = 3;

// The logger TensorRT hands over through setLoggerFinder (library loaded by IPluginRegistry::loadLibrary or
// trtexec --dynamicPlugins); without one (library loaded with dlopen/ctypes), messages go to stderr.
class LoggerFinderHolder {
public:
    void set(nvinfer1::ILoggerFinder* finder) {
        std::lock_guard<std::mutex> lock(mMutex);
        if (mFinder == nullptr && finder != nullptr) mFinder = finder;
    }
    nvinfer1::ILogger* get() {
        std::lock_guard<std::mutex> lock(mMutex);
        return mFinder == nullptr ? nullptr : mFinder->findLogger();
    }

private:
    nvinfer1::ILoggerFinder* mFinder{nullptr};
    std::mutex mMutex;
};

LoggerFinderHolder& loggerFinder() {
    static LoggerFinderHolder holder;
    return holder;
}

void logError(std::string const& message) noexcept {
    try {
        std::string const text = std::string(kFusedAttentionName) + ": " + message;
        nvinfer1::ILogger* logger = loggerFinder().get();
        if (logger != nullptr) {
            logger->log(nvinfer1::ILogger::Severity::kERROR, text.c_str());
        } else {
            std::fprintf(stderr, "[E] %s\n", text.c_str());
        }
    } catch (...) {
        // Logging must never throw across the TensorRT ABI.
    }
}

// The ONNX parser turns ONNX INT attributes into kINT32 fields and FLOAT into kFLOAT32; plans written by
// this plugin use the same types. Narrower integer and wider float types are accepted as well.
bool readInt(PluginField const& field, int32_t& value) {
    if (field.data == nullptr || field.length < 1) return false;
    switch (field.type) {
        case PluginFieldType::kINT8:
            value = *static_cast<int8_t const*>(field.data);
            return true;
        case PluginFieldType::kINT16:
            value = *static_cast<int16_t const*>(field.data);
            return true;
        case PluginFieldType::kINT32:
            value = *static_cast<int32_t const*>(field.data);
            return true;
        default:
            return false;
    }
}

bool readFloat(PluginField const& field, float& value) {
    if (field.data == nullptr || field.length < 1) return false;
    switch (field.type) {
        case PluginFieldType::kFLOAT32:
            value = *static_cast<float const*>(field.data);
            return true;
        case PluginFieldType::kFLOAT64:
            value = static_cast<float>(*static_cast<double const*>(field.data));
            return true;
        default:
            return false;
    }
}

bool validParams(FusedAttentionParams const& p, std::string& why) {
    if (trt_edge_attention_supports_head_size(p.headSize) == 0) {
        why = "head_size " + std::to_string(p.headSize) + " is not supported (32, 64 or 128)";
        return false;
    }
    if (p.numHeads < 1) {
        why = "num_heads must be >= 1, got " + std::to_string(p.numHeads);
        return false;
    }
    if (!(p.scale > 0.0F)) {
        why = "scale must be > 0";
        return false;
    }
    if (p.causal != 0 && p.causal != 1) {
        why = "causal must be 0 or 1";
        return false;
    }
    return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// FusedAttentionPlugin

FusedAttentionPlugin::FusedAttentionPlugin(FusedAttentionParams const& params) : mParams(params) {
    std::ostringstream meta;
    meta << "num_heads=" << mParams.numHeads << " head_size=" << mParams.headSize << " scale=" << mParams.scale
         << " causal=" << mParams.causal;
    mMetadata = meta.str();
    initFieldsToSerialize();
}

FusedAttentionPlugin::FusedAttentionPlugin(FusedAttentionPlugin const& other)
    : IPluginV3(other),
      IPluginV3OneCore(other),
      IPluginV3OneBuild(other),
      IPluginV3OneRuntime(other),
      mParams(other.mParams),
      mMetadata(other.mMetadata) {
    initFieldsToSerialize();  // the copied PluginFields would point into `other`
}

void FusedAttentionPlugin::initFieldsToSerialize() {
    mDataToSerialize.clear();
    mDataToSerialize.emplace_back("num_heads", &mParams.numHeads, PluginFieldType::kINT32, 1);
    mDataToSerialize.emplace_back("head_size", &mParams.headSize, PluginFieldType::kINT32, 1);
    mDataToSerialize.emplace_back("scale", &mParams.scale, PluginFieldType::kFLOAT32, 1);
    mDataToSerialize.emplace_back("causal", &mParams.causal, PluginFieldType::kINT32, 1);
    mFCToSerialize.nbFields = static_cast<int32_t>(mDataToSerialize.size());
    mFCToSerialize.fields = mDataToSerialize.data();
}

IPluginCapability* FusedAttentionPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept {
    switch (type) {
        case PluginCapabilityType::kBUILD:
            return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
        case PluginCapabilityType::kRUNTIME:
            return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        case PluginCapabilityType::kCORE:
            return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    }
    return nullptr;
}

IPluginV3* FusedAttentionPlugin::clone() noexcept {
    try {
        return new FusedAttentionPlugin(*this);
    } catch (std::exception const& e) {
        logError(std::string("clone failed: ") + e.what());
    }
    return nullptr;
}

char const* FusedAttentionPlugin::getPluginName() const noexcept { return kFusedAttentionName; }

char const* FusedAttentionPlugin::getPluginVersion() const noexcept { return kFusedAttentionVersion; }

char const* FusedAttentionPlugin::getPluginNamespace() const noexcept { return kFusedAttentionNamespace; }

int32_t FusedAttentionPlugin::getNbOutputs() const noexcept { return kNbOutputs; }

int32_t FusedAttentionPlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                              DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept {
    if (in == nullptr || out == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs) {
        logError("expects 4 inputs (q, k, v, mask) and 1 output");
        return -1;
    }
    for (int32_t i = 0; i < 3; ++i) {
        if (in[i].desc.dims.nbDims != 3) {
            logError("q, k and v must be rank 3 [batch, seq, num_heads * head_size]");
            return -1;
        }
    }
    if (in[kMaskIndex].desc.dims.nbDims != 2) {
        logError("the mask must be rank 2 [batch, seq]");
        return -1;
    }
    int64_t const hidden = in[0].desc.dims.d[2];
    if (hidden >= 0 && hidden != static_cast<int64_t>(mParams.numHeads) * mParams.headSize) {
        logError("hidden size " + std::to_string(hidden) + " != num_heads * head_size (" + mMetadata + ")");
        return -1;
    }
    int64_t const maxSeq = in[0].max.d[1];
    if (maxSeq > trt_edge_attention_max_seq_len()) {
        logError("profile max sequence " + std::to_string(maxSeq) + " exceeds the kernel limit " +
                 std::to_string(trt_edge_attention_max_seq_len()));
        return -1;
    }
    return 0;
}

bool FusedAttentionPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut,
                                                     int32_t nbInputs, int32_t nbOutputs) noexcept {
    if (inOut == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs || pos < 0 ||
        pos >= kNbInputs + kNbOutputs) {
        return false;
    }
    PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != TensorFormat::kLINEAR) return false;
    if (pos == kMaskIndex) return desc.type == DataType::kINT32;
    return desc.type == DataType::kHALF;  // q, k, v and the output
}

int32_t FusedAttentionPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs,
                                                 DataType const* inputTypes, int32_t nbInputs) const noexcept {
    if (outputTypes == nullptr || inputTypes == nullptr || nbOutputs != kNbOutputs || nbInputs != kNbInputs) {
        return -1;
    }
    // The kernel writes fp16 only; the returned type must be one the plugin supports (TensorRT inserts
    // reformats around the plugin when the surrounding network runs in fp32).
    outputTypes[0] = DataType::kHALF;
    return 0;
}

int32_t FusedAttentionPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs,
                                              DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
                                              DimsExprs* outputs, int32_t nbOutputs,
                                              IExprBuilder& /*exprBuilder*/) noexcept {
    if (inputs == nullptr || outputs == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs) return -1;
    if (inputs[0].nbDims != 3 || inputs[kMaskIndex].nbDims != 2) {
        logError("q must be [batch, seq, hidden] and the mask [batch, seq]");
        return -1;
    }
    if (inputs[0].d[2]->isConstant() &&
        inputs[0].d[2]->getConstantValue() != static_cast<int64_t>(mParams.numHeads) * mParams.headSize) {
        logError("hidden size does not match num_heads * head_size (" + mMetadata + ")");
        return -1;
    }
    outputs[0] = inputs[0];  // same [batch, seq, hidden] as the query projection
    return 0;
}

size_t FusedAttentionPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
                                              DynamicPluginTensorDesc const* /*outputs*/,
                                              int32_t /*nbOutputs*/) const noexcept {
    return 0;  // everything lives in shared memory and registers
}

char const* FusedAttentionPlugin::getTimingCacheID() noexcept { return mMetadata.c_str(); }

char const* FusedAttentionPlugin::getMetadataString() noexcept { return mMetadata.c_str(); }

int32_t FusedAttentionPlugin::onShapeChange(PluginTensorDesc const* in, int32_t nbInputs,
                                            PluginTensorDesc const* out, int32_t nbOutputs) noexcept {
    if (in == nullptr || out == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs) return -1;
    int32_t const status = trt_edge_attention_check(
        static_cast<int>(in[0].dims.d[0]), static_cast<int>(in[0].dims.d[1]), mParams.numHeads, mParams.headSize,
        static_cast<int>(in[kMaskIndex].dims.d[0]), static_cast<int>(in[kMaskIndex].dims.d[1]));
    if (status != TRT_EDGE_ATTENTION_OK) {
        logError(trt_edge_attention_status_string(status));
        return -1;
    }
    return 0;
}

int32_t FusedAttentionPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
                                      void const* const* inputs, void* const* outputs, void* /*workspace*/,
                                      cudaStream_t stream) noexcept {
    if (inputDesc == nullptr || inputs == nullptr || outputs == nullptr) return -1;
    int const batch = static_cast<int>(inputDesc[0].dims.d[0]);
    int const seqLen = static_cast<int>(inputDesc[0].dims.d[1]);
    int const status = trt_edge_attention_forward(
        inputs[0], inputs[1], inputs[2], static_cast<int32_t const*>(inputs[kMaskIndex]), outputs[0], batch, seqLen,
        mParams.numHeads, mParams.headSize, static_cast<int>(inputDesc[kMaskIndex].dims.d[0]),
        static_cast<int>(inputDesc[kMaskIndex].dims.d[1]), mParams.scale, mParams.causal, stream);
    if (status != TRT_EDGE_ATTENTION_OK) {
        logError(std::string("enqueue failed: ") + trt_edge_attention_status_string(status));
        return -1;
    }
    return 0;
}

IPluginV3* FusedAttentionPlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept { return clone(); }

PluginFieldCollection const* FusedAttentionPlugin::getFieldsToSerialize() noexcept { return &mFCToSerialize; }

// ---------------------------------------------------------------------------------------------------------
// FusedAttentionPluginCreator

FusedAttentionPluginCreator::FusedAttentionPluginCreator() {
    mFields.emplace_back("num_heads", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("head_size", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("scale", nullptr, PluginFieldType::kFLOAT32, 1);
    mFields.emplace_back("causal", nullptr, PluginFieldType::kINT32, 1);
    mFC.nbFields = static_cast<int32_t>(mFields.size());
    mFC.fields = mFields.data();
}

char const* FusedAttentionPluginCreator::getPluginName() const noexcept { return kFusedAttentionName; }

char const* FusedAttentionPluginCreator::getPluginVersion() const noexcept { return kFusedAttentionVersion; }

char const* FusedAttentionPluginCreator::getPluginNamespace() const noexcept { return kFusedAttentionNamespace; }

PluginFieldCollection const* FusedAttentionPluginCreator::getFieldNames() noexcept { return &mFC; }

IPluginV3* FusedAttentionPluginCreator::createPlugin(char const* /*name*/, PluginFieldCollection const* fc,
                                                     TensorRTPhase /*phase*/) noexcept {
    try {
        if (fc == nullptr) {
            logError("createPlugin: no attributes");
            return nullptr;
        }
        // Both phases read the same four fields: at build time from the ONNX node's attributes (which also
        // carry plugin_version / plugin_namespace strings, ignored here), at runtime from the plan.
        FusedAttentionParams params;
        bool haveHeads = false;
        bool haveSize = false;
        bool haveScale = false;
        for (int32_t i = 0; i < fc->nbFields; ++i) {
            PluginField const& field = fc->fields[i];
            if (field.name == nullptr) continue;
            bool ok = true;
            if (std::strcmp(field.name, "num_heads") == 0) {
                ok = readInt(field, params.numHeads);
                haveHeads = ok;
            } else if (std::strcmp(field.name, "head_size") == 0) {
                ok = readInt(field, params.headSize);
                haveSize = ok;
            } else if (std::strcmp(field.name, "scale") == 0) {
                ok = readFloat(field, params.scale);
                haveScale = ok;
            } else if (std::strcmp(field.name, "causal") == 0) {
                ok = readInt(field, params.causal);
            }
            if (!ok) {
                logError(std::string("attribute ") + field.name + " has an unexpected type");
                return nullptr;
            }
        }
        if (!haveHeads || !haveSize) {
            logError("attributes num_heads and head_size are required");
            return nullptr;
        }
        if (!haveScale) params.scale = 1.0F / std::sqrt(static_cast<float>(params.headSize));
        std::string why;
        if (!validParams(params, why)) {
            logError(why);
            return nullptr;
        }
        return new FusedAttentionPlugin(params);
    } catch (std::exception const& e) {
        logError(std::string("createPlugin failed: ") + e.what());
    }
    return nullptr;
}

}  // namespace plugin
}  // namespace trt_edge

// ---------------------------------------------------------------------------------------------------------
// Registration.
//
// Static registration (libtrt_edge_attention_plugin.so): loading the library with dlopen / ctypes.CDLL
// (what trt_edge does before parsing or deserializing) registers the creator in the global registry.
// getCreators / setLoggerFinder serve IPluginRegistry::loadLibrary, trtexec --dynamicPlugins and
// plugins_to_serialize; that path must not also register statically, since TensorRT rejects a creator
// registered twice, so CMake builds it separately with TRT_EDGE_NO_STATIC_REGISTRATION
// (libtrt_edge_attention_plugin_registry.so).
#ifndef TRT_EDGE_NO_STATIC_REGISTRATION
using trt_edge::plugin::FusedAttentionPluginCreator;
REGISTER_TENSORRT_PLUGIN(FusedAttentionPluginCreator);
#endif

extern "C" TENSORRTAPI nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    static trt_edge::plugin::FusedAttentionPluginCreator sCreator;
    static nvinfer1::IPluginCreatorInterface* const kCreators[] = {&sCreator};
    nbCreators = 1;
    return kCreators;
}

extern "C" TENSORRTAPI void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
    trt_edge::plugin::loggerFinder().set(finder);
}
