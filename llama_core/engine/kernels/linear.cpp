// y = x @ w.T (* scale) for the few rows of a decode step, reading w once at memory speed.
//
// x: (M, K) any float dtype; w: (N, K) float32, bfloat16 or int8 (then scale: (N,) float32, one
// per output row, and x is quantized to int8 per block of 32 when K allows: W8A8, see
// dot_block_q8); y: (M, N) in x's dtype. Built for AVX2 + FMA. Weight rows are streamed once:
// each block of R rows is multiplied into every input row while it sits in L1, so batch 8 costs
// little more than batch 1. Each output is summed in the same order whatever M is, so a row's
// result does not depend on what else is in the batch. Threads split the output rows (torch's
// intra-op pool).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <type_traits>
#include <vector>

#include "simd.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

namespace {

using namespace llama_kernels;

constexpr int R = 4;  // weight rows per block
// Software prefetch distance. The hardware prefetcher alone leaves the core waiting on DRAM
// (measured on a 2-core EPYC: int8 3.1 -> 5.4 GB/s, bf16 5.2 -> 7.2, fp32 7.2 -> 8.4 per core).
constexpr int PF_BLOCKS = 2;

// RB consecutive rows of w (from w0, stride K) against MB rows of x: RB * MB independent accumulators,
// enough to hide the FMA latency while the weights stream in.
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

// int8 weights against int8 activations (W8A8): x is quantized per block of QB values, and each
// block's 32 products are summed in integers (maddubs/madd), then scaled by the block's scale:
// about a third of the instructions of converting every weight to float, so the int8 stream
// is no longer compute-bound. The quantization of x is llama.cpp's Q8_0.
constexpr int QB = 32;

void quantize_blocks(const float* x, int64_t M, int64_t K, int8_t* qx, float* sx) {
  for (int64_t i = 0; i < M * K / QB; ++i) {
    const float* xb = x + i * QB;
    float amax = 0.f;
    for (int j = 0; j < QB; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.f, inv = d > 0.f ? 1.f / d : 0.f;
    for (int j = 0; j < QB; ++j) qx[i * QB + j] = static_cast<int8_t>(std::nearbyint(xb[j] * inv));
    sx[i] = d;
  }
}

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

template <int N>
using Int = std::integral_constant<int, N>;

// Output rows [n0, n1) for every row of x, R weight rows at a time (a short last block row by row).
// dot(rows, x_rows, m, n, out) fills out (x_rows, rows) for x rows m.. and weight rows n..
template <typename Dot>
void rows_range(int64_t M, int64_t n0, int64_t n1, const float* scale, float* y, int64_t N, const Dot& dot) {
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
        for (int r = 0; r < rows; ++r) y[(m + j) * N + n + r] = out[j * R + r] * (scale ? scale[n + r] : 1.f);
    }
  }
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& scale) {
  TORCH_CHECK(w.dim() == 2 && w.is_contiguous(), "weight must be a contiguous (N, K) matrix");
  const int64_t N = w.size(0), K = w.size(1);
  TORCH_CHECK(x.size(-1) == K, "x's last dim must equal the weight's K");
  auto out_shape = x.sizes().vec();
  out_shape.back() = N;
  at::Tensor xf = x.reshape({-1, K}).to(at::kFloat).contiguous();
  const int64_t M = xf.size(0);
  at::Tensor y = at::empty({M, N}, xf.options());
  const float* sp = nullptr;
  at::Tensor sf;
  if (scale.has_value()) {
    sf = scale->to(at::kFloat).contiguous();
    TORCH_CHECK(sf.numel() == N, "scale must have one value per output row");
    sp = sf.data_ptr<float>();
  }
  const int64_t blocks = (N + R - 1) / R, grain = std::max<int64_t>(4, 16384 / std::max<int64_t>(K, 1));
  const float* xp = xf.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  auto split = [&](const auto& dot) {
    at::parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) { rows_range(M, R * b0, std::min(N, R * b1), sp, yp, N, dot); });
  };
  auto float_x = [&](const auto* wp) {
    split([&](auto rb, auto mb, int64_t m, int64_t n, float* out) {
      dot_block<decltype(rb)::value, decltype(mb)::value>(xp + m * K, K, wp + n * K, out);
    });
  };
  switch (w.scalar_type()) {
    case at::kFloat: float_x(w.data_ptr<float>()); break;
    case at::kBFloat16: float_x(w.data_ptr<at::BFloat16>()); break;
    case at::kChar: {
      TORCH_CHECK(sp, "int8 weights need a scale");
      const int8_t* wp = w.data_ptr<int8_t>();
      if (K % QB != 0) {  // no whole blocks: float activations against the int8 weights
        float_x(wp);
        break;
      }
      std::vector<int8_t> qx(M * K);
      std::vector<float> sx(M * K / QB);
      quantize_blocks(xp, M, K, qx.data(), sx.data());
      split([&](auto rb, auto mb, int64_t m, int64_t n, float* out) {
        dot_block_q8<decltype(rb)::value, decltype(mb)::value>(qx.data() + m * K, sx.data() + m * (K / QB), K, wp + n * K, out);
      });
      break;
    }
    default: TORCH_CHECK(false, "weight dtype must be float32, bfloat16 or int8");
  }
  return y.to(x.scalar_type()).view(out_shape);
}

// Symmetric per-row int8 of a float weight (N, K): scale = max |row| / 127, q = round(w / scale),
// one pass over w (torch's ops take six, and a model's worth of them took seconds at load).
template <typename T>
void quantize_rows(const T* w, int64_t K, int64_t n0, int64_t n1, int8_t* q, float* scale) {
  for (int64_t n = n0; n < n1; ++n) {
    const T* row = w + n * K;
    float amax = 0.f;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(static_cast<float>(row[k])));
    const float s = std::max(amax, 1e-12f) / 127.f;
    for (int64_t k = 0; k < K; ++k)
      q[n * K + k] = static_cast<int8_t>(std::max(-127.f, std::min(127.f, std::nearbyint(static_cast<float>(row[k]) / s))));
    scale[n] = s;
  }
}

std::tuple<at::Tensor, at::Tensor> quantize_int8(const at::Tensor& w) {
  TORCH_CHECK(w.dim() == 2, "weight must be a (N, K) matrix");
  at::Tensor wc = w.contiguous();
  const int64_t N = wc.size(0), K = wc.size(1);
  at::Tensor q = at::empty({N, K}, wc.options().dtype(at::kChar)), scale = at::empty({N}, wc.options().dtype(at::kFloat));
  auto run = [&](const auto* wp) {
    at::parallel_for(0, N, 64, [&](int64_t n0, int64_t n1) {
      quantize_rows(wp, K, n0, n1, q.data_ptr<int8_t>(), scale.data_ptr<float>());
    });
  };
  switch (wc.scalar_type()) {
    case at::kFloat: run(wc.data_ptr<float>()); break;
    case at::kBFloat16: run(wc.data_ptr<c10::BFloat16>()); break;
    default: TORCH_CHECK(false, "quantize_int8 takes float32 or bfloat16 weights");
  }
  return {q, scale};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(llama_kernels, m) {
  m.def("linear(Tensor x, Tensor w, Tensor? scale=None) -> Tensor");
  m.def("quantize_int8(Tensor w) -> (Tensor, Tensor)");
  m.impl("linear", c10::DispatchKey::CPU, &linear);
  m.impl("quantize_int8", c10::DispatchKey::CPU, &quantize_int8);
}
