"""Loading checkpoints: model parallel 2 vs 1, the Hugging Face layout, and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from llama_core.engine import hf
from llama_core.engine.args import ModelArgs
from llama_core.engine.checkpoint import load_model, locate, read_shard, shard_state_dict, tokenizer_vocab_size
from llama_core.errors import CheckpointError

from engine.hf_reference import hf_model, permute_to_hf
from engine.ranks import run_model_parallel
from engine.tiny_checkpoint import TINY_ARGS, rank_logits, write_tiny_checkpoint

PROMPT = [128000, 791, 6864, 315, 9822, 374]


def logits(path: Path) -> torch.Tensor:
    model = load_model(path, max_seq_len=32, max_batch_size=1, dtype="fp32", device="cpu")[0]
    with torch.inference_mode():
        return model(torch.tensor([PROMPT]), torch.tensor([0]))[0]


@pytest.mark.slow
def test_model_parallel_2_equals_1(tiny_ckpt: Path, tiny_ckpt_mp2: Path) -> None:
    shards = [read_shard(p) for p in locate(tiny_ckpt_mp2).shards]
    assert shards[0]["layers.0.attention.wq.weight"].shape == (32, 64)  # 4 heads * 16 / 2 ranks
    assert shards[1]["layers.0.attention.wo.weight"].shape == (64, 32)  # row-parallel: split inputs
    assert shards[0]["tok_embeddings.weight"].shape == (64128, 64)  # vocab-parallel
    rank0, rank1 = run_model_parallel(rank_logits, 2, str(tiny_ckpt_mp2), PROMPT)
    assert rank0 == rank1
    assert (torch.tensor(rank0) - logits(tiny_ckpt)).abs().max().item() <= 1e-5


def test_shard_count_must_match_model_parallel_size(tiny_ckpt_mp2: Path) -> None:
    with pytest.raises(CheckpointError, match=r"has 2 shards \(consolidated.NN.pth\) but model parallel size is 1"):
        load_model(tiny_ckpt_mp2)


def test_original_subdirectory_and_hf_layout(tiny_ckpt: Path, tmp_path: Path) -> None:
    """An HF repo keeps the Meta files under original/; its safetensors load to the same logits."""
    expected = logits(tiny_ckpt)
    shutil.copytree(tiny_ckpt, tmp_path / "repo" / "original")
    assert torch.equal(logits(tmp_path / "repo"), expected)

    sd = read_shard(locate(tiny_ckpt).shards[0])
    hf_dir = tmp_path / "hf"
    hf_model(TINY_ARGS, sd).save_pretrained(hf_dir)  # transformers writes config.json + model.safetensors
    assert hf.is_hf_checkpoint(hf_dir)
    assert (logits(hf_dir) - expected).abs().max().item() <= 1e-5
    args, meta = hf.read_hf_checkpoint(hf_dir)
    assert args.ffn_hidden_dim == TINY_ARGS.ffn_hidden_dim and args.rope_scale == 8.0 and args.use_scaled_rope
    assert all(torch.equal(meta[k].float(), v.float()) for k, v in sd.items())


def test_q_k_permutation_round_trips() -> None:
    w = torch.arange(8 * 3, dtype=torch.float32).view(8, 3)  # 2 heads of head_dim 4
    hf_w = permute_to_hf(w, 2)
    assert hf_w[:, 0].tolist() == [0.0, 6.0, 3.0, 9.0, 12.0, 18.0, 15.0, 21.0]  # pairs -> halves per head
    assert torch.equal(hf.permute_from_hf(hf_w, 2), w)


def test_tokenizer_vocab_size_of_llama3(tiny_ckpt: Path) -> None:
    assert tokenizer_vocab_size(tiny_ckpt / "tokenizer.model") == 128256


def copy_ckpt(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def test_missing_files(tmp_path: Path, tiny_ckpt: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist. Download the model first"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="No params.json in .*empty or .*original; not a Meta-layout"):
        load_model(tmp_path / "empty")
    ckpt = copy_ckpt(tiny_ckpt, tmp_path / "no-shards")
    (ckpt / "consolidated.00.pth").unlink()
    with pytest.raises(CheckpointError, match="No consolidated.NN.pth files in .*download looks incomplete"):
        load_model(ckpt)
    ckpt = copy_ckpt(tiny_ckpt, tmp_path / "no-tokenizer")
    (ckpt / "tokenizer.model").unlink()
    with pytest.raises(CheckpointError, match=r"No tokenizer \(tokenizer.model or tokenizer.json\)"):
        load_model(ckpt)


def test_corrupt_shard(tmp_path: Path, tiny_ckpt: Path) -> None:
    ckpt = copy_ckpt(tiny_ckpt, tmp_path / "corrupt")
    (ckpt / "consolidated.00.pth").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="Cannot read .*consolidated.00.pth: .* Re-download it."):
        load_model(ckpt)


def edit_params(ckpt: Path, **changes: object) -> None:
    params = json.loads((ckpt / "params.json").read_text())
    (ckpt / "params.json").write_text(json.dumps({**params, **changes}))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dim": 128}, r"consolidated.00.pth: tok_embeddings.weight has shape \(128256, 64\), params.json implies \(128256, 128\)"),
        ({"n_layers": 3}, r"consolidated.00.pth lacks 9 weights \(first: layers.2.attention.wk.weight\)"),
        ({"n_layers": 1}, r"consolidated.00.pth has 9 unknown weights \(first: layers.1.attention.wk.weight\)"),
        ({"vocab_size": 128000}, "Vocab mismatch: tokenizer.model has 128256 tokens but params.json says vocab_size 128000"),
        ({"n_kv_heads": 3}, "n_heads 4 is not a multiple of n_kv_heads 3"),
    ],
    ids=["shape", "missing", "unexpected", "vocab", "bad-args"],
)
def test_params_that_do_not_match_the_weights(tmp_path: Path, tiny_ckpt: Path, changes: dict, message: str) -> None:
    ckpt = copy_ckpt(tiny_ckpt, tmp_path / "ckpt")
    edit_params(ckpt, **changes)
    with pytest.raises(CheckpointError, match=message):
        load_model(ckpt)


def test_tied_embeddings_share_one_weight(tmp_path: Path) -> None:
    args = ModelArgs(dim=32, n_layers=1, n_heads=2, vocab_size=128256, multiple_of=16, tie_word_embeddings=True)
    ckpt = write_tiny_checkpoint(tmp_path / "tied", args)
    assert "output.weight" not in read_shard(ckpt / "consolidated.00.pth")
    model = load_model(ckpt, max_seq_len=16)[0]
    assert model.output.weight is model.tok_embeddings.weight
    reference = hf_model(args, read_shard(ckpt / "consolidated.00.pth"))
    with torch.inference_mode():
        diff = model(torch.tensor([PROMPT]), torch.tensor([0])) - reference(torch.tensor([PROMPT])).logits
    assert diff.abs().max().item() <= 1e-4


def test_shard_state_dict_rejects_uneven_split() -> None:
    with pytest.raises(CheckpointError, match=r"layers.0.attention.wk.weight \(3, 4\) does not split into 2"):
        shard_state_dict({"layers.0.attention.wk.weight": torch.zeros(3, 4)}, 2)


def test_bf16_option(tiny_ckpt: Path) -> None:
    model = load_model(tiny_ckpt, max_seq_len=16, dtype="bf16", device="cpu")[0]
    assert model.tok_embeddings.weight.dtype == torch.bfloat16
    assert model.layers[0].attention.kv_cache.k_cache.dtype == torch.bfloat16
    with torch.inference_mode():
        out = model(torch.tensor([PROMPT]), torch.tensor([0]))[0]
    assert out.dtype == torch.float32  # logits are returned in float32
    assert (out - logits(tiny_ckpt)).abs().max().item() < 0.5  # bf16 rounding, same model
    with pytest.raises(CheckpointError, match="Unknown dtype 'int3'; choose one of fp32, bf16, fp16"):
        load_model(tiny_ckpt, dtype="int3")
