/*
 * trt-edge fused multi-head attention forward: the CUDA kernel (header-only template).
 *
 * Flash-attention style: one thread block owns kBlockM = 64 query rows of one (batch, head); it walks the
 * keys in tiles of kBlockN, computes the 64 x kBlockN scores with tensor cores (nvcuda::wmma, fp16 inputs,
 * fp32 accumulation), folds them into a running row maximum and row sum (online softmax, fp32), and
 * accumulates P.V with tensor cores into an fp32 output tile kept in shared memory. The seq_len x seq_len
 * score matrix never exists in global memory, so any sequence length works with the same shared memory.
 *
 * Why WMMA and not mma.sync PTX: WMMA 16x16x16 half is supported unchanged from sm_70 (Xavier is sm_72)
 * to sm_110 (Thor), so one source serves every Jetson and data-centre target. Its fragment layout is
 * opaque, which is why the per-row softmax rescaling happens on the shared-memory copy of the tiles.
 *
 * Layout: see fused_attention.h ("BSNH": [batch, seq, heads, head_size], row stride heads * head_size).
 * The optional additive bias [bias_batch, heads, seq, seq] (fp16) is read one score row at a time, the
 * 32 lanes of a warp on consecutive keys, and added to scale * Q.K^T before the key mask and the softmax.
 */
#ifndef TRT_EDGE_FUSED_ATTENTION_KERNEL_CUH
#define TRT_EDGE_FUSED_ATTENTION_KERNEL_CUH

#include <cuda_fp16.h>
#include <math.h>
#include <mma.h>
#include <stdint.h>

namespace trt_edge {
namespace attention {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kBlockM = 16 * kWarps;  // query rows per block: 16 per warp
// Minimum resident blocks per SM promised to ptxas through __launch_bounds__. Its register cap,
// 65536 / (1 * kThreads) = 512 -> 255 per thread, constrains nothing; what it changes is ptxas's own register
// target: without a minimum-blocks hint ptxas aims low (48 registers for sm_87 with CUDA 12.6/12.9, 80 for
// sm_72 with CUDA 11.7) and spills at head size 64 (sm_87) and 32 (sm_72). With it every (arch, head size)
// of .ci/cuda-matrix compiles spill-free, and occupancy is unchanged: shared memory, not registers, bounds
// the blocks per SM on every Jetson (docs/plugins.md, "Compile matrix").
constexpr int kMinBlocksPerSm = 1;
constexpr int kMaxSeqLen = 16384;     // keeps every index product well inside int32 / grid limits
constexpr int kVec = 8;               // halves per 16-byte vector load
constexpr float kLog2e = 1.4426950408889634f;  // softmax runs in base 2: x * log2(e), then exp2

__host__ __device__ constexpr size_t align128(size_t bytes) { return (bytes + 127) / 128 * 128; }
__host__ __device__ constexpr size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

// Shared-memory plan for one head size. Row strides are padded (+8 halves / +4 floats) to spread banks
// while keeping every WMMA tile pointer 32-byte aligned, as load/store_matrix_sync require.
template <int D>
struct Tile {
    static_assert(D == 32 || D == 64 || D == 128, "head size must be 32, 64 or 128");
    static constexpr int kBlockN = D >= 128 ? 32 : 64;  // keys per tile (smaller for D=128 to fit smem)
    static constexpr int kLdH = D + 8;                  // Q, K, V tiles (half)
    static constexpr int kLdS = kBlockN + 4;            // scores (float)
    static constexpr int kLdP = kBlockN + 8;            // probabilities (half)
    static constexpr int kLdO = D + 4;                  // output accumulator (float)
    static constexpr size_t kQBytes = sizeof(__half) * kBlockM * kLdH;
    static constexpr size_t kSBytes = align128(sizeof(float) * kBlockM * kLdS);
    static constexpr size_t kPBytes = align128(sizeof(__half) * kBlockM * kLdP);
    // Q is only read once into registers, so it shares its region with the scores and probabilities.
    static constexpr size_t kOffS = 0;
    static constexpr size_t kOffP = kSBytes;
    static constexpr size_t kOffK = align128(max_size(kQBytes, kSBytes + kPBytes));
    static constexpr size_t kOffV = kOffK + align128(sizeof(__half) * kBlockN * kLdH);
    static constexpr size_t kOffO = kOffV + align128(sizeof(__half) * kBlockN * kLdH);
    static constexpr size_t kOffM = kOffO + align128(sizeof(float) * kBlockM * kLdO);
    static constexpr size_t kOffL = kOffM + align128(sizeof(float) * kBlockM);
    static constexpr size_t kOffKeyOk = kOffL + align128(sizeof(float) * kBlockM);
    static constexpr size_t kBytes = kOffKeyOk + align128(sizeof(int) * kBlockN);
};

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
    return x;
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
    return x;
}

// Copy `rows` rows of D halves starting at position `row0` into a padded shared tile; rows at or beyond
// seq_len are zero so that they contribute nothing to the tensor-core products.
template <int D, int kLd>
__device__ __forceinline__ void load_rows(__half* __restrict__ dst, const __half* __restrict__ src, int row0,
                                          int rows, int seq_len, int ld) {
    constexpr int kVecPerRow = D / kVec;
    for (int idx = static_cast<int>(threadIdx.x); idx < rows * kVecPerRow; idx += kThreads) {
        const int r = idx / kVecPerRow;
        const int c = (idx % kVecPerRow) * kVec;
        uint4 value = make_uint4(0u, 0u, 0u, 0u);
        if (row0 + r < seq_len) {
            value = *reinterpret_cast<const uint4*>(src + static_cast<size_t>(row0 + r) * ld + c);
        }
        *reinterpret_cast<uint4*>(dst + r * kLd + c) = value;
    }
}

template <int D>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm)
    fused_attention_kernel(const __half* __restrict__ q, const __half* __restrict__ k, const __half* __restrict__ v,
                           const int32_t* __restrict__ key_mask, const __half* __restrict__ bias, int bias_batch,
                           __half* __restrict__ out, int seq_len, int num_heads, float scale_log2, int causal) {
    using namespace nvcuda;
    using T = Tile<D>;
    constexpr int BN = T::kBlockN;
    constexpr int kPerLane = BN / 32;

    extern __shared__ __align__(128) unsigned char smem[];
    __half* s_q = reinterpret_cast<__half*>(smem);  // aliases s_s / s_p, read once before the key loop
    float* s_s = reinterpret_cast<float*>(smem + T::kOffS);
    __half* s_p = reinterpret_cast<__half*>(smem + T::kOffP);
    __half* s_k = reinterpret_cast<__half*>(smem + T::kOffK);
    __half* s_v = reinterpret_cast<__half*>(smem + T::kOffV);
    float* s_o = reinterpret_cast<float*>(smem + T::kOffO);
    float* s_m = reinterpret_cast<float*>(smem + T::kOffM);
    float* s_l = reinterpret_cast<float*>(smem + T::kOffL);
    int* s_key_ok = reinterpret_cast<int*>(smem + T::kOffKeyOk);

    const int tid = static_cast<int>(threadIdx.x);
    const int warp = tid / 32;
    const int lane = tid % 32;
    const int q0 = static_cast<int>(blockIdx.x) * kBlockM;
    const int head = static_cast<int>(blockIdx.y);
    const int b = static_cast<int>(blockIdx.z);
    const int ld = num_heads * D;
    const size_t base = static_cast<size_t>(b) * seq_len * ld + static_cast<size_t>(head) * D;

    load_rows<D, T::kLdH>(s_q, q + base, q0, kBlockM, seq_len, ld);
    for (int idx = tid; idx < kBlockM * T::kLdO; idx += kThreads) s_o[idx] = 0.0f;
    for (int r = tid; r < kBlockM; r += kThreads) {
        s_m[r] = -INFINITY;
        s_l[r] = 0.0f;
    }
    __syncthreads();

    wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> q_frag[D / 16];
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        wmma::load_matrix_sync(q_frag[kk], s_q + warp * 16 * T::kLdH + kk * 16, T::kLdH);
    }
    __syncthreads();  // the Q region is overwritten by scores from here on

    // Causal: keys beyond the block's last query are never needed.
    const int kv_end = causal ? min(seq_len, q0 + kBlockM) : seq_len;
    const int32_t* mask_row = key_mask == nullptr ? nullptr : key_mask + static_cast<size_t>(b) * seq_len;
    // Additive bias [bias_batch, num_heads, seq, seq] (bias_batch 1 broadcasts over the batch): the plane of
    // this (batch, head); row qi starts at qi * seq_len. Scaled by log2(e) like the scores (exp2 softmax).
    const __half* bias_plane =
        bias == nullptr ? nullptr
                        : bias + (static_cast<size_t>(bias_batch == 1 ? 0 : b) * num_heads + head) *
                                     static_cast<size_t>(seq_len) * seq_len;

    for (int k0 = 0; k0 < kv_end; k0 += BN) {
        __syncthreads();  // every warp is done with the previous K/V tile
        load_rows<D, T::kLdH>(s_k, k + base, k0, BN, seq_len, ld);
        load_rows<D, T::kLdH>(s_v, v + base, k0, BN, seq_len, ld);
        for (int j = tid; j < BN; j += kThreads) {
            const int kj = k0 + j;
            s_key_ok[j] = kj < seq_len && (mask_row == nullptr || mask_row[kj] != 0);
        }
        __syncthreads();

        // Scores of this warp's 16 rows against the BN keys of the tile.
#pragma unroll
        for (int n = 0; n < BN / 16; ++n) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> s_frag;
            wmma::fill_fragment(s_frag, 0.0f);
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> k_frag;
                wmma::load_matrix_sync(k_frag, s_k + n * 16 * T::kLdH + kk * 16, T::kLdH);
                wmma::mma_sync(s_frag, q_frag[kk], k_frag, s_frag);
            }
            wmma::store_matrix_sync(s_s + warp * 16 * T::kLdS + n * 16, s_frag, T::kLdS, wmma::mem_row_major);
        }
        __syncwarp();

        // Online softmax, one row at a time: new running max, probabilities, rescale of O and the row sum.
        for (int rr = 0; rr < 16; ++rr) {
            const int r = warp * 16 + rr;
            const int qi = q0 + r;
            const float* s_row = s_s + r * T::kLdS;
            const __half* bias_row =
                bias_plane == nullptr || qi >= seq_len ? nullptr : bias_plane + static_cast<size_t>(qi) * seq_len + k0;
            float x[kPerLane];
            float tile_max = -INFINITY;
#pragma unroll
            for (int t = 0; t < kPerLane; ++t) {
                const int j = lane + 32 * t;
                const bool ok = s_key_ok[j] != 0 && (!causal || k0 + j <= qi);
                // s_key_ok[j] implies k0 + j < seq_len, so the bias read stays inside the row.
                const float add = ok && bias_row != nullptr ? __half2float(bias_row[j]) * kLog2e : 0.0f;
                x[t] = ok ? s_row[j] * scale_log2 + add : -INFINITY;
                tile_max = fmaxf(tile_max, x[t]);
            }
            tile_max = warp_max(tile_max);
            const float m_old = s_m[r];
            const float m_new = fmaxf(m_old, tile_max);
            __half* p_row = s_p + r * T::kLdP;
            float alpha = 1.0f;
            float p_sum = 0.0f;
            if (m_new == -INFINITY) {
#pragma unroll
                for (int t = 0; t < kPerLane; ++t) p_row[lane + 32 * t] = __float2half(0.0f);
            } else {
                alpha = exp2f(m_old - m_new);  // 0 when m_old is -inf
#pragma unroll
                for (int t = 0; t < kPerLane; ++t) {
                    const float p = exp2f(x[t] - m_new);  // 0 for masked keys
                    p_sum += p;
                    p_row[lane + 32 * t] = __float2half(p);
                }
            }
            p_sum = warp_sum(p_sum);
            float* o_row = s_o + r * T::kLdO;
            for (int d = lane; d < D; d += 32) o_row[d] *= alpha;
            __syncwarp();  // every lane has read s_m[r] before lane 0 updates it
            if (lane == 0) {
                s_m[r] = m_new;
                s_l[r] = s_l[r] * alpha + p_sum;
            }
        }
        __syncwarp();

        // O += P . V for this warp's rows.
#pragma unroll
        for (int dn = 0; dn < D / 16; ++dn) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> o_frag;
            float* o_tile = s_o + warp * 16 * T::kLdO + dn * 16;
            wmma::load_matrix_sync(o_frag, o_tile, T::kLdO, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < BN / 16; ++kk) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> p_frag;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> v_frag;
                wmma::load_matrix_sync(p_frag, s_p + warp * 16 * T::kLdP + kk * 16, T::kLdP);
                wmma::load_matrix_sync(v_frag, s_v + kk * 16 * T::kLdH + dn * 16, T::kLdH);
                wmma::mma_sync(o_frag, p_frag, v_frag, o_frag);
            }
            wmma::store_matrix_sync(o_tile, o_frag, T::kLdO, wmma::mem_row_major);
        }
        __syncwarp();
    }
    __syncwarp();

    // Normalise and write this warp's rows; a row with every key masked has l == 0 and is written as 0.
    for (int rr = 0; rr < 16; ++rr) {
        const int r = warp * 16 + rr;
        const int qi = q0 + r;
        if (qi >= seq_len) break;
        const float l = s_l[r];
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        const float* o_row = s_o + r * T::kLdO;
        __half2* dst = reinterpret_cast<__half2*>(out + base + static_cast<size_t>(qi) * ld);
        for (int d2 = lane; d2 < D / 2; d2 += 32) {
            dst[d2] = __floats2half2_rn(o_row[2 * d2] * inv, o_row[2 * d2 + 1] * inv);
        }
    }
}

}  // namespace attention
}  // namespace trt_edge

#endif  // TRT_EDGE_FUSED_ATTENTION_KERNEL_CUH
