"""The model registry: one row per SKU, resolved by descriptor, Hugging Face repo or an older name.

Facts come from llama-models 0.0.63 (`sku_list.py`), hardware figures from its <= 0.0.14 releases,
the Prompt Guard pseudo-SKU from llama-stack, and the demo model from SmolLM2-135M-Instruct's config.
"""

from __future__ import annotations

import copy
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llama_core.errors import ModelNotFoundError
from llama_core.models.sampling import SAMPLING_SETS, as_sampling_params

if TYPE_CHECKING:
    from llama_core.types.common import SamplingParams


class ModelFamily(enum.StrEnum):
    llama2 = "llama2"
    llama3 = "llama3"
    llama3_1 = "llama3_1"
    llama3_2 = "llama3_2"
    llama3_3 = "llama3_3"
    safety = "safety"  # Llama Guard 2/3: Llama-architecture classifiers with the Llama 3 tokenizer
    prompt_guard = "prompt_guard"  # mDeBERTa classifier, not a Llama model
    smollm2 = "smollm2"  # the demo model: Llama architecture, its own tokenizer and chat template


class QuantizationFormat(enum.StrEnum):
    bf16 = "bf16"
    fp8_mixed = "fp8-mixed"  # fp8 rowwise, some weights kept in bf16
    int8 = "int8"
    int4 = "int4"


# Plain frozen dataclasses, not msgspec Structs: the registry is read by `llama model list`, which
# should not pay for the wire types. (The wire record is llama_core.types.models.Model.)


@dataclass(frozen=True, slots=True, kw_only=True)
class HardwareRequirements:
    """What serving the checkpoint as shipped needs: `gpu_count` GPUs of `memory_gb_per_gpu` GB each."""

    gpu_count: int
    memory_gb_per_gpu: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Model:
    """One SKU. `arch_args` is the checkpoint's params.json; `descriptor` names it everywhere else."""

    descriptor: str
    huggingface_repo: str | None
    context_length: int
    hardware_requirements: HardwareRequirements
    description: str
    arch_args: dict[str, Any]
    # strategy, temperature, top_p, top_k (llama_core.models.sampling); None: no recommendation
    recommended_sampling: Mapping[str, Any] | None
    quantization_format: QuantizationFormat
    pth_file_count: int
    family: ModelFamily
    featured: bool
    # RoPE frequency-scaling factor when `use_scaled_rope` (Meta hard-codes 8; 3.2 1B/3B need 32).
    rope_scaling_factor: float | None

    @property
    def recommended_sampling_params(self) -> SamplingParams | None:
        """The recommendation as request SamplingParams (a fresh object each time)."""
        return as_sampling_params(self.recommended_sampling)

    @property
    def core_model_id(self) -> str:
        """The descriptor without its `:variant` suffix."""
        return self.descriptor.partition(":")[0]

    @property
    def variant(self) -> str:
        return self.descriptor.partition(":")[2]

    @property
    def is_llama_architecture(self) -> bool:
        """True when `arch_args` describe a Llama transformer the engine can build (not Prompt Guard)."""
        return "dim" in self.arch_args


# --- Architecture arg sets (params.json), by name -------------------------------------------------


def _llama(
    dim: int,
    n_layers: int,
    n_heads: int,
    ffn_dim_multiplier: float | None,
    multiple_of: int,
    *,
    n_kv_heads: int = 8,
    vocab_size: int = 128256,
    rope_theta: float = 500000.0,
    use_scaled_rope: bool = True,
) -> dict[str, Any]:
    # Key order is params.json's as `llama model describe` prints it.
    args: dict[str, Any] = {"dim": dim, "n_layers": n_layers, "n_heads": n_heads, "n_kv_heads": n_kv_heads}
    args["vocab_size"] = vocab_size
    if ffn_dim_multiplier is not None:
        args["ffn_dim_multiplier"] = ffn_dim_multiplier
    args |= {"multiple_of": multiple_of, "norm_eps": 1e-05, "rope_theta": rope_theta}
    args["use_scaled_rope"] = use_scaled_rope
    return args


def _vision(chunk_size: int, cross_attention_layers: int) -> dict[str, Any]:
    return {
        "vision_chunk_size": chunk_size,
        "vision_max_num_chunks": 4,
        "vision_num_cross_attention_layers": cross_attention_layers,
    }


_INT4 = {"quantization_args": {"group_size": 256}}
_LORA = {"lora_args": {"rank": 16, "scale": 2.0}}

ARCH_ARGS: dict[str, dict[str, Any]] = {
    "3.1-8B": _llama(4096, 32, 32, 1.3, 1024),
    "3.1-70B": _llama(8192, 80, 64, 1.3, 4096),
    "3.1-405B": _llama(16384, 126, 128, 1.2, 4096),
    "3.1-405B-kv16": _llama(16384, 126, 128, 1.2, 4096, n_kv_heads=16),  # the mp16 shards
    "3.2-1B": _llama(2048, 16, 32, 1.5, 256),
    "3.2-3B": _llama(3072, 28, 24, 1.0, 256),
    "3.2-1B-qlora": _llama(2048, 16, 32, 1.5, 256) | _INT4 | _LORA,
    "3.2-1B-spinquant": _llama(2048, 16, 32, 1.5, 256) | _INT4,
    "3.2-3B-qlora": _llama(3072, 28, 24, 1.0, 256) | _INT4 | _LORA,
    "3.2-3B-spinquant": _llama(3072, 28, 24, 1.0, 256) | _INT4,
    "3.2-11B-V448": _llama(4096, 32, 32, 1.3, 1024) | _vision(448, 8),  # base 11B: 448-px tiles
    "3.2-11B-V560": _llama(4096, 32, 32, 1.3, 1024) | _vision(560, 8),
    "3.2-90B-V560": _llama(8192, 80, 64, 1.3, 4096) | _vision(560, 20),
    "3-8B": _llama(4096, 32, 32, 1.3, 1024, use_scaled_rope=False),  # also Llama Guard 3 8B
    "3-70B": _llama(8192, 80, 64, 1.3, 4096, use_scaled_rope=False),
    "guard2-8B": _llama(4096, 32, 32, 1.3, 256, vocab_size=32000, use_scaled_rope=False),
    # Pruned ExecuTorch model: explicit FFN width, and `rope_freq_base` as its params.json spells it.
    "guard3-1B-int4": {
        "dim": 2048, "n_layers": 12, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256,
        "rope_freq_base": 500000.0, "norm_eps": 1e-05, "hidden_dim": 6400, "use_scaled_rope": True,
    },  # fmt: skip
    # The real Llama 2 shapes (llama-models copies Llama 3 values here): no GQA below 70B, theta 1e4.
    "2-7B": _llama(4096, 32, 32, None, 256, n_kv_heads=32, vocab_size=32000, rope_theta=10000.0, use_scaled_rope=False),
    "2-13B": _llama(5120, 40, 40, None, 256, n_kv_heads=40, vocab_size=32000, rope_theta=10000.0, use_scaled_rope=False),
    "2-70B": _llama(8192, 80, 64, 1.3, 4096, vocab_size=32000, rope_theta=10000.0, use_scaled_rope=False),
    # SmolLM2-135M-Instruct (HF config.json): explicit FFN width, tied input/output embeddings.
    "smollm2-135M": {
        "dim": 576, "n_layers": 30, "n_heads": 9, "n_kv_heads": 3, "vocab_size": 49152, "hidden_dim": 1536,
        "norm_eps": 1e-05, "rope_theta": 100000.0, "use_scaled_rope": False, "tie_word_embeddings": True,
    },  # fmt: skip
    # Prompt-Guard-86M is mDeBERTa-v3-base (HF config.json); labels BENIGN, INJECTION, JAILBREAK.
    "prompt-guard": {
        "model_type": "deberta-v2", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
        "intermediate_size": 3072, "vocab_size": 251000, "max_position_embeddings": 512,
        "position_buckets": 256, "layer_norm_eps": 1e-07, "num_labels": 3,
    },  # fmt: skip
}

# Llama 3.2 1B/3B (and Guard 3 1B, tuned from them) were trained with RoPE scaling factor 32.
_ROPE_SCALE_32 = {"3.2-1B", "3.2-3B", "3.2-1B-qlora", "3.2-1B-spinquant", "3.2-3B-qlora", "3.2-3B-spinquant",
                  "guard3-1B-int4"}  # fmt: skip

# --- The SKU table ---------------------------------------------------------------------------------
# HF repo: "meta-llama/" is implied when it has no "/". ctx in tokens. hw = (GPUs, GB per GPU);
# Llama 3.2, 3.3 and Guard 3 1B/11B postdate Meta's hardware column: their figures are estimated
# as bf16 weights per model-parallel shard plus ~25% for activations and KV cache, rounded up.
# Where Meta's old figure named fewer GPUs than the checkpoint has shards (70B at 3 GPUs), we use
# the shard count: the reference engine needs one GPU per shard. 0 GPUs: it runs on a CPU (GB: on a GPU).
# sampling: a name in llama_core.models.sampling.SAMPLING_SETS. shown: featured (else --show-all).

K4, K8, K128 = 4096, 8192, 131072
_Row = tuple[str, str | None, int, tuple[int, int], str, str, str, int, str, bool, str]
_ROWS: tuple[_Row, ...] = (
    # descriptor                 HF repo                ctx  hw     arch        sampling  q     pth  family  shown  description
    ("Llama-2-7b", "Llama-2-7b", K4, (1, 20), "2-7B", "meta", "bf16", 1, "llama2", False, "Llama 2 7b model"),
    ("Llama-2-13b", "Llama-2-13b", K4, (1, 28), "2-13B", "meta", "bf16", 1, "llama2", False, "Llama 2 13b model"),
    ("Llama-2-70b", "Llama-2-70b", K4, (8, 20), "2-70B", "meta", "bf16", 8, "llama2", False, "Llama 2 70b model"),
    ("Llama-2-7b-chat", "Llama-2-7b-chat", K4, (1, 14), "2-7B", "meta", "bf16", 1, "llama2", False, "Llama 2 7b chat model"),
    ("Llama-2-13b-chat", "Llama-2-13b-chat", K4, (1, 28), "2-13B", "meta", "bf16", 1, "llama2", False, "Llama 2 13b chat model"),
    ("Llama-2-70b-chat", "Llama-2-70b-chat", K4, (8, 20), "2-70B", "meta", "bf16", 8, "llama2", False, "Llama 2 70b chat model"),
    ("Llama-3-8B", "Llama-3-8B", K8, (1, 20), "3-8B", "none", "bf16", 1, "llama3", False, "Llama 3 8b model"),
    ("Llama-3-70B", "Llama-3-70B", K8, (8, 20), "3-70B", "meta", "bf16", 8, "llama3", False, "Llama 3 70b model"),
    ("Llama-3-8B-Instruct", "Llama-3-8B-Instruct", K8, (1, 20), "3-8B", "meta", "bf16", 1, "llama3", False, "Llama 3 8b instruct model"),
    ("Llama-3-70B-Instruct", "Llama-3-70B-Instruct", K8, (8, 20), "3-70B", "meta", "bf16", 8, "llama3", False, "Llama 3 70b instruct model"),
    ("Llama3.1-8B", "Llama-3.1-8B", K128, (1, 20), "3.1-8B", "meta", "bf16", 1, "llama3_1", True, "Llama 3.1 8b model"),
    ("Llama3.1-70B", "Llama-3.1-70B", K128, (8, 20), "3.1-70B", "meta", "bf16", 8, "llama3_1", True, "Llama 3.1 70b model"),
    ("Llama3.1-405B:bf16-mp8", "Llama-3.1-405B", K128, (8, 120), "3.1-405B", "meta", "bf16", 8, "llama3_1", True, "Llama 3.1 405b model (BF16 weights)"),
    ("Llama3.1-405B", "Llama-3.1-405B-FP8", K128, (8, 70), "3.1-405B", "meta", "fp8-mixed", 8, "llama3_1", True, "Llama 3.1 405b model (FP8 quantized)"),
    ("Llama3.1-405B:bf16-mp16", "Llama-3.1-405B", K128, (16, 70), "3.1-405B-kv16", "meta", "bf16", 16, "llama3_1", True, "Llama 3.1 405b model (BF16 weights for mp16)"),
    ("Llama3.1-8B-Instruct", "Llama-3.1-8B-Instruct", K128, (1, 20), "3.1-8B", "meta", "bf16", 1, "llama3_1", True, "Llama 3.1 8b instruct model"),
    ("Llama3.1-70B-Instruct", "Llama-3.1-70B-Instruct", K128, (8, 20), "3.1-70B", "meta", "bf16", 8, "llama3_1", True, "Llama 3.1 70b instruct model"),
    ("Llama3.1-405B-Instruct:bf16-mp8", "Llama-3.1-405B-Instruct", K128, (8, 120), "3.1-405B", "meta", "bf16", 8, "llama3_1", True, "Llama 3.1 405b instruct model (BF16 weights)"),
    ("Llama3.1-405B-Instruct", "Llama-3.1-405B-Instruct-FP8", K128, (8, 70), "3.1-405B", "meta", "fp8-mixed", 8, "llama3_1", True, "Llama 3.1 405b instruct model (FP8 quantized)"),
    ("Llama3.1-405B-Instruct:bf16-mp16", "Llama-3.1-405B-Instruct", K128, (16, 70), "3.1-405B-kv16", "meta", "bf16", 16, "llama3_1", True, "Llama 3.1 405b instruct model (BF16 weights for mp16)"),
    ("Llama3.2-1B", "Llama-3.2-1B", K128, (1, 4), "3.2-1B", "meta", "bf16", 1, "llama3_2", True, "Llama 3.2 1b model"),
    ("Llama3.2-3B", "Llama-3.2-3B", K128, (1, 8), "3.2-3B", "meta", "bf16", 1, "llama3_2", True, "Llama 3.2 3b model"),
    ("Llama3.2-11B-Vision", "Llama-3.2-11B-Vision", K128, (1, 28), "3.2-11B-V448", "meta", "bf16", 1, "llama3_2", True, "Llama 3.2 11b vision model"),
    ("Llama3.2-90B-Vision", "Llama-3.2-90B-Vision", K128, (8, 28), "3.2-90B-V560", "meta", "bf16", 8, "llama3_2", True, "Llama 3.2 90b vision model"),
    ("Llama3.2-1B-Instruct", "Llama-3.2-1B-Instruct", K128, (1, 4), "3.2-1B", "meta", "bf16", 1, "llama3_2", True, "Llama 3.2 1b instruct model"),
    ("Llama3.2-3B-Instruct", "Llama-3.2-3B-Instruct", K128, (1, 8), "3.2-3B", "meta", "bf16", 1, "llama3_2", True, "Llama 3.2 3b instruct model"),
    ("Llama3.2-1B-Instruct:int4-qlora-eo8", "Llama-3.2-1B-Instruct-QLORA_INT4_EO8", K8, (1, 2), "3.2-1B-qlora", "meta", "int4", 1, "llama3_2", True, "Llama 3.2 1b INT4 quantized LoRA"),
    ("Llama3.2-1B-Instruct:int4-spinquant-eo8", "Llama-3.2-1B-Instruct-SpinQuant_INT4_EO8", K8, (1, 2), "3.2-1B-spinquant", "meta", "int4", 1, "llama3_2", True, "Llama 3.2 1b INT4 quantized SpinQuant"),
    ("Llama3.2-3B-Instruct:int4-qlora-eo8", "Llama-3.2-3B-Instruct-QLORA_INT4_EO8", K8, (1, 4), "3.2-3B-qlora", "meta", "int4", 1, "llama3_2", True, "Llama 3.2 3b INT4 quantized LoRA"),
    ("Llama3.2-3B-Instruct:int4-spinquant-eo8", "Llama-3.2-3B-Instruct-SpinQuant_INT4_EO8", K8, (1, 4), "3.2-3B-spinquant", "meta", "int4", 1, "llama3_2", True, "Llama 3.2 3b INT4 quantized SpinQuant"),
    ("Llama3.2-11B-Vision-Instruct", "Llama-3.2-11B-Vision-Instruct", K128, (1, 28), "3.2-11B-V560", "meta", "bf16", 1, "llama3_2", True, "Llama 3.2 11b vision instruct model"),
    ("Llama3.2-90B-Vision-Instruct", "Llama-3.2-90B-Vision-Instruct", K128, (8, 28), "3.2-90B-V560", "meta", "bf16", 8, "llama3_2", True, "Llama 3.2 90b vision instruct model"),
    ("Llama3.3-70B-Instruct", "Llama-3.3-70B-Instruct", K128, (8, 20), "3.1-70B", "meta", "bf16", 8, "llama3_3", True, "Llama 3.3 70b instruct"),
    ("Llama-Guard-3-11B-Vision", "Llama-Guard-3-11B-Vision", K128, (1, 28), "3.2-11B-V560", "meta", "bf16", 1, "safety", True, "Llama Guard v3 11b vision system safety model"),
    ("Llama-Guard-3-1B:int4", "Llama-Guard-3-1B-INT4", K128, (1, 1), "guard3-1B-int4", "meta", "int4", 1, "safety", True, "Llama Guard v3 1b 'int4' quantized system safety model"),
    ("Llama-Guard-3-1B", "Llama-Guard-3-1B", K128, (1, 4), "3.2-1B", "meta", "bf16", 1, "safety", True, "Llama Guard v3 1b system safety model"),
    ("Llama-Guard-3-8B", "Llama-Guard-3-8B", K128, (1, 20), "3-8B", "none", "bf16", 1, "safety", True, "Llama Guard v3 8b system safety model"),
    ("Llama-Guard-3-8B:int8", "Llama-Guard-3-8B-INT8", K128, (1, 10), "3-8B", "none", "int8", 1, "safety", True, "Llama Guard v3 8b system safety model"),
    ("Llama-Guard-2-8B", "Llama-Guard-2-8B", K4, (1, 20), "guard2-8B", "none", "bf16", 1, "safety", True, "Llama Guard v2 8b system safety model"),
    ("Prompt-Guard-86M", "Prompt-Guard-86M", 512, (1, 1), "prompt-guard", "none", "bf16", 1, "prompt_guard", True, "Prompt Guard: classifies prompt injections and jailbreaks (mDeBERTa, 86M)"),
    ("SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", K8, (0, 1), "smollm2-135M", "smollm2", "bf16", 1, "smollm2", True, "SmolLM2 135M instruct: a small Llama-architecture demo model that runs on CPU"),
)  # fmt: skip


def _model(row: _Row) -> Model:
    descriptor, repo, ctx, (gpus, gb), arch, sampling, q, pth, family, shown, description = row
    args = copy.deepcopy(ARCH_ARGS[arch])  # each Model owns its dict
    scale = None if not args.get("use_scaled_rope") else 32.0 if arch in _ROPE_SCALE_32 else 8.0
    return Model(
        descriptor=descriptor,
        huggingface_repo=None if repo is None else repo if "/" in repo else f"meta-llama/{repo}",
        context_length=ctx,
        hardware_requirements=HardwareRequirements(gpu_count=gpus, memory_gb_per_gpu=gb),
        description=description,
        arch_args=args,
        recommended_sampling=SAMPLING_SETS[sampling],
        quantization_format=QuantizationFormat(q),
        pth_file_count=pth,
        family=ModelFamily(family),
        featured=shown,
        rope_scaling_factor=scale,
    )


MODELS: tuple[Model, ...] = tuple(_model(row) for row in _ROWS)

# Older spellings from the reference era (llama-models <= 0.0.34) -> today's, applied to lower-cased ids.
_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^meta-llama3\."), "llama3."),  # Meta-Llama3.1-8B -> Llama3.1-8B
    (re.compile(r"^meta-llama3-"), "llama-3-"),  # Meta-Llama3-8B -> Llama-3-8B
    (re.compile(r"^meta-llama-guard-"), "llama-guard-"),  # Meta-Llama-Guard-3-8B
    (re.compile(r"^meta-llama/meta-llama-"), "meta-llama/llama-"),  # meta-llama/Meta-Llama-3.1-8B
    (re.compile(r":(int8|int4)-mp1$"), r":\1"),  # Llama-Guard-3-8B:int8-mp1 -> :int8
)


def _build_index() -> dict[str, Model]:
    # Lower-cased key -> model; the first registration wins, so `meta-llama/Llama-3.1-405B` is
    # the bf16-mp8 entry, as in the reference. Checkpoint folder names (':' -> '-') resolve too.
    index: dict[str, Model] = {}
    for key_of in (
        lambda m: m.descriptor,
        lambda m: m.huggingface_repo,
        lambda m: m.descriptor.replace(":", "-"),
    ):
        for m in MODELS:
            key = key_of(m)
            if key:
                index.setdefault(key.lower(), m)
    return index


_INDEX = _build_index()


def _candidates(model_id: str) -> list[str]:
    key = model_id.strip().lower()
    keys = [key]
    for pattern, replacement in _REWRITES:
        key = pattern.sub(replacement, key)
        if key != keys[-1]:
            keys.append(key)
    return keys


def closest_descriptors(model_id: str, n: int = 3) -> list[str]:
    """Up to `n` registered descriptors that look most like `model_id` (difflib ratio)."""
    import difflib  # only on the error path

    by_lower = {m.descriptor.lower(): m.descriptor for m in MODELS}
    key = _candidates(model_id)[-1]
    # A ratio of 0.6 needs len(key) <= 7/3 * len(descriptor): a longer id matches nothing, and
    # difflib would first index every character of it (a 10 MB id: most of a second).
    if len(key) > 3 * max(map(len, by_lower)):
        return []
    matches = difflib.get_close_matches(key, list(by_lower), n=n, cutoff=0.6)
    return [by_lower[m] for m in matches]


def resolve_model(model_id: str) -> Model:
    """The model named by `model_id`: a descriptor, a Hugging Face repo, a checkpoint folder name,
    or an older descriptor (`Meta-Llama3.1-8B-Instruct`); case-insensitive.

    Raises ModelNotFoundError, which lists the closest descriptors, for anything else.
    """
    for key in _candidates(model_id):
        if key in _INDEX:
            return _INDEX[key]
    raise ModelNotFoundError(model_id, closest_descriptors(model_id))


def all_models(show_all: bool = False) -> list[Model]:
    """Registered models in registry order: the featured ones, or all of them with `show_all`."""
    return [m for m in MODELS if show_all or m.featured]
