"""Meta checkpoint layout: find, check, shard and load `params.json` + `consolidated.NN.pth` + tokenizer.

    <dir>/params.json                the ModelArgs
    <dir>/consolidated.00.pth ...    one state dict per model-parallel rank
    <dir>/tokenizer.model            Llama 3 (tiktoken); or tokenizer.json + chat_template.jinja
    <dir>/original/...               the same, as Hugging Face repos keep it

Every problem with the files is a one-line CheckpointError that names the file and what to do.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from llama_core.engine.args import ModelArgs
from llama_core.engine.model import Transformer, build_model
from llama_core.errors import CheckpointError

# Model-parallel split axis of each weight, by its last-but-one name part (None: replicated).
# Column-parallel layers split their output rows (dim 0), row-parallel ones their input columns (dim 1);
# Llama 3 splits the embedding on the vocab axis (VocabParallelEmbedding), like `output`.
SHARD_DIM: dict[str, int | None] = {
    "tok_embeddings": 0,
    "wq": 0, "wk": 0, "wv": 0, "wo": 1,
    "w1": 0, "w3": 0, "w2": 1,
    "output": 0,
    "attention_norm": None, "ffn_norm": None, "norm": None,
}

TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json")
CHAT_TEMPLATE_FILE = "chat_template.jinja"
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclasses.dataclass(frozen=True)
class CheckpointFiles:
    """Where one Meta-layout checkpoint's files are."""

    dir: Path
    params: Path
    shards: list[Path]
    tokenizer: Path | None
    chat_template: Path | None


def locate(path: str | Path) -> CheckpointFiles:
    """Find the Meta layout in `path` or `path/original`; CheckpointError if it is not there."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise CheckpointError(f"Checkpoint directory {root} does not exist. Download the model first (`llama download`).")
    for d in (root, root / "original"):
        if (d / "params.json").is_file():
            shards = sorted(d.glob("consolidated.*.pth"))
            if not shards:
                raise CheckpointError(f"No consolidated.NN.pth files in {d}; the download looks incomplete.")
            tokenizer = next((p for n in TOKENIZER_FILES for p in (d / n, root / n) if p.is_file()), None)
            template = next((p for p in (d / CHAT_TEMPLATE_FILE, root / CHAT_TEMPLATE_FILE) if p.is_file()), None)
            return CheckpointFiles(d, d / "params.json", shards, tokenizer, template)
    raise CheckpointError(f"No params.json in {root} or {root / 'original'}; not a Meta-layout checkpoint.")


def tokenizer_vocab_size(path: Path) -> int:
    """Number of token ids a tokenizer file can produce (tiktoken ranks + 256 specials, or tokenizer.json)."""
    if path.name.endswith(".model"):
        with path.open("rb") as f:
            ranks = [int(line.split()[1]) for line in f if line.strip()]
        return max(ranks) + 1 + 256  # Llama 3 reserves 256 special ids after the BPE ranks
    data = json.loads(path.read_text())
    ids = list(data.get("model", {}).get("vocab", {}).values()) + [t["id"] for t in data.get("added_tokens", [])]
    return max(ids) + 1 if ids else 0


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA, fp16 on MPS, fp32 on CPU."""
    return {"cuda": torch.bfloat16, "mps": torch.float16}.get(device.type, torch.float32)


INT8 = "int8"  # weight-only: matmul weights int8 per output row, activations in the device's default dtype
# The checkpoint's own GGUF file's quantized blocks (Q4_0, Q4_1, Q8_0) as the matmul weights, int8
# where it has none; activations as int8's. The demo model keeps its GGUF beside the converted files.
GGUF = "gguf"


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The activation (compute) dtype for a dtype name; int8 computes in the device's default."""
    if dtype is None or dtype in (INT8, GGUF):
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise CheckpointError(f"Unknown dtype '{dtype}'; choose one of {', '.join([*DTYPES, INT8, GGUF])}.")
    return DTYPES[dtype]


def shard_state_dict(state_dict: dict[str, Tensor], n: int) -> list[dict[str, Tensor]]:
    """Split a full state dict into `n` model-parallel shards along SHARD_DIM."""
    shards: list[dict[str, Tensor]] = [{} for _ in range(n)]
    for key, t in state_dict.items():
        dim = SHARD_DIM[key.split(".")[-2]]
        parts = [t] * n if dim is None else list(torch.chunk(t, n, dim=dim))
        if dim is not None and t.shape[dim] % n:
            raise CheckpointError(f"{key} {tuple(t.shape)} does not split into {n} equal shards.")
        for shard, part in zip(shards, parts):
            shard[key] = part.clone()
    return shards


def save_checkpoint(dest: str | Path, args: ModelArgs, state_dict: dict[str, Tensor], model_parallel: int = 1) -> Path:
    """Write params.json and consolidated.NN.pth (split for `model_parallel` ranks) into `dest`."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "params.json").write_text(json.dumps(args.to_params(), indent=2) + "\n")
    for rank, shard in enumerate(shard_state_dict(state_dict, model_parallel)):
        torch.save(shard, dest / f"consolidated.{rank:02d}.pth")
    return dest


def read_shard(path: Path) -> dict[str, Tensor]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # torch raises RuntimeError/UnpicklingError/EOFError for a bad file
        # torch's first sentence says what is wrong; the rest of its text is advice for its own users
        why = str(e).split(". ")[0].splitlines()[0].rstrip(".") if str(e).strip() else type(e).__name__
        raise CheckpointError(f"Cannot read {path}: {why}. Re-download it.") from None


def check_state_dict(state_dict: dict[str, Tensor], model: Transformer, source: Path) -> None:
    """Raise CheckpointError for missing, unexpected or wrongly shaped weights."""
    expected = {k: v.shape for k, v in model.state_dict().items()}
    if model.args.tie_word_embeddings:
        expected.pop("output.weight")
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected) - {"output.weight", "rope.freqs"})
    if missing:
        raise CheckpointError(f"{source.name} lacks {len(missing)} weights (first: {missing[0]}); it does not match params.json.")
    if unexpected:
        raise CheckpointError(f"{source.name} has {len(unexpected)} unknown weights (first: {unexpected[0]}).")
    for key, shape in expected.items():
        if state_dict[key].shape != shape:
            raise CheckpointError(
                f"{source.name}: {key} has shape {tuple(state_dict[key].shape)}, params.json implies {tuple(shape)}."
            )


def load_weights(model: Transformer, state_dict: dict[str, Tensor], source: Path) -> None:
    """Check, then copy `state_dict` into `model` (casting to the model's dtype)."""
    check_state_dict(state_dict, model, source)
    if model.args.tie_word_embeddings:
        state_dict = {k: v for k, v in state_dict.items() if k != "output.weight"}
    state_dict = {k: v for k, v in state_dict.items() if k != "rope.freqs"}  # Llama 2 leftover
    model.load_state_dict(state_dict, strict=not model.args.tie_word_embeddings)
    if model.args.tie_word_embeddings:
        model.tie_weights()


def load_model(
    path: str | Path,
    max_seq_len: int = 2048,
    max_batch_size: int = 1,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    **arg_overrides: Any,
) -> tuple[Transformer, CheckpointFiles]:
    """Build the Transformer for this rank and load its shard; caches set up for the given sizes.

    Needs the model-parallel group (parallel.init_model_parallel) already joined: the shard count
    must equal its size. Meta layout first; a Hugging Face safetensors directory is converted on load.
    """
    from llama_core.engine.parallel import model_parallel_rank, model_parallel_size

    dev = torch.device(device) if device is not None else default_device()
    dt = resolve_dtype(dtype, dev)
    root = Path(path).expanduser()
    int8 = dtype == INT8
    if not (root / "params.json").is_file() and not (root / "original" / "params.json").is_file():
        from llama_core.engine import hf

        if hf.is_hf_checkpoint(root):
            if dtype == GGUF:
                raise CheckpointError(f"{root} is a Hugging Face checkpoint, with no GGUF file; dtype gguf needs one.")
            return hf.load_hf_model(root, max_seq_len, max_batch_size, dt, dev, int8=int8, **arg_overrides)
    files = locate(root)
    args = ModelArgs.from_file(files.params, max_seq_len=max_seq_len, max_batch_size=max_batch_size, **arg_overrides)
    check_tokenizer(files, args)
    mp = model_parallel_size()
    if len(files.shards) != mp:
        raise CheckpointError(
            f"{files.dir} has {len(files.shards)} shards (consolidated.NN.pth) but model parallel size is {mp}; "
            f"run with {len(files.shards)} model-parallel processes."
        )
    shard = files.shards[model_parallel_rank()]
    state_dict = read_shard(shard)
    model = build_model(args, dtype=dt, device="cpu")
    load_weights(model, state_dict, shard)
    del state_dict
    model = model.to(dev)
    blocks = gguf_blocks(files, mp) if dtype == GGUF else None
    if blocks is not None and dev.type != "cpu":  # off the CPU, linear dequantizes them in torch, on the device
        blocks = {name: b._replace(blocks=b.blocks.to(dev)) for name, b in blocks.items()}
    model.prepare_weights(int8=int8, blocks=blocks)
    model.setup_caches(max_batch_size, max_seq_len)
    return model, files


def gguf_blocks(files: CheckpointFiles, model_parallel: int) -> dict[str, Any]:
    """The quantized blocks of the one GGUF file beside the checkpoint (engine/gguf.py's read_blocks)."""
    found = sorted({*files.dir.glob("*.gguf"), *files.dir.parent.glob("*.gguf")} if files.dir.name == "original"
                   else files.dir.glob("*.gguf"))
    if len(found) != 1:
        what = "no GGUF file" if not found else f"{len(found)} GGUF files"
        raise CheckpointError(f"{files.dir} has {what}; dtype gguf needs exactly one (the file the checkpoint came from).")
    if model_parallel > 1:
        raise CheckpointError("dtype gguf runs on one model-parallel rank only.")
    from llama_core.engine.gguf import read_blocks

    return read_blocks(found[0])


def check_tokenizer(files: CheckpointFiles, args: ModelArgs) -> None:
    """The tokenizer must exist and never produce an id past the embedding table."""
    if files.tokenizer is None:
        raise CheckpointError(f"No tokenizer ({' or '.join(TOKENIZER_FILES)}) in {files.dir}.")
    n = tokenizer_vocab_size(files.tokenizer)
    if n > args.vocab_size:
        raise CheckpointError(
            f"Vocab mismatch: {files.tokenizer.name} has {n} tokens but params.json says vocab_size {args.vocab_size}."
        )

