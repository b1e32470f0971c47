"""The CPU decode kernels (linear.cpp) against torch, and int8 weight-only models end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from llama_core.engine import kernels
from llama_core.engine.checkpoint import load_model
from llama_core.engine.kernels import Int8Weight, linear, quantize_int8, rms_norm
from llama_core.engine.messages import GenParams
from llama_core.errors import CheckpointError

from engine.test_generation import PROMPT, TINY_GREEDY
from engine.solo import generate

needs_kernels = pytest.mark.skipif(not kernels.cpu_kernels_available(), reason="no AVX2 or no C++ compiler")

# Greedy continuation of PROMPT by the seed-0 tiny checkpoint with int8 weights: fp32's for 17 tokens.
TINY_GREEDY_INT8 = TINY_GREEDY[:17] + [120147, 18310, 32646]


def weights(n: int, k: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed))


@needs_kernels
@pytest.mark.parametrize("n, k", [(64, 64), (13, 70), (3, 5), (1030, 576)], ids=["even", "tails", "tiny", "wide"])
@pytest.mark.parametrize("rows", [1, 2, 3, 8], ids=lambda r: f"m{r}")
def test_float_linear_matches_torch(n: int, k: int, rows: int) -> None:
    w, x = weights(n, k), weights(rows, k, seed=1)
    torch.testing.assert_close(torch.ops.llama_kernels.linear(x, w, None), F.linear(x, w), rtol=1e-4, atol=1e-4)
    wb, xb = w.bfloat16(), x.bfloat16()
    torch.testing.assert_close(torch.ops.llama_kernels.linear(xb, wb, None).float(), F.linear(xb.float(), wb.float()),
                               rtol=1e-2, atol=1e-2)  # bf16 output rounding


def w8a8_reference(x: torch.Tensor, w: Int8Weight) -> torch.Tensor:
    """x quantized per block of 32 (scale max|x|/127, round half to even), exact integer block dot
    products, each times its block's scale, then the weight row's scale."""
    blocks = x.view(x.shape[0], -1, 32)
    sx = blocks.abs().amax(-1) / 127
    qx = torch.round(blocks / torch.where(sx > 0, sx, 1)[..., None]).to(torch.int64)
    qw = w.q.view(w.q.shape[0], -1, 32).to(torch.int64)
    dots = torch.einsum("mbk,nbk->mnb", qx, qw).double()  # exact
    return ((dots * sx[:, None, :].double()).sum(-1) * w.scale.double()).float()


@needs_kernels
@pytest.mark.parametrize("rows", [1, 5, 64], ids=lambda r: f"m{r}")
def test_int8_linear_is_w8a8(rows: int) -> None:
    w, x = quantize_int8(weights(37, 96)), weights(rows, 96, seed=1)
    torch.testing.assert_close(linear(x, w), w8a8_reference(x, w), rtol=1e-5, atol=1e-5)
    exact = F.linear(x, w.dequantize(torch.float32))  # off by the activations' quantization only
    assert (linear(x, w) - exact).abs().max() < 0.02 * exact.abs().max()


@needs_kernels
def test_int8_linear_without_whole_blocks_keeps_x_in_float() -> None:
    w, x = quantize_int8(weights(9, 70)), weights(3, 70, seed=1)
    torch.testing.assert_close(linear(x, w), F.linear(x, w.dequantize(torch.float32)), rtol=1e-5, atol=1e-5)


@needs_kernels
def test_a_rows_result_does_not_depend_on_the_batch() -> None:
    """Each output is summed in one fixed order, so batch 8 gives batch 1's bits (batch invariance)."""
    w, x = weights(200, 576), weights(8, 576, seed=1)
    for weight, scale in ((w, None), (w.bfloat16(), None), (*quantize_int8(w),)):
        batched = torch.ops.llama_kernels.linear(x, weight, scale)
        for i in range(8):
            assert torch.equal(torch.ops.llama_kernels.linear(x[i : i + 1], weight, scale)[0], batched[i])


@needs_kernels
def test_bad_shapes_are_errors_not_crashes() -> None:
    with pytest.raises(RuntimeError, match="last dim"):
        torch.ops.llama_kernels.linear(torch.randn(1, 8), torch.randn(4, 16), None)
    with pytest.raises(RuntimeError, match="need a scale"):
        torch.ops.llama_kernels.linear(torch.randn(1, 16), torch.zeros(4, 16, dtype=torch.int8), None)


def test_quantize_int8_is_symmetric_per_row() -> None:
    q = quantize_int8(torch.tensor([[1.0, -0.5, 0.25], [0.0, 0.0, 0.0]]))
    assert q.q.tolist() == [[127, -64, 32], [0, 0, 0]]  # 63.5 rounds to even
    assert q.scale[0].item() == pytest.approx(1 / 127)
    w = weights(50, 80)
    err = (quantize_int8(w).dequantize(torch.float32) - w).abs()
    assert bool((err <= quantize_int8(w).scale[:, None] / 2 + 1e-7).all())


def test_linear_falls_back_to_torch_off_the_decode_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Float prefill rows (many tokens per sequence) take F.linear; int8 without the kernels is dequantized."""
    w, x = weights(16, 32), weights(3 * 20, 32, seed=1).view(3, 20, 32)
    assert torch.equal(linear(x, w), F.linear(x, w))
    q = quantize_int8(w)
    monkeypatch.setattr(kernels, "cpu_kernels_available", lambda: False)
    big = weights(130, 32, seed=2)
    assert torch.equal(linear(big, q), F.linear(big, q.dequantize(torch.float32)))


@needs_kernels
def test_int8_prefill_rows_take_the_kernel_not_a_dequantized_copy() -> None:
    w, x = quantize_int8(weights(37, 96)), weights(130, 96, seed=1)
    torch.testing.assert_close(linear(x, w), w8a8_reference(x, w), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_rms_norm_matches_the_reference(dtype: torch.dtype) -> None:
    x, w = weights(3, 576).to(dtype).view(3, 1, 576), (1 + weights(1, 576)[0] / 10).to(dtype)
    expected = F.rms_norm(x.float(), (576,), eps=1e-5).type_as(x) * w
    torch.testing.assert_close(rms_norm(x, w, 1e-5), expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_int8(tiny_ckpt: Path):
    return load_model(tiny_ckpt, max_seq_len=64, max_batch_size=4, dtype="int8", device="cpu")[0]


def test_int8_model_holds_int8_weights(tiny_int8) -> None:
    layer = tiny_int8.layers[0]
    for w in (layer.attention.wqkv, layer.attention.wo_weight, layer.feed_forward.w13, layer.feed_forward.w2_weight,
              tiny_int8.output_weight):
        assert isinstance(w, Int8Weight) and w.q.dtype == torch.int8
    assert layer.attention.wq.weight.numel() == 0  # the float copies are freed
    assert tiny_int8.tok_embeddings.weight.dtype == torch.float32


@needs_kernels
def test_int8_greedy_ids_are_pinned(tiny_int8) -> None:
    out = [r.token for r in generate(tiny_int8, PROMPT, GenParams(max_tokens=20))]
    assert out == TINY_GREEDY_INT8


def test_int8_logits_stay_close_to_fp32(tiny_int8, tiny_ckpt: Path) -> None:
    fp32 = load_model(tiny_ckpt, max_seq_len=64, max_batch_size=1, dtype="fp32", device="cpu")[0]
    tokens = torch.tensor([PROMPT + TINY_GREEDY[:10]])
    with torch.inference_mode():
        a, b = tiny_int8(tokens, torch.tensor([0])), fp32(tokens, torch.tensor([0]))
    assert F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item() > 0.999


def test_unknown_dtype_names_the_choices(tiny_ckpt: Path) -> None:
    with pytest.raises(CheckpointError, match="choose one of fp32, bf16, fp16, int8"):
        load_model(tiny_ckpt, dtype="int4", device="cpu")


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_decode_attention_matches_the_torch_path(dtype: torch.dtype) -> None:
    """Rows at different positions (a batch mid-flight), 6 query heads over 2 kv heads, slots 1..3:
    RoPE on q and k, the cache written at each row's position, attention over each row's prefix."""
    from llama_core.engine.args import ModelArgs
    from llama_core.engine.model import apply_rotary_emb, grouped_decode_attention, precompute_freqs_cis

    g = torch.Generator().manual_seed(0)
    k_cache, v_cache = (torch.randn(4, 2, 16, 8, generator=g).to(dtype) for _ in range(2))
    qkv = torch.randn(3, (6 + 2 * 2) * 8, generator=g).to(dtype)
    pos = torch.tensor([9, 4, 0])
    freqs = precompute_freqs_cis(ModelArgs(dim=48, n_heads=6, use_scaled_rope=True), 16)[pos]  # (3, 4, 2)
    q = apply_rotary_emb(qkv[:, :48].view(3, 1, 6, 8), freqs[:, None])[:, 0]
    k = apply_rotary_emb(qkv[:, 48:64].view(3, 1, 2, 8), freqs[:, None])[:, 0]
    v = qkv[:, 64:].view(3, 2, 8)
    expect_k, expect_v = k_cache.clone(), v_cache.clone()
    for b in range(3):
        expect_k[1 + b, :, pos[b]], expect_v[1 + b, :, pos[b]] = k[b], v[b]
    mask = (torch.arange(10) <= pos[:, None, None])[:, None]  # (3, 1, 1, 10)
    expected = grouped_decode_attention(q[:, :, None].float(), expect_k[1:, :, :10].float(), expect_v[1:, :, :10].float(), mask)
    out = kernels.decode_attention(qkv, freqs, k_cache, v_cache, pos, 1, 6)
    torch.testing.assert_close(k_cache, expect_k, rtol=1e-6, atol=1e-6)
    assert torch.equal(v_cache, expect_v)
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(out.float(), expected[:, :, 0].reshape(3, 48), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_silu_mul_matches_the_reference(dtype: torch.dtype) -> None:
    gate_up = weights(3, 2 * 40).to(dtype).view(3, 1, 80)
    gate, up = gate_up.chunk(2, dim=-1)
    torch.testing.assert_close(kernels.silu_mul(gate_up), F.silu(gate) * up, rtol=1e-6, atol=1e-6)


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_quantize_kernel_matches_the_torch_formula(dtype: torch.dtype) -> None:
    w = weights(70, 96).to(dtype)
    q, scale = torch.ops.llama_kernels.quantize_int8(w)
    expected_scale = w.float().abs().amax(1) / 127
    assert torch.equal(scale, expected_scale)
    assert torch.equal(q, torch.round(w.float() / expected_scale[:, None]).to(torch.int8))


@needs_kernels
@pytest.mark.parametrize("dtype", ["fp32", "int8"])
def test_the_one_op_decode_step_equals_the_op_by_op_step(tiny_ckpt: Path, dtype: str) -> None:
    """Two rows at different positions (slots 1 and 2): the same logits and cache writes as the
    torch-dispatched step of the same kernels, op by op."""
    model = load_model(tiny_ckpt, max_seq_len=32, max_batch_size=3, dtype=dtype, device="cpu")[0]
    assert model._step_weights is not None
    tokens, pos = torch.tensor([[791], [315]]), torch.tensor([5, 3])
    results = []
    with torch.inference_mode():
        for step_weights in (model._step_weights, None):
            model.setup_caches(1, 1)  # fresh zeroed caches each time
            model.setup_caches(3, 32)
            model(torch.tensor([PROMPT[:5]]), torch.tensor([0]), first_slot=1)
            model(torch.tensor([PROMPT[:3]]), torch.tensor([0]), first_slot=2)
            saved, model._step_weights = model._step_weights, step_weights
            logits = model(tokens, pos, first_slot=1)
            model._step_weights = saved
            results.append((logits, model.layers[1].attention.kv_cache.k_cache.clone()))
    (fused, k_fused), (op_by_op, k_ops) = results
    assert fused.shape == (2, 1, 128256)
    torch.testing.assert_close(fused, op_by_op, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k_fused, k_ops, rtol=1e-6, atol=1e-6)
