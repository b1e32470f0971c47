"""The transformer against transformers' LlamaForCausalLM, the reference RoPE scaling, and itself
(prefill vs incremental decode, batch rows vs alone)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from llama_core.engine.args import ModelArgs
from llama_core.engine.checkpoint import load_model, read_shard, locate
from llama_core.engine.model import precompute_freqs_cis, scale_rope_freqs

from engine.hf_reference import hf_model

# "The capital of France is" with the Llama 3 tokenizer: <|begin_of_text|> The capital of France is
PROMPT = [128000, 791, 6864, 315, 9822, 374]


@pytest.fixture(scope="module")
def tiny(tiny_ckpt: Path):
    model, files = load_model(tiny_ckpt, max_seq_len=64, max_batch_size=4, dtype="fp32", device="cpu")
    return model


def test_logits_match_transformers(tiny_ckpt: Path, tiny) -> None:
    sd = read_shard(locate(tiny_ckpt).shards[0])
    reference = hf_model(tiny.args, sd)
    tokens = torch.tensor([PROMPT])
    with torch.inference_mode():
        ours = tiny(tokens, torch.tensor([0]))
        theirs = reference(tokens).logits
    assert ours.dtype == torch.float32 and ours.shape == (1, 6, 128256)
    assert (ours - theirs).abs().max().item() <= 1e-4


def test_prefill_then_decode_equals_one_pass(tiny) -> None:
    tokens = torch.tensor([PROMPT])
    with torch.inference_mode():
        full = tiny(tokens, torch.tensor([0]))
        head = tiny(tokens[:, :3], torch.tensor([0]), first_slot=1)
        steps = [tiny(tokens[:, i : i + 1], torch.tensor([i]), first_slot=1) for i in range(3, 6)]
    incremental = torch.cat([head, *steps], dim=1)
    assert (full - incremental).abs().max().item() <= 1e-5


def test_rows_at_different_positions_match_solo(tiny) -> None:
    """Two slots decoded in one forward, each at its own position, equal each decoded alone."""
    a, b = PROMPT, [128000, 9906, 1917]  # "Hello world"
    with torch.inference_mode():
        tiny(torch.tensor([a[:-1]]), torch.tensor([0]), first_slot=0)
        tiny(torch.tensor([b[:-1]]), torch.tensor([0]), first_slot=1)
        both = tiny(torch.tensor([[a[-1]], [b[-1]]]), torch.tensor([len(a) - 1, len(b) - 1]))
        solo_a = tiny(torch.tensor([a]), torch.tensor([0]), first_slot=2)[:, -1]
        solo_b = tiny(torch.tensor([b]), torch.tensor([0]), first_slot=3)[:, -1]
    assert (both[0, -1] - solo_a[0]).abs().max().item() <= 1e-5
    assert (both[1, -1] - solo_b[0]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("factor", [8.0, 32.0], ids=["llama3.1", "llama3.2-1b"])
def test_rope_scaling_matches_the_formula(factor: float) -> None:
    args = ModelArgs(dim=2048, n_layers=1, n_heads=16, use_scaled_rope=True, rope_scaling_factor=factor)
    freqs = 1.0 / (args.rope_theta ** (torch.arange(0, 128, 2).float() / 128))
    expected = []
    for f in freqs.tolist():  # the reference's per-frequency loop, written out
        wavelen = 2 * math.pi / f
        if wavelen < 8192 / 4:
            expected.append(f)
        elif wavelen > 8192 / 1:
            expected.append(f / factor)
        else:
            s = (8192 / wavelen - 1) / (4 - 1)
            expected.append((1 - s) * f / factor + s * f)
    torch.testing.assert_close(scale_rope_freqs(freqs, args), torch.tensor(expected), rtol=1e-6, atol=0)


def test_rope_scaling_equals_llama_models_reference() -> None:
    from llama_models.llama3.reference_impl.model import apply_scaling  # scale factor 8, hard-coded

    args = ModelArgs(dim=4096, n_layers=1, n_heads=32, use_scaled_rope=True)
    freqs = 1.0 / (args.rope_theta ** (torch.arange(0, 128, 2).float() / 128))
    torch.testing.assert_close(scale_rope_freqs(freqs, args), apply_scaling(freqs), rtol=1e-6, atol=0)
    table = precompute_freqs_cis(args, 16)
    assert table.shape == (16, 64, 2)
    torch.testing.assert_close(table[5, 3], torch.tensor([math.cos(5 * freqs[3]), math.sin(5 * freqs[3])]))


def test_grouped_decode_attention_equals_sdpa() -> None:
    from llama_core.engine.model import grouped_decode_attention

    g = torch.Generator().manual_seed(0)
    q = torch.randn(3, 4, 1, 8, generator=g)
    cache = torch.randn(3, 2, 16, 8, generator=g)
    keys, values = cache[:, :, :10], cache.flip(2)[:, :, :10]  # strided views, as the cache gives them
    mask = (torch.arange(10) <= torch.tensor([9, 4, 0])[:, None, None])[:, None]  # (3, 1, 1, 10)
    expected = torch.nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=mask, enable_gqa=True)
    torch.testing.assert_close(grouped_decode_attention(q, keys, values, mask), expected)


def test_fused_weights_are_the_named_parameters(tiny, tiny_ckpt: Path) -> None:
    """After prepare_weights, wq/wk/wv and w1/w3 are views of the fused matrices, so loads still land."""
    attn, ffn = tiny.layers[0].attention, tiny.layers[0].feed_forward
    assert attn.wqkv is not None and ffn.w13 is not None
    assert attn.wq.weight.data_ptr() == attn.wqkv.data_ptr()
    assert attn.wv.weight.data_ptr() == attn.wqkv[-attn.wv.weight.shape[0]:].data_ptr()
    assert ffn.w3.weight.data_ptr() == ffn.w13[ffn.w1.weight.shape[0]:].data_ptr()
    sd = read_shard(locate(tiny_ckpt).shards[0])
    assert torch.equal(tiny.state_dict()["layers.0.attention.wk.weight"], sd["layers.0.attention.wk.weight"].float())


def test_unfused_model_gives_the_same_logits(tiny, tiny_ckpt: Path) -> None:
    from llama_core.engine.checkpoint import load_weights
    from llama_core.engine.model import build_model

    shard = locate(tiny_ckpt).shards[0]
    plain = build_model(tiny.args)
    load_weights(plain, read_shard(shard), shard)
    plain.setup_caches(1, 16)
    assert plain.layers[0].attention.wqkv is None
    tokens = torch.tensor([PROMPT])
    with torch.inference_mode():
        torch.testing.assert_close(plain(tokens, torch.tensor([0])), tiny(tokens, torch.tensor([0])))
