/*
 * trt-edge fused attention TensorRT plugin (IPluginV3, TensorRT 10+): the interface around the shared code in
 * FusedAttentionCommon.cpp. Registration is in FusedAttentionRegistration.cpp. Compiles to nothing against
 * TensorRT 8.x headers, where FusedAttentionPluginV2.cpp serves instead.
 */
#include "FusedAttentionPlugin.h"

#if NV_TENSORRT_MAJOR >= 10

#include "fused_attention.h"

#include <exception>
#include <new>

using nvinfer1::DataType;
using nvinfer1::DimsExprs;
using nvinfer1::DynamicPluginTensorDesc;
using nvinfer1::IExprBuilder;
using nvinfer1::IPluginCapability;
using nvinfer1::IPluginResourceContext;
using nvinfer1::IPluginV3;
using nvinfer1::PluginCapabilityType;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginFieldType;
using nvinfer1::PluginTensorDesc;
using nvinfer1::TensorRTPhase;

namespace trt_edge {
namespace plugin {

// ---------------------------------------------------------------------------------------------------------
// FusedAttentionPlugin

FusedAttentionPlugin::FusedAttentionPlugin(FusedAttentionParams const& params)
    : mParams(params), mMetadata(describe(params)) {
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
    mDataToSerialize.emplace_back("has_mask", &mParams.hasMask, PluginFieldType::kINT32, 1);
    mDataToSerialize.emplace_back("has_bias", &mParams.hasBias, PluginFieldType::kINT32, 1);
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

char const* FusedAttentionPlugin::getPluginVersion() const noexcept { return kFusedAttentionVersionV3; }

char const* FusedAttentionPlugin::getPluginNamespace() const noexcept { return kFusedAttentionNamespace; }

int32_t FusedAttentionPlugin::getNbOutputs() const noexcept { return kNbOutputs; }

int32_t FusedAttentionPlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                              DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept {
    try {
        std::string why;
        if (out == nullptr || !checkConfiguration(mParams, nbInputs, nbOutputs, in, why)) {
            logError(why.empty() ? "no output descriptor" : why);
            return -1;
        }
        return 0;
    } catch (std::exception const& e) {
        logError(std::string("configurePlugin failed: ") + e.what());
    }
    return -1;
}

bool FusedAttentionPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut,
                                                     int32_t nbInputs, int32_t nbOutputs) noexcept {
    int32_t const expected = plugin::nbInputs(mParams);
    if (inOut == nullptr || nbInputs != expected || nbOutputs != kNbOutputs || pos < 0 || pos >= expected + kNbOutputs) {
        return false;
    }
    return formatSupported(mParams, pos, inOut[pos].desc);
}

int32_t FusedAttentionPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs,
                                                 DataType const* inputTypes, int32_t nbInputs) const noexcept {
    if (outputTypes == nullptr || inputTypes == nullptr || nbOutputs != kNbOutputs ||
        nbInputs != plugin::nbInputs(mParams)) {
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
    try {
        std::string why;
        if (outputs == nullptr || nbOutputs != kNbOutputs || !checkOutputShapeInputs(mParams, inputs, nbInputs, why)) {
            logError(why.empty() ? "unexpected outputs" : why);
            return -1;
        }
        outputs[0] = inputs[0];  // same [batch, seq, hidden] as the query projection
        return 0;
    } catch (std::exception const& e) {
        logError(std::string("getOutputShapes failed: ") + e.what());
    }
    return -1;
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
    if (in == nullptr || out == nullptr || nbInputs != plugin::nbInputs(mParams) || nbOutputs != kNbOutputs) {
        return -1;
    }
    int32_t const status = checkShapes(mParams, in);
    if (status != TRT_EDGE_ATTENTION_OK) {
        logError(trt_edge_attention_status_string(status));
        return -1;
    }
    return 0;
}

int32_t FusedAttentionPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
                                      void const* const* inputs, void* const* outputs, void* /*workspace*/,
                                      cudaStream_t stream) noexcept {
    return enqueueOrLog(mParams, inputDesc, inputs, outputs, stream);
}

IPluginV3* FusedAttentionPlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept { return clone(); }

PluginFieldCollection const* FusedAttentionPlugin::getFieldsToSerialize() noexcept { return &mFCToSerialize; }

// ---------------------------------------------------------------------------------------------------------
// FusedAttentionPluginCreator

char const* FusedAttentionPluginCreator::getPluginName() const noexcept { return kFusedAttentionName; }

char const* FusedAttentionPluginCreator::getPluginVersion() const noexcept { return kFusedAttentionVersionV3; }

char const* FusedAttentionPluginCreator::getPluginNamespace() const noexcept { return kFusedAttentionNamespace; }

PluginFieldCollection const* FusedAttentionPluginCreator::getFieldNames() noexcept { return mFields.get(); }

IPluginV3* FusedAttentionPluginCreator::createPlugin(char const* /*name*/, PluginFieldCollection const* fc,
                                                     TensorRTPhase /*phase*/) noexcept {
    try {
        // Both phases read the same fields: at build time from the ONNX node, at runtime from the plan.
        FusedAttentionParams params;
        std::string why;
        if (!parseFields(fc, params, why)) {
            logError("createPlugin: " + why);
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

#endif  // NV_TENSORRT_MAJOR >= 10
