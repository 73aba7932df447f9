// Which backends this build of libtrt_edge has; the missing ones refuse in one line.
#include "trt_edge/trt_edge.hpp"

namespace trt_edge {

#ifndef TRT_EDGE_HAVE_ONNXRUNTIME
std::unique_ptr<Backend> make_onnxruntime_backend(const std::string& onnx_path, int) {
    throw Error(onnx_path + ": this libtrt_edge was built without ONNX Runtime (run cpp/fetch-onnxruntime.sh and rebuild)");
}
std::string onnxruntime_version() { return ""; }
#endif

#ifdef TRT_EDGE_HAVE_TENSORRT
bool has_tensorrt_backend() { return true; }
#else
bool has_tensorrt_backend() { return false; }
std::unique_ptr<Backend> make_tensorrt_backend(const std::string& plan_path, bool) {
    throw Error(plan_path + ": this libtrt_edge was built without TensorRT (build it on the Jetson, where JetPack has it)");
}
#endif

}  // namespace trt_edge
