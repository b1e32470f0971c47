// The decode step's small ops, each one call instead of a chain of torch ops (at decode sizes a
// torch op is mostly dispatch: the attention alone was ten ops and ~100 us a layer).
//
// decode_attention: one new token per cache row, from the fused wq|wk|wv output. Rotates q and k
// (RoPE), writes k and v into the cache at the row's position, then attends the query heads over
// that row's positions 0..pos (grouped-query: head h reads kv head h / (H / Hkv)); softmax in
// float32. rms_norm: the reference's RMSNorm. silu_mul: SwiGLU's gate.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "simd.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

namespace {

using namespace llama_kernels;

template <typename T>
inline float dot(const float* q, const T* k, int64_t D) {
  __m256 acc = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d + 8 <= D; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), load8(k + d), acc);
  float s = hsum(acc);
  for (; d < D; ++d) s += q[d] * to_float(k[d]);
  return s;
}

template <typename T>
inline void axpy(float a, const T* v, float* out, int64_t D) {  // out += a * v
  const __m256 av = _mm256_set1_ps(a);
  int64_t d = 0;
  for (; d + 8 <= D; d += 8) _mm256_storeu_ps(out + d, _mm256_fmadd_ps(av, load8(v + d), _mm256_loadu_ps(out + d)));
  for (; d < D; ++d) out[d] += a * to_float(v[d]);
}

// q (B, H, D) float32; caches (S, Hkv, L, D) of T; out (B, H, D) float32.
template <typename T>
void attend(const float* q, const T* kc, const T* vc, const int64_t* pos, int64_t first_slot, int64_t B, int64_t H,
            int64_t Hkv, int64_t L, int64_t D, float* out) {
  const int64_t rep = H / Hkv;
  const float scale = 1.f / std::sqrt(static_cast<float>(D));
  const int64_t work = B * H * (pos[0] + 1) * D;  // rough: threads only pay on long contexts
  at::parallel_for(0, B * H, work > (1 << 18) ? 1 : B * H, [&](int64_t i0, int64_t i1) {
    std::vector<float> p;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / H, h = i % H, n = pos[b] + 1;
      const int64_t row = ((first_slot + b) * Hkv + h / rep) * L * D;
      const float* qi = q + i * D;
      p.resize(n);
      float mx = -INFINITY;
      for (int64_t t = 0; t < n; ++t) mx = std::max(mx, p[t] = dot(qi, kc + row + t * D, D) * scale);
      float sum = 0.f;
      for (int64_t t = 0; t < n; ++t) sum += p[t] = std::exp(p[t] - mx);
      float* o = out + i * D;
      std::fill(o, o + D, 0.f);
      for (int64_t t = 0; t < n; ++t) axpy(p[t] / sum, vc + row + t * D, o, D);
    }
  });
}

// Meta's interleaved RoPE on one head (pairs (x0, x1) rotated by (cos, sin)), rounded to T as the
// reference's type_as does, into float32.
template <typename T>
inline void rope(const T* x, const float* fc, int64_t D, float* out) {
  for (int64_t i = 0; i < D / 2; ++i) {
    const float x0 = to_float(x[2 * i]), x1 = to_float(x[2 * i + 1]), c = fc[2 * i], s = fc[2 * i + 1];
    out[2 * i] = static_cast<float>(static_cast<T>(x0 * c - x1 * s));
    out[2 * i + 1] = static_cast<float>(static_cast<T>(x1 * c + x0 * s));
  }
}

// qkv (B, (H + 2 Hkv) D) of T -> q rotated (B, H, D) float32, and k rotated and v written into the
// caches at (first_slot + b, :, pos[b]).
template <typename T>
void rope_and_store(const T* qkv, const float* freqs, T* kc, T* vc, const int64_t* pos, int64_t first_slot, int64_t B,
                    int64_t H, int64_t Hkv, int64_t L, int64_t D, float* q) {
  std::vector<float> k(D);
  const int64_t width = (H + 2 * Hkv) * D;
  for (int64_t b = 0; b < B; ++b) {
    const T* row = qkv + b * width;
    const float* fc = freqs + b * D;  // (D/2, 2)
    for (int64_t h = 0; h < H; ++h) rope(row + h * D, fc, D, q + (b * H + h) * D);
    for (int64_t hk = 0; hk < Hkv; ++hk) {
      const int64_t at = (((first_slot + b) * Hkv + hk) * L + pos[b]) * D;
      rope(row + (H + hk) * D, fc, D, k.data());
      for (int64_t d = 0; d < D; ++d) kc[at + d] = static_cast<T>(k[d]);
      std::copy(row + (H + Hkv + hk) * D, row + (H + Hkv + hk + 1) * D, vc + at);
    }
  }
}

at::Tensor decode_attention(const at::Tensor& qkv, const at::Tensor& freqs, at::Tensor k_cache, at::Tensor v_cache,
                            const at::Tensor& pos, int64_t first_slot, int64_t n_heads) {
  TORCH_CHECK(qkv.dim() == 2 && k_cache.dim() == 4, "qkv (B, (H + 2 Hkv) D), caches (S, Hkv, L, D)");
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous(), "the KV cache must be contiguous");
  TORCH_CHECK(qkv.scalar_type() == k_cache.scalar_type(), "qkv and the cache must share a dtype");
  const int64_t B = qkv.size(0), H = n_heads, Hkv = k_cache.size(1), L = k_cache.size(2), D = k_cache.size(3);
  TORCH_CHECK(qkv.size(1) == (H + 2 * Hkv) * D && freqs.numel() == B * D, "qkv or freqs do not match the cache");
  TORCH_CHECK(first_slot >= 0 && first_slot + B <= k_cache.size(0), "rows past the cache");
  at::Tensor p = pos.to(at::kLong).contiguous(), fc = freqs.to(at::kFloat).contiguous(), x = qkv.contiguous();
  const int64_t* pp = p.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) TORCH_CHECK(pp[b] >= 0 && pp[b] < L, "position past the cache");
  at::Tensor q = at::empty({B, H, D}, fc.options()), out = at::empty({B, H, D}, fc.options());
  auto run = [&](auto* kind) {  // T: the cache's (and qkv's) dtype
    using T = std::remove_pointer_t<decltype(kind)>;
    rope_and_store(x.data_ptr<T>(), fc.data_ptr<float>(), k_cache.data_ptr<T>(), v_cache.data_ptr<T>(), pp, first_slot,
                   B, H, Hkv, L, D, q.data_ptr<float>());
    attend(q.data_ptr<float>(), k_cache.data_ptr<T>(), v_cache.data_ptr<T>(), pp, first_slot, B, H, Hkv, L, D,
           out.data_ptr<float>());
  };
  switch (x.scalar_type()) {
    case at::kFloat: run(static_cast<float*>(nullptr)); break;
    case at::kBFloat16: run(static_cast<c10::BFloat16*>(nullptr)); break;
    default: TORCH_CHECK(false, "the KV cache must be float32 or bfloat16");
  }
  return out.to(qkv.scalar_type()).view({B, H * D});
}

// RMSNorm as the reference computes it: normalise in float32, round to x's dtype, then scale by w
// (a product in x's dtype). One op instead of five: at decode sizes each op is mostly dispatch.
template <typename T>
void rms_norm_rows(const T* x, const T* w, T* y, int64_t rows, int64_t dim, double eps) {
  for (int64_t i = 0; i < rows; ++i) {
    const T* xi = x + i * dim;
    float ss = 0.f;
    for (int64_t j = 0; j < dim; ++j) ss += static_cast<float>(xi[j]) * static_cast<float>(xi[j]);
    const float inv = 1.f / std::sqrt(ss / static_cast<float>(dim) + static_cast<float>(eps));
    for (int64_t j = 0; j < dim; ++j)
      y[i * dim + j] = static_cast<T>(static_cast<float>(static_cast<T>(static_cast<float>(xi[j]) * inv)) * static_cast<float>(w[j]));
  }
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  const int64_t dim = x.size(-1);
  TORCH_CHECK(w.numel() == dim && w.scalar_type() == x.scalar_type(), "weight must be (dim,) in x's dtype");
  at::Tensor xc = x.contiguous(), wc = w.contiguous();
  at::Tensor y = at::empty_like(xc);
  const int64_t rows = xc.numel() / std::max<int64_t>(dim, 1);
  switch (x.scalar_type()) {
    case at::kFloat: rms_norm_rows(xc.data_ptr<float>(), wc.data_ptr<float>(), y.data_ptr<float>(), rows, dim, eps); break;
    case at::kBFloat16:
      rms_norm_rows(xc.data_ptr<c10::BFloat16>(), wc.data_ptr<c10::BFloat16>(), y.data_ptr<c10::BFloat16>(), rows, dim, eps);
      break;
    default: TORCH_CHECK(false, "rms_norm takes float32 or bfloat16");
  }
  return y;
}
// SwiGLU's gate: silu(g) * u over the two halves of the fused w1|w3 output, rounded to T after
// each op as the reference's two torch ops are.
template <typename T>
void silu_mul_rows(const T* gu, T* y, int64_t rows, int64_t F) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < F; ++j) {
      const float g = static_cast<float>(gu[i * 2 * F + j]), u = static_cast<float>(gu[i * 2 * F + F + j]);
      y[i * F + j] = static_cast<T>(static_cast<float>(static_cast<T>(g / (1.f + std::exp(-g)))) * u);
    }
}

at::Tensor silu_mul(const at::Tensor& gate_up) {
  const int64_t F = gate_up.size(-1) / 2;
  TORCH_CHECK(gate_up.size(-1) == 2 * F, "gate_up's last dim must be even");
  at::Tensor x = gate_up.contiguous();
  auto shape = x.sizes().vec();
  shape.back() = F;
  at::Tensor y = at::empty(shape, x.options());
  const int64_t rows = x.numel() / std::max<int64_t>(2 * F, 1);
  switch (x.scalar_type()) {
    case at::kFloat: silu_mul_rows(x.data_ptr<float>(), y.data_ptr<float>(), rows, F); break;
    case at::kBFloat16: silu_mul_rows(x.data_ptr<c10::BFloat16>(), y.data_ptr<c10::BFloat16>(), rows, F); break;
    default: TORCH_CHECK(false, "silu_mul takes float32 or bfloat16");
  }
  return y;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(llama_kernels, m) {
  m.def("rms_norm(Tensor x, Tensor w, float eps) -> Tensor");
  m.def("decode_attention(Tensor qkv, Tensor freqs, Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor pos, int first_slot, int n_heads) -> Tensor");
  m.def("silu_mul(Tensor gate_up) -> Tensor");
  m.impl("rms_norm", c10::DispatchKey::CPU, &rms_norm);
  m.impl("silu_mul", c10::DispatchKey::CPU, &silu_mul);
  m.impl("decode_attention", c10::DispatchKey::CPU, &decode_attention);
}
