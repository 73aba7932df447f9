/*
 * trt-edge fused attention TensorRT plugin, IPluginV2DynamicExt generation (TensorRT 8.5/8.6): the
 * interface around the shared code in FusedAttentionCommon.cpp. Registration: FusedAttentionRegistration.cpp.
 */
#include "FusedAttentionPluginV2.h"

#include "fused_attention.h"

#include <cstring>
#include <exception>
#include <new>

// IPluginV2DynamicExt and IPluginCreator are deprecated from TensorRT 10; this file is that class only.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

using nvinfer1::DataType;
using nvinfer1::DimsExprs;
using nvinfer1::DynamicPluginTensorDesc;
using nvinfer1::IExprBuilder;
using nvinfer1::IPluginV2;
using nvinfer1::IPluginV2DynamicExt;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginTensorDesc;

namespace trt_edge {
namespace plugin {
namespace {

void write32(unsigned char*& out, void const* value) {
    std::memcpy(out, value, sizeof(int32_t));
    out += sizeof(int32_t);
}

void read32(unsigned char const*& in, void* value) {
    std::memcpy(value, in, sizeof(int32_t));
    in += sizeof(int32_t);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// FusedAttentionPluginV2

FusedAttentionPluginV2::FusedAttentionPluginV2(FusedAttentionParams const& params)
    : mParams(params), mNamespace(kFusedAttentionNamespace) {}

bool FusedAttentionPluginV2::deserialize(void const* data, size_t length, FusedAttentionParams& params,
                                         std::string& why) {
    if (data == nullptr || length != kSerializedSize) {
        why = "serialized plugin has " + std::to_string(length) + " bytes, expected " +
              std::to_string(kSerializedSize) + " (a plan from another trt-edge version: rebuild it)";
        return false;
    }
    auto const* in = static_cast<unsigned char const*>(data);
    read32(in, &params.numHeads);
    read32(in, &params.headSize);
    read32(in, &params.scale);
    read32(in, &params.causal);
    read32(in, &params.hasMask);
    read32(in, &params.hasBias);
    return validParams(params, why);
}

char const* FusedAttentionPluginV2::getPluginType() const noexcept { return kFusedAttentionName; }

char const* FusedAttentionPluginV2::getPluginVersion() const noexcept { return kFusedAttentionVersionV2; }

int32_t FusedAttentionPluginV2::getNbOutputs() const noexcept { return kNbOutputs; }

int32_t FusedAttentionPluginV2::initialize() noexcept { return 0; }

void FusedAttentionPluginV2::terminate() noexcept {}

size_t FusedAttentionPluginV2::getSerializationSize() const noexcept { return kSerializedSize; }

void FusedAttentionPluginV2::serialize(void* buffer) const noexcept {
    if (buffer == nullptr) return;
    auto* out = static_cast<unsigned char*>(buffer);
    write32(out, &mParams.numHeads);
    write32(out, &mParams.headSize);
    write32(out, &mParams.scale);
    write32(out, &mParams.causal);
    write32(out, &mParams.hasMask);
    write32(out, &mParams.hasBias);
}

void FusedAttentionPluginV2::destroy() noexcept { delete this; }

void FusedAttentionPluginV2::setPluginNamespace(char const* pluginNamespace) noexcept {
    try {
        mNamespace = pluginNamespace == nullptr ? "" : pluginNamespace;
    } catch (std::exception const& e) {
        logError(std::string("setPluginNamespace failed: ") + e.what());
    }
}

char const* FusedAttentionPluginV2::getPluginNamespace() const noexcept { return mNamespace.c_str(); }

DataType FusedAttentionPluginV2::getOutputDataType(int32_t /*index*/, DataType const* /*inputTypes*/,
                                                   int32_t /*nbInputs*/) const noexcept {
    return DataType::kHALF;  // the kernel writes fp16 only
}

IPluginV2DynamicExt* FusedAttentionPluginV2::clone() const noexcept {
    try {
        return new FusedAttentionPluginV2(*this);
    } catch (std::exception const& e) {
        logError(std::string("clone failed: ") + e.what());
    }
    return nullptr;
}

DimsExprs FusedAttentionPluginV2::getOutputDimensions(int32_t outputIndex, DimsExprs const* inputs, int32_t nbInputs,
                                                      IExprBuilder& /*exprBuilder*/) noexcept {
    try {
        std::string why;
        if (outputIndex == 0 && checkOutputShapeInputs(mParams, inputs, nbInputs, why)) {
            return inputs[0];  // same [batch, seq, hidden] as the query projection
        }
        logError(why.empty() ? "unexpected output index" : why);
    } catch (std::exception const& e) {
        logError(std::string("getOutputDimensions failed: ") + e.what());
    }
    DimsExprs none{};
    none.nbDims = -1;
    return none;
}

bool FusedAttentionPluginV2::supportsFormatCombination(int32_t pos, PluginTensorDesc const* inOut, int32_t nbInputs,
                                                       int32_t nbOutputs) noexcept {
    int32_t const expected = plugin::nbInputs(mParams);
    if (inOut == nullptr || nbInputs != expected || nbOutputs != kNbOutputs || pos < 0 || pos >= expected + kNbOutputs) {
        return false;
    }
    return formatSupported(mParams, pos, inOut[pos]);
}

void FusedAttentionPluginV2::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                             DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept {
    // IPluginV2DynamicExt::configurePlugin cannot fail: a bad configuration is logged here and refused
    // again at enqueue, where the kernel's argument check runs on the concrete shapes.
    try {
        std::string why;
        if (out == nullptr || !checkConfiguration(mParams, nbInputs, nbOutputs, in, why)) {
            logError(why.empty() ? "no output descriptor" : why);
        }
    } catch (std::exception const& e) {
        logError(std::string("configurePlugin failed: ") + e.what());
    }
}

size_t FusedAttentionPluginV2::getWorkspaceSize(PluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
                                                PluginTensorDesc const* /*outputs*/,
                                                int32_t /*nbOutputs*/) const noexcept {
    return 0;  // everything lives in shared memory and registers
}

int32_t FusedAttentionPluginV2::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
                                        void const* const* inputs, void* const* outputs, void* /*workspace*/,
                                        cudaStream_t stream) noexcept {
    return enqueueOrLog(mParams, inputDesc, inputs, outputs, stream);
}

// ---------------------------------------------------------------------------------------------------------
// FusedAttentionPluginV2Creator

char const* FusedAttentionPluginV2Creator::getPluginName() const noexcept { return kFusedAttentionName; }

char const* FusedAttentionPluginV2Creator::getPluginVersion() const noexcept { return kFusedAttentionVersionV2; }

PluginFieldCollection const* FusedAttentionPluginV2Creator::getFieldNames() noexcept { return mFields.get(); }

IPluginV2* FusedAttentionPluginV2Creator::createPlugin(char const* /*name*/, PluginFieldCollection const* fc) noexcept {
    try {
        FusedAttentionParams params;
        std::string why;
        if (!parseFields(fc, params, why)) {
            logError("createPlugin: " + why);
            return nullptr;
        }
        auto* plugin = new FusedAttentionPluginV2(params);
        plugin->setPluginNamespace(mNamespace.c_str());
        return plugin;
    } catch (std::exception const& e) {
        logError(std::string("createPlugin failed: ") + e.what());
    }
    return nullptr;
}

IPluginV2* FusedAttentionPluginV2Creator::deserializePlugin(char const* /*name*/, void const* serialData,
                                                            size_t serialLength) noexcept {
    try {
        FusedAttentionParams params;
        std::string why;
        if (!FusedAttentionPluginV2::deserialize(serialData, serialLength, params, why)) {
            logError("deserializePlugin: " + why);
            return nullptr;
        }
        auto* plugin = new FusedAttentionPluginV2(params);
        plugin->setPluginNamespace(mNamespace.c_str());
        return plugin;
    } catch (std::exception const& e) {
        logError(std::string("deserializePlugin failed: ") + e.what());
    }
    return nullptr;
}

void FusedAttentionPluginV2Creator::setPluginNamespace(char const* pluginNamespace) noexcept {
    try {
        mNamespace = pluginNamespace == nullptr ? "" : pluginNamespace;
    } catch (std::exception const& e) {
        logError(std::string("setPluginNamespace failed: ") + e.what());
    }
}

char const* FusedAttentionPluginV2Creator::getPluginNamespace() const noexcept { return mNamespace.c_str(); }

}  // namespace plugin
}  // namespace trt_edge

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
