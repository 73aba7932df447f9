/*
 * trt-edge fused attention as a TensorRT IPluginV3 (TensorRT 10.0+; the ONNX parser maps an ONNX node with
 * op_type "TrtEdgeFusedAttention", plugin_version "1", plugin_namespace "" to it, TensorRT 10.1+).
 * TensorRT 8.5/8.6 have no IPluginV3: FusedAttentionPluginV2.h serves them (plugin_version "2").
 *
 * Inputs:  q, k, v fp16 [batch, seq, num_heads * head_size], then the int32 [batch, seq] mask when has_mask,
 *          then the fp16 [1 or batch, num_heads, seq, seq] additive bias when has_bias (FusedAttentionCommon.h).
 * Output:  0 out  fp16 [batch, seq, num_heads * head_size]   (heads merged, ready for the output projection)
 * Attributes (PluginFields, also what getFieldsToSerialize writes into the plan):
 *          num_heads (int32), head_size (int32: 32, 64, 128), scale (float32), causal (int32 0/1),
 *          has_mask (int32 0/1, default 1), has_bias (int32 0/1, default 0).
 *
 * See fused_attention.h for the exact computation and README.md for building and loading.
 */
#ifndef TRT_EDGE_FUSED_ATTENTION_PLUGIN_H
#define TRT_EDGE_FUSED_ATTENTION_PLUGIN_H

#include "FusedAttentionCommon.h"

#include <cstdint>
#include <string>
#include <vector>

#if NV_TENSORRT_MAJOR >= 10

namespace trt_edge {
namespace plugin {

class FusedAttentionPlugin : public nvinfer1::IPluginV3,
                             public nvinfer1::IPluginV3OneCore,
                             public nvinfer1::IPluginV3OneBuild,
                             public nvinfer1::IPluginV3OneRuntime {
public:
    explicit FusedAttentionPlugin(FusedAttentionParams const& params);
    FusedAttentionPlugin(FusedAttentionPlugin const& other);
    FusedAttentionPlugin& operator=(FusedAttentionPlugin const&) = delete;
    ~FusedAttentionPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override;
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
                               nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
                            nvinfer1::DimsExprs const* shapeInputs, int32_t nbShapeInputs,
                            nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                            nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* outputs,
                            int32_t nbOutputs) const noexcept override;
    char const* getTimingCacheID() noexcept override;
    char const* getMetadataString() noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
                          nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    void initFieldsToSerialize();

    FusedAttentionParams mParams;
    std::string mMetadata;
    std::vector<nvinfer1::PluginField> mDataToSerialize;
    nvinfer1::PluginFieldCollection mFCToSerialize{};
};

class FusedAttentionPluginCreator : public nvinfer1::IPluginCreatorV3One {
public:
    ~FusedAttentionPluginCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                      nvinfer1::TensorRTPhase phase) noexcept override;

private:
    CreatorFields mFields;
};

}  // namespace plugin
}  // namespace trt_edge

#endif  // NV_TENSORRT_MAJOR >= 10
#endif  // TRT_EDGE_FUSED_ATTENTION_PLUGIN_H
