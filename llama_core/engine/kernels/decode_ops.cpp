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

#include "matmul.h"

#include <omp.h>

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

// q (B, H, D) float32; caches (S, Hkv, L, D) of T; out (B, H, D) float32; query heads i0..i1 of B * H.
template <typename T>
void attend_range(const float* q, const T* kc, const T* vc, const int64_t* pos, int64_t first_slot, int64_t H,
                  int64_t Hkv, int64_t L, int64_t D, float* out, int64_t i0, int64_t i1) {
  const int64_t rep = H / Hkv;
  const float scale = 1.f / std::sqrt(static_cast<float>(D));
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
}

template <typename T>
void attend(const float* q, const T* kc, const T* vc, const int64_t* pos, int64_t first_slot, int64_t B, int64_t H,
            int64_t Hkv, int64_t L, int64_t D, float* out) {
  const int64_t work = B * H * (pos[0] + 1) * D;  // rough: threads only pay on long contexts
  at::parallel_for(0, B * H, work > (1 << 18) ? 1 : B * H, [&](int64_t i0, int64_t i1) {
    attend_range(q, kc, vc, pos, first_slot, H, Hkv, L, D, out, i0, i1);
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


// The whole decode step, one new token per cache row (float32 activations): embedding, then per
// layer RMSNorm, wq|wk|wv, RoPE + cache write + attention, wo (+ residual), RMSNorm, w1|w3, SwiGLU,
// w2 (+ residual); final RMSNorm and the LM head -> logits (B, vocab). One OpenMP team for the step
// with a barrier between phases: Python, the dispatcher and a thread wake-up per op leave the hot
// path (they were most of a step outside the matmuls). Each weight is (weights[i], scales[i],
// kinds[i]) as matmul.h reads it, in the order [wqkv, wo, w13, w2] per layer, then the LM head;
// norms: [attention_norm, ffn_norm] per layer, then the final norm; freqs: the RoPE table (L, D/2, 2).
at::Tensor decode_step(const at::Tensor& tokens, const at::Tensor& pos, int64_t first_slot, const at::Tensor& embedding,
                       const at::Tensor& freqs, at::TensorList norms, at::TensorList weights, at::TensorList scales,
                       at::IntArrayRef kinds, at::TensorList k_caches, at::TensorList v_caches, int64_t n_heads, double eps) {
  const int64_t n_layers = static_cast<int64_t>(k_caches.size());
  TORCH_CHECK(n_layers > 0 && v_caches.size() == k_caches.size(), "one k and v cache per layer");
  TORCH_CHECK(static_cast<int64_t>(weights.size()) == 4 * n_layers + 1 && scales.size() == weights.size() &&
                  kinds.size() == weights.size() && static_cast<int64_t>(norms.size()) == 2 * n_layers + 1,
              "weights, scales and kinds: 4 per layer + the LM head; norms: 2 per layer + the final one");
  TORCH_CHECK(embedding.scalar_type() == at::kFloat && embedding.dim() == 2 && embedding.is_contiguous(),
              "the embedding must be a contiguous float32 (vocab, dim) table");
  const int64_t B = tokens.numel(), dim = embedding.size(1);
  const at::Tensor& kc0 = k_caches[0];
  TORCH_CHECK(kc0.scalar_type() == at::kFloat && kc0.dim() == 4, "float32 caches (S, Hkv, L, D)");
  const int64_t Hkv = kc0.size(1), L = kc0.size(2), D = kc0.size(3), H = n_heads;
  TORCH_CHECK(first_slot >= 0 && first_slot + B <= kc0.size(0), "rows past the cache");
  at::Tensor tok = tokens.to(at::kLong).contiguous(), p = pos.to(at::kLong).contiguous();
  TORCH_CHECK(p.numel() == B, "one position per row");
  const int64_t* tp = tok.data_ptr<int64_t>();
  const int64_t* pp = p.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK(pp[b] >= 0 && pp[b] < L && pp[b] < freqs.size(0), "position past the cache");
    TORCH_CHECK(tp[b] >= 0 && tp[b] < embedding.size(0), "token id past the embedding");
  }
  TORCH_CHECK(freqs.scalar_type() == at::kFloat && freqs.is_contiguous() && freqs.size(1) * 2 == D, "freqs (L, D/2, 2) float32");
  std::vector<WeightRef> w;
  for (size_t i = 0; i < weights.size(); ++i) {
    const at::Tensor& t = weights[i];
    TORCH_CHECK(t.dim() == 2 && t.is_contiguous(), "weights must be contiguous matrices");
    const int64_t kind = kinds[i];
    const int64_t K = is_block_kind(kind) ? t.size(1) / block_bytes(kind) * QB : t.size(1);
    const bool dtype_ok = is_block_kind(kind) ? t.scalar_type() == at::kByte
                          : kind == F32       ? t.scalar_type() == at::kFloat
                          : kind == BF16      ? t.scalar_type() == at::kBFloat16
                                              : kind == I8ROW && t.scalar_type() == at::kChar && scales[i].numel() == t.size(0);
    TORCH_CHECK(dtype_ok, "weight ", i, " does not match its kind");
    w.push_back({kind, t.data_ptr(), kind == I8ROW ? scales[i].data_ptr<float>() : nullptr, t.size(0), K});
  }
  const int64_t width = (H + 2 * Hkv) * D, F = w[2].N / 2, V = w[4 * n_layers].N;
  for (int64_t l = 0; l < n_layers; ++l) {
    TORCH_CHECK(w[4 * l].N == width && w[4 * l].K == dim && w[4 * l + 1].N == dim && w[4 * l + 1].K == H * D &&
                    w[4 * l + 2].N == 2 * F && w[4 * l + 2].K == dim && w[4 * l + 3].N == dim && w[4 * l + 3].K == F,
                "layer ", l, "'s weights do not match the model's shapes");
    TORCH_CHECK(k_caches[l].is_contiguous() && v_caches[l].is_contiguous() && k_caches[l].sizes() == kc0.sizes() &&
                    v_caches[l].sizes() == kc0.sizes(), "the KV caches must be contiguous and alike");
  }
  TORCH_CHECK(w[4 * n_layers].K == dim, "the LM head does not match the model's dim");
  for (const at::Tensor& n : norms)
    TORCH_CHECK(n.scalar_type() == at::kFloat && n.is_contiguous() && n.numel() == dim, "norms must be float32 (dim,)");
  auto f32 = embedding.options();
  at::Tensor h = at::empty({B, dim}, f32), xn = at::empty({B, std::max(dim, H * D)}, f32), qkv = at::empty({B, width}, f32),
             q = at::empty({B, H, D}, f32), att = at::empty({B, H * D}, f32), gu = at::empty({B, 2 * F}, f32),
             act = at::empty({B, F}, f32), logits = at::empty({B, V}, f32);
  float *hp = h.data_ptr<float>(), *xp = xn.data_ptr<float>(), *qkvp = qkv.data_ptr<float>(), *qp = q.data_ptr<float>(),
        *ap = att.data_ptr<float>(), *gp = gu.data_ptr<float>(), *actp = act.data_ptr<float>(), *lp = logits.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) std::copy_n(embedding.data_ptr<float>() + tp[b] * dim, dim, hp + b * dim);
  std::vector<float> fc(B * D);  // each row's (cos, sin) at its position
  for (int64_t b = 0; b < B; ++b) std::copy_n(freqs.data_ptr<float>() + pp[b] * D, D, fc.data() + b * D);
  QuantizedX xq;
  const int threads = std::max(1, at::get_num_threads());
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    auto matmul = [&](const WeightRef& wr, const float* x, float* y, bool residual) {  // x prepared by prepare()
      const int64_t blocks = (wr.N + R - 1) / R, b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
      if (b0 < b1) matmul_rows(wr, x, xq, B, R * b0, std::min(wr.N, R * b1), y, residual);
#pragma omp barrier
    };
    auto prepare = [&](const float* x, const WeightRef& wr) {  // one thread; the others wait at single's end
      if (takes_quantized_x(wr)) quantize_x(x, B, wr.K, xq);
    };
    for (int64_t l = 0; l < n_layers; ++l) {
      const WeightRef &wqkv = w[4 * l], &wo = w[4 * l + 1], &w13 = w[4 * l + 2], &w2 = w[4 * l + 3];
#pragma omp single
      {
        rms_norm_rows(hp, norms[2 * l].data_ptr<float>(), xp, B, dim, eps);
        prepare(xp, wqkv);
      }
      matmul(wqkv, xp, qkvp, false);
#pragma omp single
      rope_and_store(qkvp, fc.data(), k_caches[l].data_ptr<float>(), v_caches[l].data_ptr<float>(), pp, first_slot, B, H,
                     Hkv, L, D, qp);
      attend_range(qp, k_caches[l].data_ptr<float>(), v_caches[l].data_ptr<float>(), pp, first_slot, H, Hkv, L, D, ap,
                   B * H * t / nt, B * H * (t + 1) / nt);
#pragma omp barrier
#pragma omp single
      prepare(ap, wo);
      matmul(wo, ap, hp, true);
#pragma omp single
      {
        rms_norm_rows(hp, norms[2 * l + 1].data_ptr<float>(), xp, B, dim, eps);
        prepare(xp, w13);
      }
      matmul(w13, xp, gp, false);
#pragma omp single
      {
        silu_mul_rows(gp, actp, B, F);
        prepare(actp, w2);
      }
      matmul(w2, actp, hp, true);
    }
#pragma omp single
    {
      rms_norm_rows(hp, norms[2 * n_layers].data_ptr<float>(), xp, B, dim, eps);
      prepare(xp, w[4 * n_layers]);
    }
    matmul(w[4 * n_layers], xp, lp, false);
  }
  return logits;
}
}  // namespace

TORCH_LIBRARY_FRAGMENT(llama_kernels, m) {
  m.def("rms_norm(Tensor x, Tensor w, float eps) -> Tensor");
  m.def("decode_attention(Tensor qkv, Tensor freqs, Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor pos, int first_slot, int n_heads) -> Tensor");
  m.def("silu_mul(Tensor gate_up) -> Tensor");
  m.impl("rms_norm", c10::DispatchKey::CPU, &rms_norm);
  m.impl("silu_mul", c10::DispatchKey::CPU, &silu_mul);
  m.def("decode_step(Tensor tokens, Tensor pos, int first_slot, Tensor embedding, Tensor freqs, Tensor[] norms, "
        "Tensor[] weights, Tensor[] scales, int[] kinds, Tensor(a!)[] k_caches, Tensor(b!)[] v_caches, int n_heads, "
        "float eps) -> Tensor");
  m.impl("decode_attention", c10::DispatchKey::CPU, &decode_attention);
  m.impl("decode_step", c10::DispatchKey::CPU, &decode_step);
}
