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

#include "matmul.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

namespace {

using namespace llama_kernels;

// A weight tensor (and its scale) as the kernels read it; kind from the dtype, or given for blocks.
WeightRef weight_ref(const at::Tensor& w, const float* scale, int64_t kind, int64_t K) {
  TORCH_CHECK(w.is_contiguous(), "weight must be contiguous");
  if (is_block_kind(kind)) {
    TORCH_CHECK(w.scalar_type() == at::kByte && w.dim() == 2, "GGUF blocks must be a (N, bytes per row) uint8 matrix");
    TORCH_CHECK(K % QB == 0 && w.size(1) == K / QB * block_bytes(kind), "blocks do not match K");
    return {kind, w.data_ptr(), nullptr, w.size(0), K};
  }
  TORCH_CHECK(w.dim() == 2, "weight must be a contiguous (N, K) matrix");
  switch (w.scalar_type()) {
    case at::kFloat: return {F32, w.data_ptr(), nullptr, w.size(0), w.size(1)};
    case at::kBFloat16: return {BF16, w.data_ptr(), nullptr, w.size(0), w.size(1)};
    case at::kChar:
      TORCH_CHECK(scale, "int8 weights need a scale");
      return {I8ROW, w.data_ptr(), scale, w.size(0), w.size(1)};
    default: TORCH_CHECK(false, "weight dtype must be float32, bfloat16 or int8");
  }
}

// y = x @ w.T for any rows of x; threads split the output rows (torch's intra-op pool).
at::Tensor run_linear(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& scale, int64_t kind, int64_t K) {
  at::Tensor sf;
  const float* sp = nullptr;
  if (scale.has_value()) {
    sf = scale->to(at::kFloat).contiguous();
    TORCH_CHECK(sf.numel() == w.size(0), "scale must have one value per output row");
    sp = sf.data_ptr<float>();
  }
  const WeightRef ref = weight_ref(w, sp, kind, K);
  TORCH_CHECK(x.size(-1) == ref.K, "x's last dim must equal the weight's K");
  const int64_t N = ref.N;
  auto out_shape = x.sizes().vec();
  out_shape.back() = N;
  at::Tensor xf = x.reshape({-1, ref.K}).to(at::kFloat).contiguous();
  const int64_t M = xf.size(0);
  at::Tensor y = at::empty({M, N}, xf.options());
  const float* xp = xf.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  QuantizedX xq;
  if (takes_quantized_x(ref)) quantize_x(xp, M, ref.K, xq);
  const int64_t blocks = (N + R - 1) / R, grain = std::max<int64_t>(4, 16384 / std::max<int64_t>(ref.K, 1));
  at::parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) {
    matmul_rows(ref, xp, xq, M, R * b0, std::min(N, R * b1), yp, false);
  });
  return y.to(x.scalar_type()).view(out_shape);
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& scale) {
  return run_linear(x, w, scale, w.scalar_type() == at::kFloat ? F32 : w.scalar_type() == at::kBFloat16 ? BF16 : I8ROW,
                    w.dim() == 2 ? w.size(1) : 0);
}

// GGUF blocks (N, K / 32 * block bytes) of `kind` (3 Q4_0, 4 Q4_1, 5 Q8_0): y = x @ w.T.
at::Tensor linear_blocks(const at::Tensor& x, const at::Tensor& blocks, int64_t kind, int64_t K) {
  TORCH_CHECK(is_block_kind(kind), "kind must be 3 (Q4_0), 4 (Q4_1) or 5 (Q8_0)");
  return run_linear(x, blocks, c10::nullopt, kind, K);
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
  m.def("linear_blocks(Tensor x, Tensor blocks, int kind, int K) -> Tensor");
  m.impl("linear", c10::DispatchKey::CPU, &linear);
  m.impl("linear_blocks", c10::DispatchKey::CPU, &linear_blocks);
  m.impl("quantize_int8", c10::DispatchKey::CPU, &quantize_int8);
}
