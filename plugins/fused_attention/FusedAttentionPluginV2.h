/*
 * trt-edge fused attention as a TensorRT IPluginV2DynamicExt, for TensorRT 8.5 (JetPack 5, the last release
 * for Jetson Xavier) and 8.6 (JetPack 6.0), which have no IPluginV3. Same kernel, same attributes and inputs
 * as the IPluginV3 (FusedAttentionCommon.h); the ONNX node says plugin_version "2" to bind to this class.
 *
 * The interface is deprecated from TensorRT 10 (still declared in 10.x and 11.1): the class compiles against
 * every header set from 8.5 to 11.1, with the deprecation warnings silenced only around it, and is
 * registered only where TensorRT's major version is below 10 (FusedAttentionRegistration.cpp).
 *
 * Serialization (IPluginV2: the plan stores the bytes serialize() writes): six little-endian 32-bit values,
 * num_heads, head_size, scale (float), causal, has_mask, has_bias.
 */
#ifndef TRT_EDGE_FUSED_ATTENTION_PLUGIN_V2_H
#define TRT_EDGE_FUSED_ATTENTION_PLUGIN_V2_H

#include "FusedAttentionCommon.h"

#include <cstdint>
#include <string>
#include <vector>

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

namespace trt_edge {
namespace plugin {

class FusedAttentionPluginV2 : public nvinfer1::IPluginV2DynamicExt {
public:
    explicit FusedAttentionPluginV2(FusedAttentionParams const& params);
    FusedAttentionPluginV2(FusedAttentionPluginV2 const& other) = default;
    FusedAttentionPluginV2& operator=(FusedAttentionPluginV2 const&) = delete;
    ~FusedAttentionPluginV2() override = default;

    static constexpr size_t kSerializedSize = 6 * sizeof(int32_t);
    // Parse what serialize() wrote; false on a wrong length or invalid values.
    static bool deserialize(void const* data, size_t length, FusedAttentionParams& params, std::string& why);

    // IPluginV2
    char const* getPluginType() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    int32_t getNbOutputs() const noexcept override;
    int32_t initialize() noexcept override;
    void terminate() noexcept override;
    size_t getSerializationSize() const noexcept override;
    void serialize(void* buffer) const noexcept override;
    void destroy() noexcept override;
    void setPluginNamespace(char const* pluginNamespace) noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV2Ext
    nvinfer1::DataType getOutputDataType(int32_t index, nvinfer1::DataType const* inputTypes,
                                         int32_t nbInputs) const noexcept override;

    // IPluginV2DynamicExt
    nvinfer1::IPluginV2DynamicExt* clone() const noexcept override;
    nvinfer1::DimsExprs getOutputDimensions(int32_t outputIndex, nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
                                            nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override;
    void configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                         nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::PluginTensorDesc const* inputs, int32_t nbInputs,
                            nvinfer1::PluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override;

private:
    FusedAttentionParams mParams;
    std::string mNamespace;
};

class FusedAttentionPluginV2Creator : public nvinfer1::IPluginCreator {
public:
    ~FusedAttentionPluginV2Creator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV2* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc) noexcept override;
    nvinfer1::IPluginV2* deserializePlugin(char const* name, void const* serialData,
                                           size_t serialLength) noexcept override;
    void setPluginNamespace(char const* pluginNamespace) noexcept override;
    char const* getPluginNamespace() const noexcept override;

private:
    // The ONNX parser passes exactly the fields listed here, converted to the listed types.
    CreatorFields mFields;
    std::string mNamespace{kFusedAttentionNamespace};
};

}  // namespace plugin
}  // namespace trt_edge

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#endif  // TRT_EDGE_FUSED_ATTENTION_PLUGIN_V2_H
