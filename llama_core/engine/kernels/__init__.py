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
The kernels are compiled once per torch version with torch.utils.cpp_extension (g++, a few tens of
seconds the first time, then loaded from torch's extension cache).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
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
STALE_LOCK_S = 15 * 60  # a kernel build takes about a minute on two cores; a lock this old has no builder left


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


@cache
def cpu_kernels_available() -> bool:
    """Build (once) and load linear.cpp and decode_ops.cpp; False, logged once, where they cannot be used."""
    if os.environ.get("LLAMA_CPU_KERNELS", "1") == "0":
        return False
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        return False
    try:
        # torch < 2.8's CUDA builds print "No CUDA runtime is found" to stderr at this import where a CUDA
        # toolkit is installed but no GPU is: not ours to show (it is a log record from 2.8 on).
        with contextlib.redirect_stderr(io.StringIO()):
            from torch.utils.cpp_extension import load

        module = f"llama_kernels_{torch.__version__.replace('.', '_').replace('+', '_')}"
        build_dir = _build_dir(module)
        if build_dir is not None:
            _clear_stale_lock(build_dir / "lock")
        if build_dir is None or not (build_dir / f"{module}.so").is_file():  # tens of seconds of g++: say so
            log.warning("Building the CPU decode kernels for torch %s (once per torch version; up to a minute)...", torch.__version__)
        elif (build_dir / "lock").exists():
            log.warning("Waiting for another process's build of the CPU decode kernels (%s)...", build_dir)
        load(
            name=module,
            sources=[str(Path(__file__).with_name(name)) for name in ("linear.cpp", "decode_ops.cpp")],
            extra_include_paths=[str(Path(__file__).parent)],
            extra_cflags=["-O3", "-mavx2", "-mfma", "-fopenmp"],
            is_python_module=False,
        )
        return True
    except Exception as e:  # no compiler, no Python headers, a read-only cache...
        log.warning("CPU decode kernels unavailable (%s); using torch's linear.", str(e).splitlines()[0] if str(e) else type(e).__name__)
        return False


def _build_dir(module: str) -> Path | None:
    # Where torch.utils.cpp_extension.load builds `module` (TORCH_EXTENSIONS_DIR, else its cache).
    try:
        from torch.utils.cpp_extension import _get_build_directory

        return Path(_get_build_directory(module, verbose=False))
    except Exception:  # a private function: when it changes, we only say "Building" once too often
        return None


def _clear_stale_lock(lock: Path) -> None:
    """Remove the build's lock file when no build can still hold it. torch creates it for a build and
    removes it after; a process killed meanwhile leaves it, and every later load waits on it forever."""
    try:
        age = time.time() - lock.stat().st_mtime
    except OSError:
        return
    if age > STALE_LOCK_S:
        log.warning("Removing %s, left %.0f minutes ago by a kernel build that did not finish.", lock, age / 60)
        lock.unlink(missing_ok=True)


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
