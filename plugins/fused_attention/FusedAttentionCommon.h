/*
 * trt-edge fused attention: what both TensorRT plugin generations share.
 *
 * Two classes wrap the same kernel (fused_attention.h): the IPluginV3 (FusedAttentionPlugin.h, TensorRT 10+)
 * and the IPluginV2DynamicExt (FusedAttentionPluginV2.h, TensorRT 8.5/8.6, where IPluginV3 does not exist).
 * Everything that does not depend on the plugin interface lives here, once: attribute parsing and
 * validation, the input layout, the shape and format checks, the launch, and logging. The code compiles
 * against the headers of TensorRT 8.5 through 11 (dimensions are int32 before 10 and int64 from 10; the
 * helpers widen to int64).
 *
 * The ONNX node (docs/plugins.md, PLUGIN_CONTRACT): op TrtEdgeFusedAttention, domain trt_edge, attributes
 * num_heads, head_size, scale, causal, has_mask (default 1), has_bias (default 0), plugin_version (the
 * generation: "1" = IPluginV3, "2" = IPluginV2DynamicExt), plugin_namespace "". Inputs, in this order:
 *   q, k, v  fp16 [batch, seq, num_heads * head_size]
 *   mask     int32 [batch, seq]                          only when has_mask = 1 (1 attend, 0 padding)
 *   bias     fp16 [1 or batch, num_heads, seq, seq]      only when has_bias = 1 (added to scale * Q.K^T)
 * Output: fp16 [batch, seq, num_heads * head_size].
 */
#ifndef TRT_EDGE_FUSED_ATTENTION_COMMON_H
#define TRT_EDGE_FUSED_ATTENTION_COMMON_H

#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#include <cstdint>
#include <string>
#include <vector>

// ILoggerFinder and IPluginRegistry::loadLibrary exist from TensorRT 8.6.
#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6)
#define TRT_EDGE_HAS_LOGGER_FINDER 1
#else
#define TRT_EDGE_HAS_LOGGER_FINDER 0
#endif

namespace trt_edge {
namespace plugin {

constexpr char const* kFusedAttentionName = "TrtEdgeFusedAttention";
// One plugin_version per generation, so an ONNX node names the interface its parser must resolve and a
// node fused for one generation fails loudly ("plugin not found") instead of binding to the other.
constexpr char const* kFusedAttentionVersionV3 = "1";  // IPluginV3, TensorRT 10+
constexpr char const* kFusedAttentionVersionV2 = "2";  // IPluginV2DynamicExt, TensorRT 8.5/8.6
// The empty namespace, like TensorRT's own plugins: REGISTER_TENSORRT_PLUGIN registers under "" and the
// ONNX node says plugin_namespace "", so every lookup path agrees (see docs/plugins.md).
constexpr char const* kFusedAttentionNamespace = "";

struct FusedAttentionParams {
    int32_t numHeads{0};
    int32_t headSize{0};
    float scale{0.0F};
    int32_t causal{0};
    int32_t hasMask{1};  // absent in nodes and plans written before has_mask existed: they had a mask
    int32_t hasBias{0};
};

constexpr int32_t kNbOutputs = 1;

// Input positions for a node's attributes: q, k, v, [mask], [bias]; -1 when the input is absent.
int32_t nbInputs(FusedAttentionParams const& p) noexcept;
int32_t maskIndex(FusedAttentionParams const& p) noexcept;
int32_t biasIndex(FusedAttentionParams const& p) noexcept;

// "num_heads=12 head_size=64 scale=0.125 causal=0 has_mask=1 has_bias=0": timing-cache key and messages.
std::string describe(FusedAttentionParams const& p);

// Log through the logger TensorRT handed over (setLoggerFinder, TensorRT 8.6+), else to stderr.
void logError(std::string const& message) noexcept;
#if TRT_EDGE_HAS_LOGGER_FINDER
void setLoggerFinderOnce(nvinfer1::ILoggerFinder* finder) noexcept;
#endif

// The creator's field list (getFieldNames): both generations declare the same six fields and types.
class CreatorFields {
public:
    CreatorFields();
    CreatorFields(CreatorFields const&) = delete;  // mFC points into mFields
    CreatorFields& operator=(CreatorFields const&) = delete;
    nvinfer1::PluginFieldCollection const* get() const noexcept { return &mFC; }

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFC{};
};

// Read the attributes from a PluginFieldCollection (ONNX node at build time, plan at runtime for V3).
// Unknown fields (plugin_version, plugin_namespace) are ignored. False with `why` on a missing or bad one.
bool parseFields(nvinfer1::PluginFieldCollection const* fc, FusedAttentionParams& params, std::string& why);

bool validParams(FusedAttentionParams const& p, std::string& why);

// Build-time checks on the connected inputs (count, ranks, hidden size, profile max sequence).
bool checkConfiguration(FusedAttentionParams const& p, int32_t nbIn, int32_t nbOut,
                        nvinfer1::DynamicPluginTensorDesc const* in, std::string& why);

// The one format combination: linear layout, fp16 q/k/v/bias/out, int32 mask.
bool formatSupported(FusedAttentionParams const& p, int32_t pos, nvinfer1::PluginTensorDesc const& desc) noexcept;

// Output shape expression check (symbolic): q is [batch, seq, hidden], hidden = num_heads * head_size.
bool checkOutputShapeInputs(FusedAttentionParams const& p, nvinfer1::DimsExprs const* inputs, int32_t nbIn,
                            std::string& why);

// Runtime check of concrete shapes (the kernel's own argument check): a trt_edge_attention_status.
int32_t checkShapes(FusedAttentionParams const& p, nvinfer1::PluginTensorDesc const* in) noexcept;

// Launch the kernel for the bound tensors: a trt_edge_attention_status.
int32_t launch(FusedAttentionParams const& p, nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
               void* const* outputs, cudaStream_t stream) noexcept;

// Both generations' enqueue: launch, and log the reason of a failure; 0 or -1 as TensorRT expects.
int32_t enqueueOrLog(FusedAttentionParams const& p, nvinfer1::PluginTensorDesc const* inputDesc,
                     void const* const* inputs, void* const* outputs, cudaStream_t stream) noexcept;

}  // namespace plugin
}  // namespace trt_edge

#endif  // TRT_EDGE_FUSED_ATTENTION_COMMON_H
