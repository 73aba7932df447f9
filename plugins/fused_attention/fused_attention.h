/*
 * trt-edge fused multi-head attention: the C ABI.
 *
 * One call computes, for every batch b, head n and query position i,
 *
 *     out[b, i, n, :] = sum_j softmax_j(scale * <q[b, i, n, :], k[b, j, n, :]> + bias[b', n, i, j] + mask(b, i, j))
 *                       * v[b, j, n, :]
 *
 * with mask(b, i, j) = -inf where key_mask[b, j] == 0 (key padding) or, when causal, where j > i, and the
 * optional additive bias (relative-position bias, ALiBi, MPNet/T5-style) read at b' = 0 when bias_batch is 1
 * (one bias for every batch row) or b' = b when bias_batch equals batch.
 * A query row whose keys are all masked yields zeros (what the exported ONNX graph computes through its
 * IsNaN guard; PyTorch SDPA would give NaN there).
 *
 * Layout ("BSNH"): q, k, v and out are fp16 tensors of shape [batch, seq_len, num_heads, head_size],
 * contiguous, i.e. exactly the [batch, seq_len, hidden] outputs of the Q/K/V projections of a BERT-family
 * model. This layout is chosen because it is what the ONNX graph already holds before its
 * Reshape -> Transpose(0, 2, 1, 3) head split and after its Transpose -> Reshape head merge: the ONNX
 * rewrite replaces everything between the projections and the output projection with one node, with no
 * reshapes or transposes left around it, and the kernel reads the heads with a row stride of
 * num_heads * head_size instead of moving data.
 *
 * key_mask is int32 [mask_batch, mask_len] (1 = attend, 0 = padding), the model's attention_mask cast to
 * int32; mask_batch must equal batch and mask_len must equal seq_len. NULL means no padding (ViT, DeiT).
 *
 * bias (trt_edge_attention_forward_bias only) is fp16 [bias_batch, num_heads, seq_len, seq_len], contiguous,
 * 2-byte aligned, bias_batch in {1, batch}; NULL means no bias. It is added before the key mask, so a
 * padded key stays excluded whatever its bias.
 *
 * Accumulation is fp32, softmax is computed online (flash-attention style): the seq_len x seq_len score
 * matrix never reaches global memory. Tensor cores are used through nvcuda::wmma (sm_70 and newer).
 *
 * All pointers are device pointers and must be 16-byte aligned. The call is asynchronous on `stream`
 * (a cudaStream_t passed as void*, NULL = the legacy default stream) and returns a status code.
 */
#ifndef TRT_EDGE_FUSED_ATTENTION_H
#define TRT_EDGE_FUSED_ATTENTION_H

#include <stdint.h>

#if defined(_WIN32)
#define TRT_EDGE_API __declspec(dllexport)
#else
#define TRT_EDGE_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by trt_edge_attention_forward. */
enum trt_edge_attention_status {
    TRT_EDGE_ATTENTION_OK = 0,
    TRT_EDGE_ATTENTION_ERR_HEAD_SIZE = 1,   /* head_size not in {32, 64, 128} */
    TRT_EDGE_ATTENTION_ERR_SEQ_LEN = 2,     /* seq_len < 1 or > trt_edge_attention_max_seq_len() */
    TRT_EDGE_ATTENTION_ERR_MASK_SHAPE = 3,  /* key_mask is not [batch, seq_len] */
    TRT_EDGE_ATTENTION_ERR_ARGUMENT = 4,    /* batch/num_heads out of range, NULL or misaligned pointer */
    TRT_EDGE_ATTENTION_ERR_CUDA = 5,        /* a CUDA call failed (launch, shared-memory attribute) */
    TRT_EDGE_ATTENTION_ERR_BIAS_SHAPE = 6   /* bias is not [1 or batch, num_heads, seq_len, seq_len] (ABI 2) */
};

/* Version of the ABI below; bumped when a signature or the layout changes.
 * 1: forward/check. 2: adds forward_bias/check_bias and ERR_BIAS_SHAPE (version-1 calls unchanged). */
TRT_EDGE_API int trt_edge_attention_abi_version(void);

/* Largest supported seq_len (the kernel has no S x S buffer; this bound keeps indices in int32). */
TRT_EDGE_API int trt_edge_attention_max_seq_len(void);

/* 1 when head_size is supported (32, 64 or 128). */
TRT_EDGE_API int trt_edge_attention_supports_head_size(int head_size);

/* A short static description of a status code. */
TRT_EDGE_API const char* trt_edge_attention_status_string(int status);

/* Validate the arguments only (no CUDA call): the status trt_edge_attention_forward would return before
 * launching. Lets tests and the TensorRT plugin check shapes without a GPU. */
TRT_EDGE_API int trt_edge_attention_check(int batch, int seq_len, int num_heads, int head_size,
                                          int mask_batch, int mask_len);

/* The same with an additive bias of shape [bias_batch, bias_heads, bias_rows, bias_cols]; all four 0 = no bias. */
TRT_EDGE_API int trt_edge_attention_check_bias(int batch, int seq_len, int num_heads, int head_size, int mask_batch,
                                               int mask_len, int bias_batch, int bias_heads, int bias_rows,
                                               int bias_cols);

/* Fused attention forward (see the layout above), no bias. Returns a trt_edge_attention_status. */
TRT_EDGE_API int trt_edge_attention_forward(const void* q, const void* k, const void* v, const int32_t* key_mask,
                                            void* out, int batch, int seq_len, int num_heads, int head_size,
                                            int mask_batch, int mask_len, float scale, int causal, void* stream);

/* Fused attention forward with an optional additive bias (NULL = none; then bias_batch is ignored). */
TRT_EDGE_API int trt_edge_attention_forward_bias(const void* q, const void* k, const void* v,
                                                 const int32_t* key_mask, const void* bias, void* out, int batch,
                                                 int seq_len, int num_heads, int head_size, int mask_batch,
                                                 int mask_len, int bias_batch, float scale, int causal,
                                                 void* stream);

#ifdef __cplusplus
}
#endif

#endif /* TRT_EDGE_FUSED_ATTENTION_H */
