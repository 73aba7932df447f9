/*
 * Registration of the fused-attention plugin: the generation is chosen by the TensorRT the library is
 * compiled against (NV_TENSORRT_MAJOR): IPluginV3 (plugin_version "1") from TensorRT 10, the
 * IPluginV2DynamicExt (plugin_version "2") on 8.5/8.6. One generation per library, so the ONNX node's
 * plugin_version (trt_edge/plugins/generation.py) must match the device's TensorRT.
 *
 * Static registration (libtrt_edge_attention_plugin.so): loading the library with dlopen / ctypes.CDLL
 * (what trt_edge does before parsing or deserializing) registers the creator in the global registry.
 * getCreators (10+) / getPluginCreators (8.6) and setLoggerFinder serve IPluginRegistry::loadLibrary,
 * trtexec --dynamicPlugins and plugins_to_serialize; that path must not also register statically, since
 * TensorRT rejects a creator registered twice, so CMake builds it separately with
 * TRT_EDGE_NO_STATIC_REGISTRATION (libtrt_edge_attention_plugin_registry.so). TensorRT 8.5 has no
 * loadLibrary: there only the static library is of use.
 */
#include "FusedAttentionCommon.h"

#if NV_TENSORRT_MAJOR >= 10
#include "FusedAttentionPlugin.h"
using TrtEdgeFusedAttentionCreator = trt_edge::plugin::FusedAttentionPluginCreator;
#else
#include "FusedAttentionPluginV2.h"
using TrtEdgeFusedAttentionCreator = trt_edge::plugin::FusedAttentionPluginV2Creator;
#endif

#ifndef TRT_EDGE_NO_STATIC_REGISTRATION
REGISTER_TENSORRT_PLUGIN(TrtEdgeFusedAttentionCreator);
#endif

#if NV_TENSORRT_MAJOR >= 10
extern "C" TENSORRTAPI nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    static TrtEdgeFusedAttentionCreator sCreator;
    static nvinfer1::IPluginCreatorInterface* const kCreators[] = {&sCreator};
    nbCreators = 1;
    return kCreators;
}
#elif TRT_EDGE_HAS_LOGGER_FINDER
extern "C" TENSORRTAPI nvinfer1::IPluginCreator* const* getPluginCreators(int32_t& nbCreators) {
    static TrtEdgeFusedAttentionCreator sCreator;
    static nvinfer1::IPluginCreator* const kCreators[] = {&sCreator};
    nbCreators = 1;
    return kCreators;
}
#endif

#if TRT_EDGE_HAS_LOGGER_FINDER
extern "C" TENSORRTAPI void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
    trt_edge::plugin::setLoggerFinderOnce(finder);
}
#endif

// The generation this library registers, for the Python glue and build_on_device.sh (nm / ctypes).
extern "C" TENSORRTAPI int trt_edge_attention_plugin_generation(void) { return NV_TENSORRT_MAJOR >= 10 ? 3 : 2; }
