"""GGUF -> Meta layout: a tiny written GGUF (fast) and the demo model SmolLM2-135M-Instruct (slow,
fetched once per machine into a cache outside the per-test LLAMA_STACK_CONFIG_DIR)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llama_core.engine import gguf as engine_gguf
from llama_core.engine.args import ModelArgs
from llama_core.engine.checkpoint import load_model, read_shard, save_checkpoint
from llama_core.engine.messages import GenParams
from llama_core.errors import CheckpointError

from engine.hf_reference import hf_greedy, hf_model
from engine.solo import generate
from engine.tiny_checkpoint import random_state_dict
from engine.tiny_gguf import TEMPLATE, q8_round_trip, write_tiny_gguf

TINY = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=266, hidden_dim=96,
                 rope_theta=10000.0, tie_word_embeddings=True)


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return random_state_dict(TINY, seed=1)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, tiny_state) -> Path:
    tmp = tmp_path_factory.mktemp("gguf")
    return engine_gguf.convert_gguf(write_tiny_gguf(tmp / "tiny.gguf", TINY, tiny_state), tmp / "meta")


def test_tiny_gguf_converts_to_meta_layout(converted: Path, tiny_state) -> None:
    assert sorted(p.name for p in converted.iterdir()) == [
        "chat_template.jinja", "consolidated.00.pth", "params.json", "tokenizer.json", "tokenizer_config.json"]
    assert ModelArgs.from_file(converted / "params.json") == TINY
    assert (converted / "chat_template.jinja").read_text() == TEMPLATE
    # eos == bos in the file; the template's end-of-turn token is taken, and bos is not added twice
    assert json.loads((converted / "tokenizer_config.json").read_text()) == {
        "bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "add_bos_token": False}
    weights = read_shard(converted / "consolidated.00.pth")
    assert set(weights) == set(tiny_state)
    for name, t in tiny_state.items():
        expected = q8_round_trip(t) if name == "tok_embeddings.weight" else t
        assert torch.equal(weights[name], expected), name


def test_tiny_gguf_tokenizer(converted: Path) -> None:
    from tokenizers import Tokenizer

    tk = Tokenizer.from_file(str(converted / "tokenizer.json"))
    # hell+o, Ġwor+l+d by the merges; digits one at a time (the "smollm" pre-tokenizer)
    assert tk.encode("hello world").ids == [265, 114, 264, 111, 103]
    assert tk.encode("12").ids == [52, 53]
    assert tk.encode("<|im_start|>hi<|im_end|>").ids == [1, 107, 108, 2]
    assert tk.decode([265, 114, 264, 111, 103]) == "hello world"


def test_tiny_gguf_logits_equal_the_same_weights_in_meta_layout(converted: Path, tiny_state, tmp_path: Path) -> None:
    direct = dict(tiny_state, **{"tok_embeddings.weight": q8_round_trip(tiny_state["tok_embeddings.weight"])})
    save_checkpoint(tmp_path, TINY, direct)
    (tmp_path / "tokenizer.json").write_bytes((converted / "tokenizer.json").read_bytes())
    tokens, start = torch.tensor([[1, 265, 114, 264, 111, 103]]), torch.tensor([0])
    with torch.inference_mode():
        ours = load_model(converted, max_seq_len=16)[0](tokens, start)
        theirs = load_model(tmp_path, max_seq_len=16)[0](tokens, start)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"arch": "gpt2"}, "GGUF architecture 'gpt2' is not supported; only 'llama' is"),
     ({"tokenizer_model": "llama"}, "GGUF tokenizer model 'llama' is not supported")],
    ids=["arch", "tokenizer"],
)
def test_unsupported_gguf(tmp_path: Path, tiny_state, kwargs: dict, message: str) -> None:
    src = write_tiny_gguf(tmp_path / "x.gguf", TINY, tiny_state, **kwargs)
    with pytest.raises(CheckpointError, match=message):
        engine_gguf.convert_gguf(src, tmp_path / "out")


def test_not_a_gguf_file(tmp_path: Path) -> None:
    (tmp_path / "x.gguf").write_bytes(b"GGML nonsense")
    with pytest.raises(CheckpointError, match="Cannot read x.gguf as GGUF"):
        engine_gguf.convert_gguf(tmp_path / "x.gguf", tmp_path / "out")


# ---- the demo model ------------------------------------------------------------------------------

CHAT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def demo(demo_ckpt: Path):
    return load_model(demo_ckpt, max_seq_len=128, max_batch_size=2, dtype="fp32", device="cpu")


@pytest.fixture(scope="module")
def demo_tokens(demo_ckpt: Path) -> list[int]:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(demo_ckpt / "tokenizer.json")).encode(CHAT).ids


@pytest.mark.slow
def test_demo_model_files(demo_ckpt: Path, demo_tokens: list[int]) -> None:
    assert ModelArgs.from_file(demo_ckpt / "params.json").to_params() == {
        "dim": 576, "n_layers": 30, "n_heads": 9, "n_kv_heads": 3, "vocab_size": 49152, "multiple_of": 256,
        "norm_eps": 1e-5, "rope_theta": 100000.0, "use_scaled_rope": False, "hidden_dim": 1536,
        "tie_word_embeddings": True}
    assert demo_tokens == [1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198]


@pytest.mark.slow
def test_demo_model_matches_transformers(demo, demo_ckpt: Path, demo_tokens: list[int]) -> None:
    model, files = demo
    reference = hf_model(model.args, read_shard(files.shards[0]))
    with torch.inference_mode():
        diff = model(torch.tensor([demo_tokens]), torch.tensor([0])) - reference(torch.tensor([demo_tokens])).logits
    assert diff.abs().max().item() <= 1e-4
    ours = [r.token for r in generate(model, demo_tokens, GenParams(max_tokens=8))]
    assert ours == hf_greedy(reference, demo_tokens, 8) == [504, 3575, 282, 4649, 314, 7042, 30, 2]


@pytest.mark.slow
def test_demo_model_answers_paris(demo, demo_ckpt: Path, demo_tokens: list[int]) -> None:
    from tokenizers import Tokenizer

    model, _ = demo
    params = GenParams(max_tokens=24, stop_tokens=frozenset({2}))  # <|im_end|>
    ids = [r.token for r in generate(model, demo_tokens, params)]
    text = Tokenizer.from_file(str(demo_ckpt / "tokenizer.json")).decode(ids)
    assert text == "The capital of France is Paris."


@pytest.mark.slow
def test_demo_model_on_its_own_q4_1_blocks_answers_paris(demo_ckpt: Path, demo_tokens: list[int]) -> None:
    from tokenizers import Tokenizer

    model, _ = load_model(demo_ckpt, max_seq_len=128, dtype="gguf", device="cpu")
    assert (model.layers[0].attention.wqkv.kind, model.output_weight.kind) == ("q4_1", "q8_0")  # the file's own
    ids = [r.token for r in generate(model, demo_tokens, GenParams(max_tokens=24, stop_tokens=frozenset({2})))]
    assert Tokenizer.from_file(str(demo_ckpt / "tokenizer.json")).decode(ids) == "The capital of France is Paris."
