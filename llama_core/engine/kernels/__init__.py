"""The CPU decode step's kernels (matmul, attention, RMSNorm, the whole step), int8 weight-only
quantization, and GGUF's quantized blocks (Q4_0, Q4_1, Q8_0) kept as weights.

`linear(x, w)` is `x @ w.T` for a float weight or an `Int8Weight`. On CPU with AVX2, for the few
rows of a decode step, it calls our kernel (linear.cpp: weights streamed once at memory speed, with
software prefetch; fp32, bf16 and int8 weights); MKL's GEMV reaches about half the memory
bandwidth on the machines we measured. Against int8 weights the kernel also quantizes x, per
block of 32 values (llama.cpp's Q8_0), and sums the products in integers, on any number of rows
(prefill too). Elsewhere (CUDA, MPS, float prefill's many rows, no C++ compiler, or
LLAMA_CPU_KERNELS=0) it is F.linear, with int8 weights dequantized first and x left in float.

Against a `BlockWeight` (a GGUF file's blocks, unchanged) it is the same kind of kernel on
any number of rows (matmul.h), and elsewhere F.linear on the blocks dequantized in torch.

decode_ops.cpp does a decode step's attention (RoPE and cache write included), RMSNorm and SwiGLU's
gate in one op each, and `decode_step` the whole step (every layer and the LM head) in one op.
The kernels are compiled once per machine for each version of their sources, flags and torch (g++, a
minute the first time, then loaded from the cache: build.py).
"""

from __future__ import annotations

import logging
import os
from functools import cache
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

log = logging.getLogger(__name__)

# Rows of x up to which the kernel beats a GEMM (MKL) on float weights: a decode step (one token per
# sequence; prefill keeps MKL's GEMM). int8 and block weights take the kernel on any rows: a GEMM could
# only take them dequantized, a float copy of every weight per call (int8 prefill of 128 tokens ran
# at 0.8x transformers' fp32 that way; the W8A8 kernel is on a par with MKL's fp32 GEMM there).
MAX_KERNEL_ROWS = 16


class Int8Weight(NamedTuple):
    """Weight-only int8: w ≈ q * scale[:, None]. q: (N, K) int8; scale: (N,) float32, one per output row."""

    q: Tensor
    scale: Tensor

    @property
    def shape(self) -> torch.Size:
        return self.q.shape

    def dequantize(self, dtype: torch.dtype) -> Tensor:
        return (self.q.to(torch.float32) * self.scale[:, None]).to(dtype)


# GGUF block types the kernels read: name -> (matmul.h's Kind, bytes per block of 32 weights)
BLOCK_KINDS: dict[str, tuple[int, int]] = {"q4_0": (3, 18), "q4_1": (4, 20), "q8_0": (5, 34)}
BLOCK = 32


class BlockWeight(NamedTuple):
    """A (N, K) weight as GGUF stores it: each row K / 32 blocks of `kind` (ggml's layouts: Q4_0 is
    fp16 d + 16 bytes of nibbles, w = d * (q - 8); Q4_1 is fp16 d, fp16 m + nibbles, w = d * q + m;
    Q8_0 is fp16 d + 32 int8, w = d * q; low nibbles are a block's values 0..15, high ones 16..31).
    blocks: (N, K / 32 * bytes per block) uint8."""

    kind: str
    blocks: Tensor
    k: int

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.blocks.shape[0], self.k))

    def dequantize(self, dtype: torch.dtype) -> Tensor:
        n, size = self.blocks.shape[0], BLOCK_KINDS[self.kind][1]
        b = self.blocks.view(n, self.k // BLOCK, size)
        d = b[..., 0:2].contiguous().view(torch.float16).float()  # (n, blocks, 1)
        if self.kind == "q8_0":
            w = d * b[..., 2:].contiguous().view(torch.int8).float()
        else:
            qs = b[..., 4:] if self.kind == "q4_1" else b[..., 2:]
            q = torch.cat([qs & 0x0F, qs >> 4], dim=-1).float()
            w = d * q + b[..., 2:4].contiguous().view(torch.float16).float() if self.kind == "q4_1" else d * (q - 8)
        return w.reshape(n, self.k).to(dtype)


def concat_blocks(parts: list[BlockWeight]) -> BlockWeight | None:
    """The row-wise concatenation of block weights of one kind and K (a fused matmul); None if they differ."""
    if len({(p.kind, p.k) for p in parts}) != 1:
        return None
    return BlockWeight(parts[0].kind, torch.cat([p.blocks for p in parts]), parts[0].k)


def quantize_int8(w: Tensor) -> Int8Weight:
    """Symmetric per-output-row int8 of a (N, K) weight: scale = max |row| / 127, q = round(w / scale)."""
    if w.device.type == "cpu" and w.dtype in (torch.float32, torch.bfloat16) and cpu_kernels_available():
        return Int8Weight(*torch.ops.llama_kernels.quantize_int8(w.detach()))
    w32 = w.detach().to(torch.float32)
    scale = w32.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    q = torch.round(w32 / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return Int8Weight(q.contiguous(), scale.contiguous())


KERNEL_DIR = Path(__file__).parent
SOURCES = ("linear.cpp", "decode_ops.cpp")
HEADERS = ("simd.h", "matmul.h")
CFLAGS = ("-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp")


@cache
def cpu_kernels_available() -> bool:
    """Build (once per machine, see build.py) and load linear.cpp and decode_ops.cpp; False, logged
    once, where they cannot be used (no AVX2, no compiler or ninja, a failed build)."""
    if os.environ.get("LLAMA_CPU_KERNELS", "1") == "0":
        return False
    if (capability := torch.backends.cpu.get_cpu_capability()) not in ("AVX2", "AVX512"):
        log.warning("CPU decode kernels need AVX2 (this CPU reports %s); using torch's slower linear.", capability)
        return False
    from llama_core.engine.kernels.build import load_library

    try:
        load_library("llama_kernels", [KERNEL_DIR / n for n in SOURCES], [KERNEL_DIR / n for n in HEADERS], CFLAGS)
        return True
    except Exception as e:  # no compiler, no Python headers, a read-only cache...
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        log.warning("CPU decode kernels unavailable (%s); using torch's slower linear.", reason)
        return False


def _use_kernel(x: Tensor, max_rows: int) -> bool:
    return x.device.type == "cpu" and x.numel() <= max_rows * x.shape[-1] and cpu_kernels_available()


def on_cpu_decode_path(x: Tensor) -> bool:
    """One token per sequence (B, 1, K), few sequences, float32 or bfloat16 (what the ops take), on
    CPU, kernels built: where they pay."""
    return (x.dim() < 3 or x.shape[-2] == 1) and x.dtype in (torch.float32, torch.bfloat16) and _use_kernel(x, MAX_KERNEL_ROWS)


def decode_attention(qkv: Tensor, freqs_cis: Tensor, k_cache: Tensor, v_cache: Tensor, pos: Tensor,
                     first_slot: int, n_heads: int) -> Tensor:
    """On the CPU decode path, from the fused wq|wk|wv output qkv (B, (H + 2 Hkv) D): RoPE on q and k
    (freqs_cis (B, D/2, 2)), k and v written into cache rows first_slot.. at pos (B,), then each query
    head attends over its row's positions 0..pos. -> (B, H D)."""
    return torch.ops.llama_kernels.decode_attention(qkv, freqs_cis, k_cache, v_cache, pos, first_slot, n_heads)


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """RMSNorm over the last dim: normalised in float32, cast back to x's dtype, then times weight."""
    if x.dtype == weight.dtype and x.dtype in (torch.float32, torch.bfloat16) and on_cpu_decode_path(x):
        return torch.ops.llama_kernels.rms_norm(x, weight, eps)
    return F.rms_norm(x.float(), (x.shape[-1],), eps=eps).type_as(x) * weight


def silu_mul(gate_up: Tensor) -> Tensor:
    """SwiGLU's silu(gate) * up over the two halves of the last dim (the fused w1|w3 output)."""
    if on_cpu_decode_path(gate_up):
        return torch.ops.llama_kernels.silu_mul(gate_up)
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


Weight = Tensor | Int8Weight | BlockWeight


def linear(x: Tensor, w: Weight) -> Tensor:
    """x (..., K) @ w.T -> (..., N), in x's dtype."""
    if isinstance(w, BlockWeight):  # the kernel on any rows: a GEMM would need the blocks dequantized per call
        if x.device.type == "cpu" and cpu_kernels_available():
            return torch.ops.llama_kernels.linear_blocks(x, w.blocks, BLOCK_KINDS[w.kind][0], w.k)
        return F.linear(x, w.dequantize(x.dtype))
    if isinstance(w, Int8Weight):
        if x.device.type == "cpu" and cpu_kernels_available():
            return torch.ops.llama_kernels.linear(x, w.q, w.scale)
        return F.linear(x, w.dequantize(x.dtype))
    if w.dtype in (torch.float32, torch.bfloat16) and on_cpu_decode_path(x):
        return torch.ops.llama_kernels.linear(x, w, None)
    return F.linear(x, w)


def step_parts(w: Weight) -> tuple[Tensor, Tensor, int]:
    """(data, scale, matmul.h kind) of a weight, as decode_step takes them."""
    if isinstance(w, BlockWeight):
        return w.blocks, torch.empty(0), BLOCK_KINDS[w.kind][0]
    if isinstance(w, Int8Weight):
        return w.q, w.scale, 2
    return w, torch.empty(0), {torch.float32: 0, torch.bfloat16: 1}[w.dtype]


def decode_step(tokens: Tensor, pos: Tensor, first_slot: int, embedding: Tensor, freqs: Tensor, norms: list[Tensor],
                weights: list[Tensor], scales: list[Tensor], kinds: list[int], k_caches: list[Tensor],
                v_caches: list[Tensor], n_heads: int, eps: float) -> Tensor:
    """The whole decode step in one op (float32 activations): tokens, pos (B,) for cache rows
    first_slot.. -> logits (B, vocab) float32; each layer's k and v written at pos. Weights in the
    order [wqkv, wo, w13, w2] per layer, then the LM head (step_parts of each); norms
    [attention_norm, ffn_norm] per layer, then the final norm; freqs: the RoPE table (L, D/2, 2)."""
    return torch.ops.llama_kernels.decode_step(tokens, pos, first_slot, embedding, freqs, norms, weights, scales, kinds,
                                               k_caches, v_caches, n_heads, eps)
