// y = x @ W.T for the few rows of a decode step, reading W once at memory speed (AVX2 + FMA).
//
// Weight kinds (Kind): float32 and bfloat16 rows; int8 rows with one float scale per row; and
// GGUF's own quantized blocks of 32 weights (ggml's Q4_0, Q4_1, Q8_0 layouts, unchanged). Against
// int8 and block weights, x is quantized per block of 32 (llama.cpp's Q8_0, plus each block's
// integer sum for Q4_0's offset and Q4_1's minimum) and each block's products are summed in
// integers (maddubs/madd), then scaled: about a third of the instructions of converting every
// weight to float, so the stream stays memory-bound. Weight rows are streamed once: each block of
// R rows is multiplied into every x row while it sits in L1 (batch 8 costs little more than batch
// 1), with software prefetch ahead. Each output is summed in the same order whatever M is, so a
// row's result does not depend on what else is in the batch.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "simd.h"

namespace llama_kernels {

enum Kind : int64_t { F32 = 0, BF16 = 1, I8ROW = 2, Q4_0 = 3, Q4_1 = 4, Q8_0 = 5 };
constexpr int QB = 32;  // values per quantized block (GGUF's and x's)

inline bool is_block_kind(int64_t kind) { return kind == Q4_0 || kind == Q4_1 || kind == Q8_0; }
inline int64_t block_bytes(int64_t kind) { return kind == Q4_0 ? 18 : kind == Q4_1 ? 20 : 34; }

// One weight matrix (N, K) as the kernels read it. Float and int8 rows are K values apart; a block
// row is K / 32 blocks of block_bytes(kind).
struct WeightRef {
  int64_t kind;
  const void* data;
  const float* scale;  // I8ROW: (N,); else nullptr
  int64_t N, K;
  int64_t row_bytes() const {
    return is_block_kind(kind) ? K / QB * block_bytes(kind) : K * (kind == F32 ? 4 : kind == BF16 ? 2 : 1);
  }
};

// Weight rows per block: eight streams in flight per core. Against 4, interleaved in one process on the
// demo model's matrices (2 threads): fp32 83 -> 93% of torch.sum's read bandwidth, int8 66 -> 69-72%.
constexpr int R = 8;
// Software prefetch distance. The hardware prefetcher alone leaves the core waiting on DRAM
// (measured on a 2-core EPYC: int8 3.1 -> 5.4 GB/s, bf16 5.2 -> 7.2, fp32 7.2 -> 8.4 per core).
constexpr int PF_BLOCKS = 2;

// RB consecutive rows of w (from w0, stride K) against MB rows of x (float): RB * MB independent
// accumulators, enough to hide the FMA latency while the weights stream in.
template <int RB, int MB, typename W>
inline void dot_block(const float* x, int64_t K, const W* w0, float* out /* (MB, RB) */) {
  __m256 acc[MB][RB];
  for (int m = 0; m < MB; ++m)
    for (int r = 0; r < RB; ++r) acc[m][r] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    if ((k * sizeof(W)) % 64 == 0)  // once a cache line: the same columns PF_BLOCKS blocks ahead
      for (int r = 0; r < RB; ++r) _mm_prefetch(reinterpret_cast<const char*>(w0 + (PF_BLOCKS * RB + r) * K + k), _MM_HINT_T0);
    __m256 v[RB];
    for (int r = 0; r < RB; ++r) v[r] = load8(w0 + r * K + k);
    for (int m = 0; m < MB; ++m) {
      __m256 xv = _mm256_loadu_ps(x + m * K + k);
      for (int r = 0; r < RB; ++r) acc[m][r] = _mm256_fmadd_ps(xv, v[r], acc[m][r]);
    }
  }
  for (int m = 0; m < MB; ++m)
    for (int r = 0; r < RB; ++r) {
      float s = hsum(acc[m][r]);
      for (int64_t j = k; j < K; ++j) s += x[m * K + j] * to_float(w0[r * K + j]);
      out[m * RB + r] = s;
    }
}

// x (M, K) in blocks of 32: q (M, K) int8, d (M, K/32) the blocks' scales (max |x| / 127), and
// isum (M, K/32) each block's sum of q.
struct QuantizedX {
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int32_t> isum;
};

inline void quantize_x(const float* x, int64_t M, int64_t K, QuantizedX& out) {
  const int64_t n = M * K / QB;
  out.q.resize(M * K);
  out.d.resize(n);
  out.isum.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const float* xb = x + i * QB;
    float amax = 0.f;
    for (int j = 0; j < QB; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.f, inv = d > 0.f ? 1.f / d : 0.f;
    int32_t s = 0;
    for (int j = 0; j < QB; ++j) s += out.q[i * QB + j] = static_cast<int8_t>(std::nearbyint(xb[j] * inv));
    out.d[i] = d;
    out.isum[i] = s;
  }
}

// int8 rows against int8 x blocks (W8A8, per-row weight scale applied by the caller).
template <int RB, int MB>
inline void dot_block_q8(const int8_t* qx, const float* sx, int64_t K, const int8_t* w0, float* out /* (MB, RB) */) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[MB][RB];
  for (int m = 0; m < MB; ++m)
    for (int r = 0; r < RB; ++r) acc[m][r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; k += QB) {
    for (int r = 0; r < RB; ++r) _mm_prefetch(reinterpret_cast<const char*>(w0 + (PF_BLOCKS * RB + r) * K + k), _MM_HINT_T0);
    __m256i v[RB];
    for (int r = 0; r < RB; ++r) v[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0 + r * K + k));
    for (int m = 0; m < MB; ++m) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qx + m * K + k));
      const __m256i ax = _mm256_sign_epi8(xv, xv);  // |x| as unsigned; w takes x's sign instead
      const __m256 d = _mm256_set1_ps(sx[m * (K / QB) + k / QB]);
      for (int r = 0; r < RB; ++r) {
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(v[r], xv)), ones);
        acc[m][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc[m][r]);
      }
    }
  }
  for (int m = 0; m < MB; ++m)
    for (int r = 0; r < RB; ++r) out[m * RB + r] = hsum(acc[m][r]);
}

inline float half_to_float(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// GGUF blocks against x blocks. A block's weights are d * q (Q8_0: q int8; Q4_0: q = nibble - 8)
// or d * q + m (Q4_1: q = nibble); nibbles: the low ones are values 0..15, the high ones 16..31.
// sum_j w_j x_j = dx * (d * sum_j q_j qx_j + [Q4_0: -8 d | Q4_1: m] * sum_j qx_j).
template <int RB, int MB, int KIND>
inline void dot_block_gguf(const QuantizedX& xq, int64_t m0, int64_t K, const uint8_t* w0, int64_t row_bytes,
                           float* out /* (MB, RB) */) {
  constexpr int BS = KIND == Q4_0 ? 18 : KIND == Q4_1 ? 20 : 34;
  constexpr int QS = KIND == Q4_1 ? 4 : 2;  // offset of the quants in a block
  const int64_t nb = K / QB;
  const __m256i ones = _mm256_set1_epi16(1);
  const __m128i low = _mm_set1_epi8(0x0F);
  __m256 acc[MB][RB];
  float offset[MB][RB];
  for (int m = 0; m < MB; ++m)
    for (int r = 0; r < RB; ++r) acc[m][r] = _mm256_setzero_ps(), offset[m][r] = 0.f;
  for (int64_t b = 0; b < nb; ++b) {
    if ((b * BS) % 64 < BS)  // about once a cache line
      for (int r = 0; r < RB; ++r) _mm_prefetch(reinterpret_cast<const char*>(w0 + (PF_BLOCKS * RB + r) * row_bytes + b * BS), _MM_HINT_T0);
    __m256i v[RB];
    float d[RB], mn[RB];
    for (int r = 0; r < RB; ++r) {
      const uint8_t* blk = w0 + r * row_bytes + b * BS;
      d[r] = half_to_float(blk);
      mn[r] = KIND == Q4_1 ? half_to_float(blk + 2) : KIND == Q4_0 ? -8.f * d[r] : 0.f;
      if constexpr (KIND == Q8_0) {
        v[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + QS));
      } else {
        const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + QS));
        v[r] = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), low), _mm_and_si128(raw, low));
      }
    }
    for (int m = 0; m < MB; ++m) {
      const int64_t xb = (m0 + m) * nb + b;
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq.q.data() + xb * QB));
      const float dx = xq.d[xb];
      for (int r = 0; r < RB; ++r) {
        __m256i p;
        if constexpr (KIND == Q8_0) {  // signed x signed: |x| times w with x's sign
          p = _mm256_maddubs_epi16(_mm256_sign_epi8(xv, xv), _mm256_sign_epi8(v[r], xv));
        } else {  // nibbles are unsigned already
          p = _mm256_maddubs_epi16(v[r], xv);
        }
        p = _mm256_madd_epi16(p, ones);
        acc[m][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d[r] * dx), acc[m][r]);
        if constexpr (KIND != Q8_0) offset[m][r] += mn[r] * dx * static_cast<float>(xq.isum[xb]);
      }
    }
  }
  for (int m = 0; m < MB; ++m)
    for (int r = 0; r < RB; ++r) out[m * RB + r] = hsum(acc[m][r]) + offset[m][r];
}

template <int N>
using Int = std::integral_constant<int, N>;

// Output rows [n0, n1) for every row of x, R weight rows at a time (a short last block row by row).
// dot(rows, x_rows, m, n, out) fills out (x_rows, rows) for x rows m.. and weight rows n..;
// y[m, n] = out * scale[n] (+ y[m, n] when accumulating: a residual added in place).
template <typename Dot>
void rows_range(int64_t M, int64_t n0, int64_t n1, const float* scale, float* y, int64_t N, bool accumulate, const Dot& dot) {
  float out[2 * R];
  for (int64_t n = n0; n < n1; n += R) {
    const int rows = static_cast<int>(std::min<int64_t>(R, n1 - n));
    for (int64_t m = 0; m < M; m += 2) {
      const int mb = static_cast<int>(std::min<int64_t>(2, M - m));
      if (rows == R) {
        mb == 2 ? dot(Int<R>{}, Int<2>{}, m, n, out) : dot(Int<R>{}, Int<1>{}, m, n, out);
      } else {
        for (int r = 0; r < rows; ++r) {
          float o[2];
          mb == 2 ? dot(Int<1>{}, Int<2>{}, m, n + r, o) : dot(Int<1>{}, Int<1>{}, m, n + r, o);
          for (int j = 0; j < mb; ++j) out[j * R + r] = o[j];
        }
      }
      for (int j = 0; j < mb; ++j)
        for (int r = 0; r < rows; ++r) {
          float& dst = y[(m + j) * N + n + r];
          const float v = out[j * R + r] * (scale ? scale[n + r] : 1.f);
          dst = accumulate ? dst + v : v;
        }
    }
  }
}

// Does w's kind take x quantized (quantize_x first)?
inline bool takes_quantized_x(const WeightRef& w) {
  return is_block_kind(w.kind) || (w.kind == I8ROW && w.K % QB == 0);
}

// y[:, n0:n1] (= or +=) x (M, K) @ w[n0:n1].T; xq: x quantized when takes_quantized_x(w).
inline void matmul_rows(const WeightRef& w, const float* x, const QuantizedX& xq, int64_t M, int64_t n0, int64_t n1,
                        float* y, bool accumulate) {
  const int64_t K = w.K, rb = w.row_bytes();
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  auto float_x = [&](const auto* wp) {
    rows_range(M, n0, n1, w.scale, y, w.N, accumulate, [&](auto r, auto mb, int64_t m, int64_t n, float* out) {
      dot_block<decltype(r)::value, decltype(mb)::value>(x + m * K, K, wp + n * K, out);
    });
  };
  auto gguf = [&](auto kind) {
    rows_range(M, n0, n1, nullptr, y, w.N, accumulate, [&](auto r, auto mb, int64_t m, int64_t n, float* out) {
      dot_block_gguf<decltype(r)::value, decltype(mb)::value, decltype(kind)::value>(xq, m, K, base + n * rb, rb, out);
    });
  };
  switch (w.kind) {
    case F32: float_x(static_cast<const float*>(w.data)); break;
    case BF16: float_x(static_cast<const c10::BFloat16*>(w.data)); break;
    case I8ROW:
      if (K % QB != 0) {  // no whole blocks: float x against the int8 weights
        float_x(static_cast<const int8_t*>(w.data));
        break;
      }
      rows_range(M, n0, n1, w.scale, y, w.N, accumulate, [&](auto r, auto mb, int64_t m, int64_t n, float* out) {
        dot_block_q8<decltype(r)::value, decltype(mb)::value>(xq.q.data() + m * K, xq.d.data() + m * (K / QB), K,
                                                              static_cast<const int8_t*>(w.data) + n * K, out);
      });
      break;
    case Q4_0: gguf(Int<Q4_0>{}); break;
    case Q4_1: gguf(Int<Q4_1>{}); break;
    case Q8_0: gguf(Int<Q8_0>{}); break;
  }
}

}  // namespace llama_kernels
