"""GGUF's own quantized blocks as weights (dtype "gguf"): the blocks against the gguf package's own
dequantization, the block kernel against a float reference, and a tiny GGUF model end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

gguf = pytest.importorskip("gguf")

from llama_core.engine import gguf as engine_gguf  # noqa: E402
from llama_core.engine import kernels  # noqa: E402
from llama_core.engine.checkpoint import load_model  # noqa: E402
from llama_core.engine.kernels import BlockWeight, linear  # noqa: E402
from llama_core.errors import CheckpointError  # noqa: E402

from engine.test_gguf import TINY  # noqa: E402
from engine.tiny_checkpoint import random_state_dict  # noqa: E402
from engine.tiny_gguf import write_tiny_gguf  # noqa: E402

needs_kernels = pytest.mark.skipif(not kernels.cpu_kernels_available(), reason="no AVX2 or no C++ compiler")
KINDS = ["Q4_0", "Q4_1", "Q8_0"]


def blocks_of(w: torch.Tensor, kind: str) -> tuple[BlockWeight, torch.Tensor]:
    """w quantized by the gguf package, as our BlockWeight, and the package's own dequantization of it."""
    qtype = gguf.GGMLQuantizationType[kind]
    data = gguf.quants.quantize(w.numpy(), qtype)
    reference = torch.from_numpy(np.array(gguf.quants.dequantize(data, qtype), dtype=np.float32))
    return BlockWeight(kind.lower(), torch.from_numpy(np.array(data, dtype=np.uint8)), w.shape[1]), reference


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", KINDS)
def test_blocks_dequantize_as_the_gguf_package_does(kind: str) -> None:
    w, reference = blocks_of(randn(37, 96), kind)
    assert w.shape == (37, 96)
    assert torch.equal(w.dequantize(torch.float32), reference)


def q8_blocks_reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x quantized per block of 32 (scale max|x|/127, round half to even) times the float weights, in float64."""
    blocks = x.view(x.shape[0], -1, 32).double()
    sx = blocks.abs().amax(-1, keepdim=True) / 127
    xq = torch.round(blocks / torch.where(sx > 0, sx, 1)) * sx
    return (xq.view(x.shape[0], -1) @ w.double().T).float()


@needs_kernels
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rows", [1, 3, 70], ids=lambda r: f"m{r}")
def test_block_kernel_matches_a_float_reference(kind: str, rows: int) -> None:
    w, dequantized = blocks_of(randn(37, 96), kind)
    x = randn(rows, 96, seed=1)
    out = linear(x, w)
    torch.testing.assert_close(out, q8_blocks_reference(x, dequantized), rtol=1e-4, atol=1e-4)
    exact = F.linear(x, dequantized)  # off by the activations' quantization only
    assert (out - exact).abs().max() < 0.02 * exact.abs().max()


def test_blocks_without_kernels_are_dequantized(monkeypatch: pytest.MonkeyPatch) -> None:
    w, dequantized = blocks_of(randn(8, 64), "Q4_1")
    monkeypatch.setattr(kernels, "cpu_kernels_available", lambda: False)
    x = randn(2, 64, seed=1)
    assert torch.equal(linear(x, w), F.linear(x, dequantized))


# ---- a tiny GGUF model in dtype "gguf" -------------------------------------------------------------

QUANTIZED = {"attention.wq": "Q4_1", "attention.wk": "Q4_1", "attention.wv": "Q4_1", "attention.wo": "Q4_0",
             "feed_forward.w1": "Q4_1", "feed_forward.w3": "Q8_0", "feed_forward.w2": "Q4_1"}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A converted tiny GGUF with the file kept beside it, as the demo model's folder is."""
    tmp = tmp_path_factory.mktemp("gguf-blocks")
    src = write_tiny_gguf(tmp / "tiny.gguf", TINY, random_state_dict(TINY, seed=1), quantized=QUANTIZED)
    converted = engine_gguf.convert_gguf(src, tmp / "meta")
    shutil.copy(src, converted / "tiny.gguf")
    return converted


def test_gguf_dtype_multiplies_by_the_files_blocks(tiny_dir: Path) -> None:
    model = load_model(tiny_dir, max_seq_len=32, dtype="gguf", device="cpu")[0]
    layer = model.layers[0]
    # wq|wk|wv fuse (one kind); w1 (Q4_1) and w3 (Q8_0) cannot, so w1|w3 is int8 of the floats
    assert layer.attention.wqkv.kind == "q4_1" and layer.attention.wqkv.shape == (64 + 2 * 32, 64)
    assert layer.attention.wo_weight.kind == "q4_0" and layer.feed_forward.w2_weight.kind == "q4_1"
    assert isinstance(layer.feed_forward.w13, kernels.Int8Weight)
    assert model.output_weight.kind == "q8_0" and model.output_weight.shape == (266, 64)  # the tied embedding's blocks
    assert layer.attention.wq.weight.numel() == 0  # the float copies are freed


def test_gguf_dtype_logits_stay_close_to_the_dequantized_weights(tiny_dir: Path) -> None:
    blocks = load_model(tiny_dir, max_seq_len=32, dtype="gguf", device="cpu")[0]
    fp32 = load_model(tiny_dir, max_seq_len=32, dtype="fp32", device="cpu")[0]
    tokens = torch.tensor([[1, 265, 114, 264, 111, 103, 5, 9]])
    with torch.inference_mode():
        a, b = blocks(tokens, torch.tensor([0])), fp32(tokens, torch.tensor([0]))
    assert F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item() > 0.999


def test_gguf_dtype_needs_the_file(tiny_dir: Path, tmp_path: Path) -> None:
    bare = shutil.copytree(tiny_dir, tmp_path / "bare", ignore=shutil.ignore_patterns("*.gguf"))
    with pytest.raises(CheckpointError, match=r"bare has no GGUF file; dtype gguf needs exactly one \(the file the checkpoint came from\)\."):
        load_model(bare, max_seq_len=32, dtype="gguf", device="cpu")
