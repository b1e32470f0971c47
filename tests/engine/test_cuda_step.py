"""The static-shape decode step (engine/cuda_step.py): on CPU against the dynamic forward, traced
whole by torch.compile, int8 against a float64 reference; on CUDA (skipped without one) captured
in CUDA graphs against the dynamic forward, replay against the step, int8 against bf16."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from llama_core.engine import cuda_step
from llama_core.engine.checkpoint import load_model, locate, read_shard
from llama_core.engine.kernels import Int8Weight
from llama_core.engine.messages import GenParams

from engine.hf_reference import hf_model
from engine.solo import generate
from engine.test_generation import PROMPT, TINY_GREEDY
from engine.test_kernels import TINY_GREEDY_INT8


def needs_cuda(test):
    """CUDA only. Inductor's advisory UserWarnings print there rather than fail the compile (which
    would fall back to the uncompiled step): these tests check numbers, and that it compiled."""
    test = pytest.mark.filterwarnings("default::UserWarning")(test)
    return pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")(test)


LONG = PROMPT * 12  # 72 tokens: past the first key bucket (64)


def caches(model) -> list[torch.Tensor]:
    return [t for layer in model.layers for t in (layer.attention.kv_cache.k_cache, layer.attention.kv_cache.v_cache)]


def fill_slots(model) -> None:
    """Slot 0 at position 5, slot 1 at 2 over a stale tail (an earlier 42-token occupant), slot 2 at 72."""
    with torch.inference_mode():
        model(torch.tensor([PROMPT * 7], device=model.freqs_cis.device), torch.tensor([0]), first_slot=1)
        for slot, prompt in ((0, PROMPT[:5]), (1, PROMPT[:2]), (2, LONG)):
            model(torch.tensor([prompt], device=model.freqs_cis.device), torch.tensor([0]), first_slot=slot)


# rows decoded: (tokens, positions); the kv_len the caller passes is max(position) + 1
CASES = {
    "b1": ([374], [5]),  # bucket 64 past position 5: slot 0's zeroed tail masked
    "b1-stale": ([9822], [2]),  # as row 0, slot 0: keys 3.. are slot 0's own earlier prompt positions
    "b2-stale-tail": ([374, 9822], [5, 2]),  # slot 1's tail from its earlier occupant must not leak
    "b3-bucket-128": ([374, 9822, 315], [5, 2, 72]),  # rows at three positions, window 128
}


@pytest.fixture(scope="module")
def fp32(tiny_ckpt: Path):
    return load_model(tiny_ckpt, max_seq_len=256, max_batch_size=4, dtype="fp32", device="cpu")[0]


def test_kv_bucket_is_the_next_power_of_two_within_the_cache() -> None:
    assert [cuda_step.kv_bucket(n, 2048) for n in (1, 64, 65, 128, 129, 1500, 2048)] == [64, 64, 128, 128, 256, 2048, 2048]
    assert cuda_step.kv_bucket(100, 96) == 96 and cuda_step.kv_bucket(5, 32) == 32


@pytest.mark.parametrize("case", list(CASES))
def test_static_step_equals_the_dynamic_forward(fp32, case: str) -> None:
    """The same logits (1e-5) and the same cache writes (1e-6) as today's forward, which on CPU is
    the native one-op step; the static step attends over the whole bucket, masked."""
    tokens, pos = (torch.tensor(x) for x in CASES[case])
    fill_slots(fp32)
    before = [t.clone() for t in caches(fp32)]
    with torch.inference_mode():
        dynamic = fp32(tokens[:, None], pos, kv_len=int(pos.max()) + 1)[:, 0]
        written = [t.clone() for t in caches(fp32)]
        for t, saved in zip(caches(fp32), before):
            t.copy_(saved)
        static = cuda_step.run_static_step(fp32, tokens, pos, int(pos.max()) + 1)
    assert static.shape == (len(tokens), 128256) and static.dtype == torch.float32
    torch.testing.assert_close(static, dynamic, rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(caches(fp32), written):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def test_static_step_traces_whole_and_one_compile_serves_every_bucket(fp32) -> None:
    """torch.compile(fullgraph=True) raises at any graph break (a host sync, a branch on a value);
    the key window is dynamic, so windows 64 and 128 share one compile."""
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()  # count this test's compiles only
    counter = CompileCounterWithBackend("eager")
    compiled = torch.compile(cuda_step.decode_step, backend=counter, fullgraph=True)
    fill_slots(fp32)
    tokens, pos = torch.tensor([374]), torch.tensor([5])
    with torch.inference_mode():
        for kv_len in (6, 73, 6):
            eager = cuda_step.run_static_step(fp32, tokens, pos, kv_len)
            assert torch.equal(cuda_step.run_static_step(fp32, tokens, pos, kv_len, step=compiled), eager)
    assert counter.frame_count == 1


@pytest.mark.parametrize("dtype", ["fp32", "int8"])
def test_the_per_layer_compiled_step_traces_whole(tiny_ckpt: Path, dtype: str) -> None:
    """As the CUDA path compiles it (compiled_step: the layer and the head, fullgraph each)."""
    model = load_model(tiny_ckpt, max_seq_len=64, max_batch_size=2, dtype=dtype, device="cpu")[0]
    compiled = cuda_step.compiled_step(backend="eager")
    with torch.inference_mode():
        tokens, pos = torch.tensor([374, 9822]), torch.tensor([0, 0])
        assert torch.equal(cuda_step.run_static_step(model, tokens, pos, 1, step=compiled),
                           cuda_step.run_static_step(model, tokens, pos, 1))


def dequantized_state_dict(model, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The checkpoint with every matmul weight replaced by q * scale of the model's int8 copy,
    in float64 (computed here, not by Int8Weight.dequantize); norms and embedding as loaded."""
    def rows(w: Int8Weight) -> torch.Tensor:
        return w.q.double() * w.scale.double()[:, None]

    out = {k: v.double() for k, v in sd.items()}
    for i, layer in enumerate(model.layers):
        p, attn, ffn = f"layers.{i}.", layer.attention, layer.feed_forward
        hd = attn.head_dim
        wq, wk, wv = rows(attn.wqkv).split([attn.n_local_heads * hd, attn.n_local_kv_heads * hd,
                                           attn.n_local_kv_heads * hd])
        w1, w3 = rows(ffn.w13).chunk(2)
        out |= {p + "attention.wq.weight": wq, p + "attention.wk.weight": wk, p + "attention.wv.weight": wv,
                p + "attention.wo.weight": rows(attn.wo_weight), p + "feed_forward.w1.weight": w1,
                p + "feed_forward.w3.weight": w3, p + "feed_forward.w2.weight": rows(ffn.w2_weight)}
    out["output.weight"] = rows(model.output_weight)
    return out


def test_int8_static_step_equals_a_float64_reference_of_its_weights(tiny_ckpt: Path) -> None:
    """Weight-only int8 (activations in float32, row scales after the matmul) against transformers
    in float64 on q * scale: every position's logits within 1e-5 (float32 sums; the quantization
    error itself, against the float weights, is about 0.08)."""
    model = load_model(tiny_ckpt, max_seq_len=64, max_batch_size=1, dtype="int8", device="cpu")[0]
    tokens = PROMPT + TINY_GREEDY[:4]
    reference = hf_model(model.args, dequantized_state_dict(model, read_shard(locate(tiny_ckpt).shards[0]))).double()
    with torch.inference_mode():
        ours = torch.stack([cuda_step.run_static_step(model, torch.tensor([t]), torch.tensor([i]), i + 1)[0]
                            for i, t in enumerate(tokens)])
        theirs = reference(torch.tensor([tokens])).logits[0]
    assert (ours.double() - theirs).abs().max().item() <= 1e-5


def static_greedy(model, prompt: list[int], n: int) -> list[int]:
    """Greedy ids from the static step alone: the prompt fed one token at a time, then n tokens."""
    out: list[int] = []
    with torch.inference_mode():
        for i, t in enumerate(prompt + [0] * n):
            token = torch.tensor([t if i < len(prompt) else out[-1]])
            logits = cuda_step.run_static_step(model, token, torch.tensor([i]), i + 1)
            if i >= len(prompt) - 1 and len(out) < n:
                out.append(int(logits[0].argmax()))
    return out


def test_int8_static_greedy_is_pinned(tiny_ckpt: Path, fp32) -> None:
    """Weight-only int8 keeps fp32's greedy ids for 17 tokens (as the CPU's W8A8 kernel does: the
    same 20 ids); fp32 through the static step gives fp32's pinned ids."""
    int8 = load_model(tiny_ckpt, max_seq_len=64, max_batch_size=1, dtype="int8", device="cpu")[0]
    assert static_greedy(int8, PROMPT, 20) == TINY_GREEDY_INT8
    assert static_greedy(fp32, PROMPT, 20) == TINY_GREEDY


def test_no_graphs_off_cuda_or_when_switched_off(fp32, monkeypatch: pytest.MonkeyPatch) -> None:
    assert fp32._graphs is None  # on CPU the native decode step stays the default
    monkeypatch.setenv("LLAMA_CUDA_GRAPHS", "0")
    assert not cuda_step.graphs_enabled()
    monkeypatch.setenv("LLAMA_CUDA_GRAPHS", "1")
    assert cuda_step.graphs_enabled()


# ---- CUDA ------------------------------------------------------------------------------------------


def cuda_model(tiny_ckpt: Path, dtype: str):
    """The tiny model on CUDA; every test's the same shapes, so they share the step's compiles."""
    return load_model(tiny_ckpt, max_seq_len=256, max_batch_size=4, dtype=dtype, device="cuda")[0]


def dynamic(model, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Today's forward on CUDA: the graphs set aside."""
    graphs, model._graphs = model._graphs, None
    try:
        with torch.inference_mode():
            return model(tokens[:, None], pos, kv_len=int(pos.max()) + 1)[:, 0]
    finally:
        model._graphs = graphs


def graphed(model, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(tokens[:, None], pos, kv_len=int(pos.max()) + 1)[:, 0]


def steps(model, reference, rows: int, n: int):
    """n decode steps of rows 0..rows-1 from fill_slots' positions (crossing window 64 -> 128 on
    row 0): each step's (graphed, dynamic, reference) logits; the next tokens are the reference's."""
    fill_slots(model)
    fill_slots(reference)
    tokens, pos = torch.tensor([374, 9822, 315][:rows], device="cuda"), torch.tensor([60, 2, 72][:rows], device="cuda")
    with torch.inference_mode():  # row 0 jumps to 60: its keys 5..59 are zeros, the same on every path
        out = []
        for _ in range(n):
            g, d, r = graphed(model, tokens, pos), dynamic(model, tokens, pos), dynamic(reference, tokens, pos)
            out.append((g, d, r))
            tokens, pos = r.argmax(-1), pos + 1
    return out


@needs_cuda
@pytest.mark.parametrize("rows", [1, 3])
def test_cuda_graphed_fp32_equals_the_dynamic_forward(tiny_ckpt: Path, rows: int) -> None:
    model = cuda_model(tiny_ckpt, "fp32")
    assert model._graphs is not None
    for g, d, _ in steps(model, cuda_model(tiny_ckpt, "fp32"), rows, 8):
        torch.testing.assert_close(g, d, rtol=1e-4, atol=1e-4)  # reordered float32 sums
    assert {L for (_, L) in model._graphs.graphs} == ({64, 128} if rows == 1 else {128}) and model._graphs.compiled


@needs_cuda
@pytest.mark.parametrize("rows", [1, 3])
def test_cuda_graphed_bf16_is_as_close_to_fp32_as_the_dynamic_forward(tiny_ckpt: Path, rows: int) -> None:
    """bf16 rounds differently fused: both within twice the other's error of fp32, plus 0.02."""
    for g, d, r in steps(cuda_model(tiny_ckpt, "bf16"), cuda_model(tiny_ckpt, "fp32"), rows, 8):
        err_graphed, err_dynamic = (g - r).abs().max().item(), (d - r).abs().max().item()
        assert err_graphed <= 2 * err_dynamic + 0.02, (err_graphed, err_dynamic)


@needs_cuda
@pytest.mark.parametrize("dtype", ["fp32", "int8"])
def test_cuda_graph_replay_equals_the_step_it_captured(tiny_ckpt: Path, dtype: str) -> None:
    model = cuda_model(tiny_ckpt, dtype)
    fill_slots(model)
    tokens, pos = torch.tensor([374, 9822], device="cuda"), torch.tensor([5, 2], device="cuda")
    replayed = graphed(model, tokens, pos)
    decoder = model._graphs
    assert list(decoder.graphs) == [(2, 64)] and decoder.compiled and not decoder.failed
    with torch.inference_mode():
        direct = cuda_step.run_static_step(model, tokens, pos, 6, step=decoder.step)
    assert torch.equal(replayed, direct)


@needs_cuda
def test_cuda_int8_stays_close_to_bf16(tiny_ckpt: Path) -> None:
    for g, _, r in steps(cuda_model(tiny_ckpt, "int8"), cuda_model(tiny_ckpt, "bf16"), 3, 4):
        assert F.cosine_similarity(g.flatten(), r.flatten(), dim=0).item() > 0.995


@needs_cuda
def test_cuda_greedy_through_batch_is_fp32s(tiny_ckpt: Path) -> None:
    """Batch (the engine's stepper) on the graphed path: the pinned fp32 greedy ids."""
    model = cuda_model(tiny_ckpt, "fp32")
    assert [r.token for r in generate(model, PROMPT, GenParams(max_tokens=20))] == TINY_GREEDY
    assert (1, 64) in model._graphs.graphs


@needs_cuda
def test_cuda_capture_failure_falls_back_with_one_log_line(tiny_ckpt: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A step that syncs with the host cannot be captured: one warning, then the dynamic forward."""
    model = cuda_model(tiny_ckpt, "fp32")
    decoder = model._graphs

    def syncing_step(*args):
        logits = cuda_step.decode_step(*args)
        return logits * (logits.sum().item() == logits.sum().item())  # .item(): illegal while capturing

    decoder.step, decoder.compiled = syncing_step, False
    fill_slots(model)
    tokens, pos = torch.tensor([374], device="cuda"), torch.tensor([5], device="cuda")
    with caplog.at_level(logging.WARNING, logger="llama_core.engine.cuda_step"):
        out = graphed(model, tokens, pos)
        graphed(model, tokens, pos)
    assert decoder.failed and not decoder.graphs
    ours = [r for r in caplog.records if r.name == "llama_core.engine.cuda_step"]
    assert [r.getMessage().split(" (")[0] for r in ours] == ["CUDA graph capture of the decode step failed"]
    torch.testing.assert_close(out, dynamic(model, tokens, pos), rtol=0, atol=0)
    assert torch.cuda.current_stream() == torch.cuda.default_stream()  # not left on the failed capture's stream


@needs_cuda
def test_a_capture_failing_beside_working_graphs_refuses_that_shape_only(tiny_ckpt: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Once a shape has a graph, another shape's failed capture (out of memory, say) sends that shape
    alone to the dynamic forward; the captured graphs keep replaying."""
    model = cuda_model(tiny_ckpt, "fp32")
    decoder = model._graphs
    fill_slots(model)
    one = (torch.tensor([374], device="cuda"), torch.tensor([5], device="cuda"))
    graphed(model, *one)
    assert list(decoder.graphs) == [(1, 64)]
    working = decoder.step

    def syncing_step(*args):
        logits = working(*args)
        return logits * (logits.sum().item() == logits.sum().item())  # .item(): illegal while capturing

    decoder.step = syncing_step
    two = (torch.tensor([374, 9822], device="cuda"), torch.tensor([5, 2], device="cuda"))
    with caplog.at_level(logging.WARNING, logger="llama_core.engine.cuda_step"):
        out = graphed(model, *two)
    assert decoder.refused == {(2, 64)} and not decoder.failed and list(decoder.graphs) == [(1, 64)]
    assert [r.getMessage().split(" (")[0] for r in caplog.records if r.name == "llama_core.engine.cuda_step"] == [
        "CUDA graph capture of the decode step for 2 rows and 64 keys failed"]
    torch.testing.assert_close(out, dynamic(model, *two), rtol=0, atol=0)
    assert torch.cuda.current_stream() == torch.cuda.default_stream()
    torch.testing.assert_close(graphed(model, *one), dynamic(model, *one), rtol=1e-4, atol=1e-4)  # still replayed


@needs_cuda
def test_cuda_warm_up_compiles_and_captures_before_any_request_and_leaves_greedy_unchanged(tiny_ckpt: Path) -> None:
    """The worker calls warm_up at load: batch 1's first graph exists before the first request, and
    the dummy step it runs at slot 0 changes nothing that request sees."""
    model = cuda_model(tiny_ckpt, "fp32")
    model.warm_up()
    assert list(model._graphs.graphs) == [(1, 64), (2, 64)] and model._graphs.compiled and not model._graphs.failed
    assert [r.token for r in generate(model, PROMPT, GenParams(max_tokens=20))] == TINY_GREEDY
