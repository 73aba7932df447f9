// Runs both fused-attention plugin generations' CPU-side logic against the real TensorRT headers, without
// libnvinfer and without a GPU: attribute parsing as the ONNX parser passes them, has_mask / has_bias input
// layouts, supportsFormatCombination, IPluginV2 serialization round trip, IPluginV3 field serialization,
// and the shape checks that refuse bad input before any CUDA call (test_kernel_build.py builds and runs it).
// Only the interfaces' inline code and the kernel library's C ABI are linked; the registration (which needs
// libnvinfer's registry) is not.
#include "FusedAttentionCommon.h"
#include "FusedAttentionPlugin.h"
#include "FusedAttentionPluginV2.h"
#include "fused_attention.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // the V2 interface is deprecated from TensorRT 10
#endif

using namespace nvinfer1;
using trt_edge::plugin::FusedAttentionPluginV2Creator;

namespace {

int failures = 0;

#define CHECK(cond)                                                               \
    do {                                                                          \
        if (!(cond)) {                                                            \
            std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                           \
        }                                                                         \
    } while (0)

struct Attributes {
    int32_t numHeads{2};
    int32_t headSize{64};
    float scale{0.125F};
    int32_t causal{0};
    int32_t hasMask{1};
    int32_t hasBias{0};
    bool withFlags{true};  // false: a node or plan from before has_mask / has_bias existed
    std::vector<PluginField> fields;
    PluginFieldCollection fc{};

    PluginFieldCollection const* collection() {
        fields.clear();
        fields.emplace_back("num_heads", &numHeads, PluginFieldType::kINT32, 1);
        fields.emplace_back("head_size", &headSize, PluginFieldType::kINT32, 1);
        fields.emplace_back("scale", &scale, PluginFieldType::kFLOAT32, 1);
        fields.emplace_back("causal", &causal, PluginFieldType::kINT32, 1);
        if (withFlags) {
            fields.emplace_back("has_mask", &hasMask, PluginFieldType::kINT32, 1);
            fields.emplace_back("has_bias", &hasBias, PluginFieldType::kINT32, 1);
        }
        fields.emplace_back("plugin_version", "1", PluginFieldType::kCHAR, 1);  // the parser passes it too
        fc.nbFields = static_cast<int32_t>(fields.size());
        fc.fields = fields.data();
        return &fc;
    }
};

PluginTensorDesc tensor(std::vector<int64_t> const& dims, DataType type) {
    PluginTensorDesc desc{};
    desc.dims.nbDims = static_cast<int32_t>(dims.size());
    for (size_t i = 0; i < dims.size(); ++i) desc.dims.d[i] = static_cast<std::remove_reference_t<decltype(desc.dims.d[0])>>(dims[i]);
    desc.type = type;
    desc.format = TensorFormat::kLINEAR;
    desc.scale = 1.0F;
    return desc;
}

// q, k, v [2, 16, 128] fp16, optional mask [2, 16] int32, optional bias [biasBatch, 2, 16, 16] fp16, output.
std::vector<PluginTensorDesc> io(bool mask, bool bias, int64_t biasBatch = 1) {
    std::vector<PluginTensorDesc> descs(3, tensor({2, 16, 128}, DataType::kHALF));
    if (mask) descs.push_back(tensor({2, 16}, DataType::kINT32));
    if (bias) descs.push_back(tensor({biasBatch, 2, 16, 16}, DataType::kHALF));
    descs.push_back(tensor({2, 16, 128}, DataType::kHALF));
    return descs;
}

void checkV2() {
    FusedAttentionPluginV2Creator creator;
    CHECK(std::strcmp(creator.getPluginVersion(), "2") == 0);
    CHECK(std::strcmp(creator.getPluginName(), "TrtEdgeFusedAttention") == 0);
    CHECK(creator.getFieldNames()->nbFields == 6);

    Attributes attrs;
    attrs.hasMask = 0;
    attrs.hasBias = 1;
    auto* plugin = static_cast<IPluginV2DynamicExt*>(creator.createPlugin("fused0", attrs.collection()));
    CHECK(plugin != nullptr);
    if (plugin == nullptr) return;
    CHECK(plugin->getNbOutputs() == 1);
    std::vector<PluginTensorDesc> descs = io(false, true);  // q, k, v, bias, out
    for (int32_t pos = 0; pos < 5; ++pos) CHECK(plugin->supportsFormatCombination(pos, descs.data(), 4, 1));
    CHECK(!plugin->supportsFormatCombination(0, descs.data(), 5, 1));  // a mask input the node does not have
    descs[3].type = DataType::kINT32;
    CHECK(!plugin->supportsFormatCombination(3, descs.data(), 4, 1));  // the bias is fp16
    DataType const in[4] = {DataType::kHALF, DataType::kHALF, DataType::kHALF, DataType::kHALF};
    CHECK(plugin->getOutputDataType(0, in, 4) == DataType::kHALF);

    std::vector<char> blob(plugin->getSerializationSize());
    CHECK(blob.size() == 24);
    plugin->serialize(blob.data());
    IPluginV2* restored = creator.deserializePlugin("fused0", blob.data(), blob.size());
    CHECK(restored != nullptr);
    if (restored != nullptr) {
        std::vector<char> again(restored->getSerializationSize());
        restored->serialize(again.data());
        CHECK(again == blob);
        restored->destroy();
    }
    CHECK(creator.deserializePlugin("fused0", blob.data(), blob.size() - 1) == nullptr);  // truncated plan

    // Refused before any CUDA call: a bias batch that is neither 1 nor the batch; a bias with other heads.
    std::vector<PluginTensorDesc> bad = io(false, true, 3);
    int const fake = 0;
    void const* inputs[4] = {&fake, &fake, &fake, &fake};
    int out = 0;
    void* outputs[1] = {&out};
    CHECK(plugin->enqueue(bad.data(), &bad[4], inputs, outputs, nullptr, nullptr) == -1);
    CHECK(trt_edge::plugin::checkShapes({2, 64, 0.125F, 0, 0, 1}, bad.data()) == TRT_EDGE_ATTENTION_ERR_BIAS_SHAPE);
    std::vector<PluginTensorDesc> good = io(false, true, 2);
    CHECK(trt_edge::plugin::checkShapes({2, 64, 0.125F, 0, 0, 1}, good.data()) == TRT_EDGE_ATTENTION_OK);
    plugin->destroy();

    attrs.headSize = 48;
    CHECK(creator.createPlugin("fused1", attrs.collection()) == nullptr);  // unsupported head size
    attrs.headSize = 64;
    attrs.hasBias = 2;
    CHECK(creator.createPlugin("fused1", attrs.collection()) == nullptr);  // has_bias must be 0 or 1
}

#if NV_TENSORRT_MAJOR >= 10
void checkV3() {
    trt_edge::plugin::FusedAttentionPluginCreator creator;
    CHECK(std::strcmp(creator.getPluginVersion(), "1") == 0);
    CHECK(creator.getFieldNames()->nbFields == 6);

    // A node (or plan) from before has_mask existed: mask at input 3, no bias.
    Attributes legacy;
    legacy.withFlags = false;
    IPluginV3* old = creator.createPlugin("fused0", legacy.collection(), TensorRTPhase::kRUNTIME);
    CHECK(old != nullptr);
    if (old != nullptr) {
        auto* build = static_cast<IPluginV3OneBuild*>(old->getCapabilityInterface(PluginCapabilityType::kBUILD));
        std::vector<PluginTensorDesc> descs = io(true, false);  // q, k, v, mask, out
        std::vector<DynamicPluginTensorDesc> dyn(descs.size());
        for (size_t i = 0; i < descs.size(); ++i) dyn[i].desc = descs[i];
        CHECK(build->getNbOutputs() == 1);
        CHECK(build->supportsFormatCombination(3, dyn.data(), 4, 1));  // int32 mask
        dyn[3].desc.type = DataType::kHALF;
        CHECK(!build->supportsFormatCombination(3, dyn.data(), 4, 1));
        delete old;
    }

    // Padding mask and a per-batch bias: five inputs; fields survive the plan round trip.
    Attributes attrs;
    attrs.hasBias = 1;
    IPluginV3* plugin = creator.createPlugin("fused1", attrs.collection(), TensorRTPhase::kBUILD);
    CHECK(plugin != nullptr);
    if (plugin == nullptr) return;
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    PluginFieldCollection const* saved = runtime->getFieldsToSerialize();
    CHECK(saved->nbFields == 6);
    IPluginV3* restored = creator.createPlugin("fused1", saved, TensorRTPhase::kRUNTIME);
    CHECK(restored != nullptr);
    if (restored != nullptr) {
        auto* r = static_cast<IPluginV3OneRuntime*>(restored->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
        PluginFieldCollection const* again = r->getFieldsToSerialize();
        CHECK(again->nbFields == saved->nbFields);
        for (int32_t i = 0; i < again->nbFields && i < saved->nbFields; ++i) {
            CHECK(std::strcmp(again->fields[i].name, saved->fields[i].name) == 0);
            CHECK(std::memcmp(again->fields[i].data, saved->fields[i].data, 4) == 0);
        }
        delete restored;
    }
    std::vector<PluginTensorDesc> good = io(true, true, 2);
    CHECK(runtime->onShapeChange(good.data(), 5, &good[5], 1) == 0);
    CHECK(runtime->onShapeChange(good.data(), 4, &good[5], 1) == -1);  // the bias input missing
    std::vector<PluginTensorDesc> bad = io(true, true, 3);
    CHECK(runtime->onShapeChange(bad.data(), 5, &bad[5], 1) == -1);
    delete plugin;
}
#endif

}  // namespace

int main() {
    checkV2();
#if NV_TENSORRT_MAJOR >= 10
    checkV3();
#endif
    if (failures == 0) std::printf("plugin selftest: all checks passed (TensorRT %d.%d headers)\n",
                                   NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR);
    return failures == 0 ? 0 : 1;
}
