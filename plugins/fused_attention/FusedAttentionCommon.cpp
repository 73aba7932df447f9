/*
 * trt-edge fused attention: attribute parsing, checks, launch and logging shared by both plugin generations
 * (see FusedAttentionCommon.h). No plugin interface is used here, so nothing here is deprecated anywhere.
 */
#include "FusedAttentionCommon.h"

#include "fused_attention.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <sstream>

using nvinfer1::DataType;
using nvinfer1::DimsExprs;
using nvinfer1::DynamicPluginTensorDesc;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginFieldType;
using nvinfer1::PluginTensorDesc;
using nvinfer1::TensorFormat;

namespace trt_edge {
namespace plugin {
namespace {

#if TRT_EDGE_HAS_LOGGER_FINDER
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
#endif

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

int asInt(int64_t value) { return static_cast<int>(value); }

}  // namespace

int32_t nbInputs(FusedAttentionParams const& p) noexcept { return 3 + (p.hasMask != 0 ? 1 : 0) + (p.hasBias != 0 ? 1 : 0); }

int32_t maskIndex(FusedAttentionParams const& p) noexcept { return p.hasMask != 0 ? 3 : -1; }

int32_t biasIndex(FusedAttentionParams const& p) noexcept {
    return p.hasBias != 0 ? (p.hasMask != 0 ? 4 : 3) : -1;
}

std::string describe(FusedAttentionParams const& p) {
    std::ostringstream meta;
    meta << "num_heads=" << p.numHeads << " head_size=" << p.headSize << " scale=" << p.scale
         << " causal=" << p.causal << " has_mask=" << p.hasMask << " has_bias=" << p.hasBias;
    return meta.str();
}

void logError(std::string const& message) noexcept {
    try {
        std::string const text = std::string(kFusedAttentionName) + ": " + message;
#if TRT_EDGE_HAS_LOGGER_FINDER
        nvinfer1::ILogger* logger = loggerFinder().get();
        if (logger != nullptr) {
            logger->log(nvinfer1::ILogger::Severity::kERROR, text.c_str());
            return;
        }
#endif
        std::fprintf(stderr, "[E] %s\n", text.c_str());
    } catch (...) {
        // Logging must never throw across the TensorRT ABI.
    }
}

#if TRT_EDGE_HAS_LOGGER_FINDER
void setLoggerFinderOnce(nvinfer1::ILoggerFinder* finder) noexcept {
    try {
        loggerFinder().set(finder);
    } catch (...) {
        // std::mutex::lock may throw; the logger then stays unset and messages go to stderr.
    }
}
#endif

CreatorFields::CreatorFields() {
    mFields.emplace_back("num_heads", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("head_size", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("scale", nullptr, PluginFieldType::kFLOAT32, 1);
    mFields.emplace_back("causal", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("has_mask", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("has_bias", nullptr, PluginFieldType::kINT32, 1);
    mFC.nbFields = static_cast<int32_t>(mFields.size());
    mFC.fields = mFields.data();
}

bool parseFields(PluginFieldCollection const* fc, FusedAttentionParams& params, std::string& why) {
    if (fc == nullptr) {
        why = "no attributes";
        return false;
    }
    // Build time: the ONNX node's attributes (which also carry plugin_version / plugin_namespace strings,
    // ignored here); runtime (IPluginV3): the fields getFieldsToSerialize wrote into the plan.
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
        } else if (std::strcmp(field.name, "has_mask") == 0) {
            ok = readInt(field, params.hasMask);
        } else if (std::strcmp(field.name, "has_bias") == 0) {
            ok = readInt(field, params.hasBias);
        }
        if (!ok) {
            why = std::string("attribute ") + field.name + " has an unexpected type";
            return false;
        }
    }
    if (!haveHeads || !haveSize) {
        why = "attributes num_heads and head_size are required";
        return false;
    }
    if (!haveScale) params.scale = 1.0F / std::sqrt(static_cast<float>(params.headSize));
    return validParams(params, why);
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
    if (p.hasMask != 0 && p.hasMask != 1) {
        why = "has_mask must be 0 or 1";
        return false;
    }
    if (p.hasBias != 0 && p.hasBias != 1) {
        why = "has_bias must be 0 or 1";
        return false;
    }
    return true;
}

bool checkConfiguration(FusedAttentionParams const& p, int32_t nbIn, int32_t nbOut, DynamicPluginTensorDesc const* in,
                        std::string& why) {
    if (in == nullptr || nbIn != nbInputs(p) || nbOut != kNbOutputs) {
        why = "expects " + std::to_string(nbInputs(p)) + " inputs (q, k, v" + (p.hasMask != 0 ? ", mask" : "") +
              (p.hasBias != 0 ? ", bias" : "") + ") and 1 output, got " + std::to_string(nbIn) + " and " +
              std::to_string(nbOut);
        return false;
    }
    for (int32_t i = 0; i < 3; ++i) {
        if (in[i].desc.dims.nbDims != 3) {
            why = "q, k and v must be rank 3 [batch, seq, num_heads * head_size]";
            return false;
        }
    }
    if (p.hasMask != 0 && in[maskIndex(p)].desc.dims.nbDims != 2) {
        why = "the mask must be rank 2 [batch, seq]";
        return false;
    }
    if (p.hasBias != 0) {
        nvinfer1::Dims const& bias = in[biasIndex(p)].desc.dims;
        if (bias.nbDims != 4) {
            why = "the bias must be rank 4 [1 or batch, num_heads, seq, seq]";
            return false;
        }
        int64_t const heads = static_cast<int64_t>(bias.d[1]);
        if (heads >= 0 && heads != p.numHeads) {
            why = "the bias has " + std::to_string(heads) + " heads, the node " + std::to_string(p.numHeads);
            return false;
        }
    }
    int64_t const hidden = static_cast<int64_t>(in[0].desc.dims.d[2]);
    if (hidden >= 0 && hidden != static_cast<int64_t>(p.numHeads) * p.headSize) {
        why = "hidden size " + std::to_string(hidden) + " != num_heads * head_size (" + describe(p) + ")";
        return false;
    }
    int64_t const maxSeq = static_cast<int64_t>(in[0].max.d[1]);
    if (maxSeq > trt_edge_attention_max_seq_len()) {
        why = "profile max sequence " + std::to_string(maxSeq) + " exceeds the kernel limit " +
              std::to_string(trt_edge_attention_max_seq_len());
        return false;
    }
    return true;
}

bool formatSupported(FusedAttentionParams const& p, int32_t pos, PluginTensorDesc const& desc) noexcept {
    if (desc.format != TensorFormat::kLINEAR) return false;
    if (pos == maskIndex(p)) return desc.type == DataType::kINT32;
    return desc.type == DataType::kHALF;  // q, k, v, bias and the output
}

bool checkOutputShapeInputs(FusedAttentionParams const& p, DimsExprs const* inputs, int32_t nbIn, std::string& why) {
    if (inputs == nullptr || nbIn != nbInputs(p)) {
        why = "unexpected number of inputs";
        return false;
    }
    if (inputs[0].nbDims != 3 || (p.hasMask != 0 && inputs[maskIndex(p)].nbDims != 2) ||
        (p.hasBias != 0 && inputs[biasIndex(p)].nbDims != 4)) {
        why = "q must be [batch, seq, hidden], the mask [batch, seq] and the bias [1 or batch, heads, seq, seq]";
        return false;
    }
    if (inputs[0].d[2]->isConstant() &&
        static_cast<int64_t>(inputs[0].d[2]->getConstantValue()) != static_cast<int64_t>(p.numHeads) * p.headSize) {
        why = "hidden size does not match num_heads * head_size (" + describe(p) + ")";
        return false;
    }
    return true;
}

int32_t checkShapes(FusedAttentionParams const& p, PluginTensorDesc const* in) noexcept {
    if (in == nullptr) return TRT_EDGE_ATTENTION_ERR_ARGUMENT;
    int const batch = asInt(in[0].dims.d[0]);
    int const seq = asInt(in[0].dims.d[1]);
    int const mi = maskIndex(p);
    int const bi = biasIndex(p);
    return trt_edge_attention_check_bias(
        batch, seq, p.numHeads, p.headSize, mi >= 0 ? asInt(in[mi].dims.d[0]) : batch,
        mi >= 0 ? asInt(in[mi].dims.d[1]) : seq, bi >= 0 ? asInt(in[bi].dims.d[0]) : 0,
        bi >= 0 ? asInt(in[bi].dims.d[1]) : 0, bi >= 0 ? asInt(in[bi].dims.d[2]) : 0,
        bi >= 0 ? asInt(in[bi].dims.d[3]) : 0);
}

int32_t launch(FusedAttentionParams const& p, PluginTensorDesc const* inputDesc, void const* const* inputs,
               void* const* outputs, cudaStream_t stream) noexcept {
    if (inputDesc == nullptr || inputs == nullptr || outputs == nullptr) return TRT_EDGE_ATTENTION_ERR_ARGUMENT;
    int32_t const status = checkShapes(p, inputDesc);
    if (status != TRT_EDGE_ATTENTION_OK) return status;
    int const mi = maskIndex(p);
    int const bi = biasIndex(p);
    return trt_edge_attention_forward_bias(
        inputs[0], inputs[1], inputs[2], mi >= 0 ? static_cast<int32_t const*>(inputs[mi]) : nullptr,
        bi >= 0 ? inputs[bi] : nullptr, outputs[0], asInt(inputDesc[0].dims.d[0]), asInt(inputDesc[0].dims.d[1]),
        p.numHeads, p.headSize, mi >= 0 ? asInt(inputDesc[mi].dims.d[0]) : 0,
        mi >= 0 ? asInt(inputDesc[mi].dims.d[1]) : 0, bi >= 0 ? asInt(inputDesc[bi].dims.d[0]) : 0, p.scale,
        p.causal, stream);
}

int32_t enqueueOrLog(FusedAttentionParams const& p, PluginTensorDesc const* inputDesc, void const* const* inputs,
                     void* const* outputs, cudaStream_t stream) noexcept {
    int32_t const status = launch(p, inputDesc, inputs, outputs, stream);
    if (status != TRT_EDGE_ATTENTION_OK) {
        logError(std::string("enqueue failed: ") + trt_edge_attention_status_string(status));
        return -1;
    }
    return 0;
}

}  // namespace plugin
}  // namespace trt_edge
