/*
 * trt-edge fused multi-head attention: argument checks, dispatch on head size, and the C ABI.
 */
#include "fused_attention.h"

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

#include "fused_attention_kernel.cuh"

namespace {

using trt_edge::attention::fused_attention_kernel;
using trt_edge::attention::kBlockM;
using trt_edge::attention::kLog2e;
using trt_edge::attention::kMaxSeqLen;
using trt_edge::attention::kThreads;
using trt_edge::attention::Tile;

// 2: the additive bias (trt_edge_attention_forward_bias / _check_bias) and status ERR_BIAS_SHAPE.
constexpr int kAbiVersion = 2;
constexpr int kMaxDevices = 64;

bool aligned16(const void* ptr) { return (reinterpret_cast<std::uintptr_t>(ptr) & 15u) == 0u; }

// Raising the dynamic shared-memory limit is a per-device, per-kernel attribute: done once per device.
template <int D>
cudaError_t ensure_smem_attribute() {
    static std::atomic<std::uint64_t> configured{0};
    int device = 0;
    cudaError_t err = cudaGetDevice(&device);
    if (err != cudaSuccess) return err;
    const std::uint64_t bit = device < kMaxDevices ? (std::uint64_t{1} << device) : 0u;
    if (bit != 0u && (configured.load(std::memory_order_acquire) & bit) != 0u) return cudaSuccess;
    err = cudaFuncSetAttribute(fused_attention_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(Tile<D>::kBytes));
    if (err == cudaSuccess && bit != 0u) configured.fetch_or(bit, std::memory_order_acq_rel);
    return err;
}

template <int D>
int launch(const void* q, const void* k, const void* v, const int32_t* key_mask, const void* bias, int bias_batch,
           void* out, int batch, int seq_len, int num_heads, float scale, int causal, cudaStream_t stream) {
    if (ensure_smem_attribute<D>() != cudaSuccess) return TRT_EDGE_ATTENTION_ERR_CUDA;
    const dim3 grid(static_cast<unsigned>((seq_len + kBlockM - 1) / kBlockM), static_cast<unsigned>(num_heads),
                    static_cast<unsigned>(batch));
    fused_attention_kernel<D><<<grid, kThreads, Tile<D>::kBytes, stream>>>(
        static_cast<const __half*>(q), static_cast<const __half*>(k), static_cast<const __half*>(v), key_mask,
        static_cast<const __half*>(bias), bias_batch, static_cast<__half*>(out), seq_len, num_heads, scale * kLog2e,
        causal != 0 ? 1 : 0);
    return cudaGetLastError() == cudaSuccess ? TRT_EDGE_ATTENTION_OK : TRT_EDGE_ATTENTION_ERR_CUDA;
}

}  // namespace

extern "C" {

int trt_edge_attention_abi_version(void) { return kAbiVersion; }

int trt_edge_attention_max_seq_len(void) { return kMaxSeqLen; }

int trt_edge_attention_supports_head_size(int head_size) {
    return head_size == 32 || head_size == 64 || head_size == 128 ? 1 : 0;
}

const char* trt_edge_attention_status_string(int status) {
    switch (status) {
        case TRT_EDGE_ATTENTION_OK:
            return "ok";
        case TRT_EDGE_ATTENTION_ERR_HEAD_SIZE:
            return "unsupported head size (supported: 32, 64, 128)";
        case TRT_EDGE_ATTENTION_ERR_SEQ_LEN:
            return "sequence length out of range (1 .. trt_edge_attention_max_seq_len())";
        case TRT_EDGE_ATTENTION_ERR_MASK_SHAPE:
            return "key mask shape must be [batch, seq_len]";
        case TRT_EDGE_ATTENTION_ERR_ARGUMENT:
            return "invalid argument (batch or num_heads out of range, NULL or misaligned pointer)";
        case TRT_EDGE_ATTENTION_ERR_CUDA:
            return "CUDA error (kernel launch or shared-memory attribute)";
        case TRT_EDGE_ATTENTION_ERR_BIAS_SHAPE:
            return "bias shape must be [1 or batch, num_heads, seq_len, seq_len]";
        default:
            return "unknown status";
    }
}

int trt_edge_attention_check(int batch, int seq_len, int num_heads, int head_size, int mask_batch, int mask_len) {
    return trt_edge_attention_check_bias(batch, seq_len, num_heads, head_size, mask_batch, mask_len, 0, 0, 0, 0);
}

int trt_edge_attention_check_bias(int batch, int seq_len, int num_heads, int head_size, int mask_batch, int mask_len,
                                  int bias_batch, int bias_heads, int bias_rows, int bias_cols) {
    if (trt_edge_attention_supports_head_size(head_size) == 0) return TRT_EDGE_ATTENTION_ERR_HEAD_SIZE;
    if (seq_len < 1 || seq_len > kMaxSeqLen) return TRT_EDGE_ATTENTION_ERR_SEQ_LEN;
    if (batch < 1 || batch > 65535 || num_heads < 1 || num_heads > 65535) return TRT_EDGE_ATTENTION_ERR_ARGUMENT;
    if (mask_batch != batch || mask_len != seq_len) return TRT_EDGE_ATTENTION_ERR_MASK_SHAPE;
    const bool no_bias = bias_batch == 0 && bias_heads == 0 && bias_rows == 0 && bias_cols == 0;
    if (!no_bias && ((bias_batch != 1 && bias_batch != batch) || bias_heads != num_heads || bias_rows != seq_len ||
                     bias_cols != seq_len)) {
        return TRT_EDGE_ATTENTION_ERR_BIAS_SHAPE;
    }
    return TRT_EDGE_ATTENTION_OK;
}

int trt_edge_attention_forward(const void* q, const void* k, const void* v, const int32_t* key_mask, void* out,
                               int batch, int seq_len, int num_heads, int head_size, int mask_batch, int mask_len,
                               float scale, int causal, void* stream) {
    return trt_edge_attention_forward_bias(q, k, v, key_mask, nullptr, out, batch, seq_len, num_heads, head_size,
                                           mask_batch, mask_len, 0, scale, causal, stream);
}

int trt_edge_attention_forward_bias(const void* q, const void* k, const void* v, const int32_t* key_mask,
                                    const void* bias, void* out, int batch, int seq_len, int num_heads,
                                    int head_size, int mask_batch, int mask_len, int bias_batch, float scale,
                                    int causal, void* stream) {
    // A NULL mask means "no padding" and a NULL bias "no bias": their shapes are then whatever the check expects.
    const bool has_bias = bias != nullptr;
    const int status = trt_edge_attention_check_bias(
        batch, seq_len, num_heads, head_size, key_mask == nullptr ? batch : mask_batch,
        key_mask == nullptr ? seq_len : mask_len, has_bias ? bias_batch : 0, has_bias ? num_heads : 0,
        has_bias ? seq_len : 0, has_bias ? seq_len : 0);
    if (status != TRT_EDGE_ATTENTION_OK) return status;
    if (q == nullptr || k == nullptr || v == nullptr || out == nullptr) return TRT_EDGE_ATTENTION_ERR_ARGUMENT;
    if (!aligned16(q) || !aligned16(k) || !aligned16(v) || !aligned16(out)) return TRT_EDGE_ATTENTION_ERR_ARGUMENT;
    if (has_bias && (reinterpret_cast<std::uintptr_t>(bias) & 1u) != 0u) return TRT_EDGE_ATTENTION_ERR_ARGUMENT;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    const int bb = has_bias ? bias_batch : 0;
    switch (head_size) {
        case 32:
            return launch<32>(q, k, v, key_mask, bias, bb, out, batch, seq_len, num_heads, scale, causal, s);
        case 64:
            return launch<64>(q, k, v, key_mask, bias, bb, out, batch, seq_len, num_heads, scale, causal, s);
        default:
            return launch<128>(q, k, v, key_mask, bias, bb, out, batch, seq_len, num_heads, scale, causal, s);
    }
}

}  // extern "C"
