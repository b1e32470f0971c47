"""The CPU decode step's kernels (matmul, attention, RMSNorm), and int8 weight-only quantization.

`linear(x, w)` is `x @ w.T` for a float weight or an `Int8Weight`. On CPU with AVX2, for the few
rows of a decode step, it calls our kernel (linear.cpp: weights streamed once at memory speed, with
software prefetch; fp32, bf16 and int8 weights); MKL's GEMV reaches about half the memory
bandwidth on the machines we measured. Against int8 weights the kernel also quantizes x, per
block of 32 values (llama.cpp's Q8_0), and sums the products in integers. Elsewhere (CUDA, MPS,
prefill's many rows, no C++ compiler, or LLAMA_CPU_KERNELS=0) it is F.linear, with int8 weights
dequantized first and x left in float.

decode_ops.cpp does a decode step's attention (RoPE and cache write included), RMSNorm and SwiGLU's
gate in one op each.
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

# Rows of x up to which the kernel beats a GEMM (MKL): float weights in a decode step (one token per
# sequence; prefill keeps MKL's GEMM), and int8 weights, which a GEMM could only take dequantized
# (a float copy of the weight per call).
MAX_KERNEL_ROWS = 16
MAX_KERNEL_ROWS_INT8 = 64


class Int8Weight(NamedTuple):
    """Weight-only int8: w ≈ q * scale[:, None]. q: (N, K) int8; scale: (N,) float32, one per output row."""

    q: Tensor
    scale: Tensor

    @property
    def shape(self) -> torch.Size:
        return self.q.shape

    def dequantize(self, dtype: torch.dtype) -> Tensor:
        return (self.q.to(torch.float32) * self.scale[:, None]).to(dtype)


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
HEADERS = ("simd.h",)
CFLAGS = ("-O3", "-mavx2", "-mfma", "-fopenmp")


@cache
def cpu_kernels_available() -> bool:
    """Build (once per machine, see build.py) and load linear.cpp and decode_ops.cpp; False, logged
    once, where they cannot be used (no AVX2, no compiler or ninja, a failed build)."""
    if os.environ.get("LLAMA_CPU_KERNELS", "1") == "0":
        return False
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
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
    """One token per sequence (B, 1, K), few sequences, on CPU, kernels built: where they pay."""
    return (x.dim() < 3 or x.shape[-2] == 1) and _use_kernel(x, MAX_KERNEL_ROWS)


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


def linear(x: Tensor, w: Tensor | Int8Weight) -> Tensor:
    """x (..., K) @ w.T -> (..., N), in x's dtype."""
    if isinstance(w, Int8Weight):
        if _use_kernel(x, MAX_KERNEL_ROWS_INT8):
            return torch.ops.llama_kernels.linear(x, w.q, w.scale)
        return F.linear(x, w.dequantize(x.dtype))
    if w.dtype in (torch.float32, torch.bfloat16) and on_cpu_decode_path(x):
        return torch.ops.llama_kernels.linear(x, w, None)
    return F.linear(x, w)
