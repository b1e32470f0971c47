"""Where a SKU lives behind Meta's signed download URL: its folder, its files, known shard sizes."""

from __future__ import annotations

from dataclasses import dataclass, field

from llama_core.errors import UnsupportedError
from llama_core.models.registry import Model, ModelFamily, QuantizationFormat


@dataclass(frozen=True, slots=True, kw_only=True)
class MetaNetInfo:
    """A signed URL's `*` becomes `{folder}/{file}` for each of `files`.

    `pth_size` is the byte size of each `consolidated.NN.pth` where the CDN refuses HEAD
    requests (the 405B shards); 0 means "ask the server".
    """

    folder: str
    files: list[str] = field(default_factory=list)
    pth_size: int = 0


# Folders that are not simply the HF repo's last path part.
_FOLDERS = {
    "Llama3.1-405B:bf16-mp8": "Llama-3.1-405B-MP8",
    "Llama3.1-405B": "Llama-3.1-405B",
    "Llama3.1-405B:bf16-mp16": "Llama-3.1-405B-MP16",
    "Llama3.1-405B-Instruct:bf16-mp8": "Llama-3.1-405B-Instruct-MP8",
    "Llama3.1-405B-Instruct": "Llama-3.1-405B-Instruct",
    "Llama3.1-405B-Instruct:bf16-mp16": "Llama-3.1-405B-Instruct-MP16",
    "Llama-Guard-3-8B:int8": "Llama-Guard-3-8B-INT8-HF",
    "Llama-Guard-2-8B": "llama-guard-2",
    "Prompt-Guard-86M": "Prompt-Guard",
}

# Checkpoints not in the Meta layout (params.json + consolidated.NN.pth). checklist.chk comes first.
_FILES = {
    "Llama-Guard-3-8B:int8": [  # Hugging Face format
        "generation_config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors.index.json",
    ],
    "Llama-Guard-3-1B:int4": ["llama_guard_3_1b_pruned_xnnpack.pte", "example-prompt.txt", "params.json", "tokenizer.model"],
    "Prompt-Guard-86M": ["model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"],
}  # fmt: skip

# Bytes per .pth shard, hard-coded because CloudFront rejects HEAD for these.
_PTH_SIZES = {
    "Llama3.1-405B:bf16-mp16": 51_268_302_389,
    "Llama3.1-405B-Instruct:bf16-mp16": 51_268_302_389,
    "Llama3.1-405B": 60_903_742_309,
    "Llama3.1-405B-Instruct": 60_903_742_309,
    "Llama3.1-405B:bf16-mp8": 101_470_976_045,
    "Llama3.1-405B-Instruct:bf16-mp8": 101_470_976_045,
}


def _meta_layout_files(model: Model) -> list[str]:
    files = ["tokenizer.model", "params.json"]
    if model.quantization_format == QuantizationFormat.fp8_mixed:
        files += [f"fp8_scales_{i}.pt" for i in range(model.pth_file_count)]
    return files + [f"consolidated.{i:02d}.pth" for i in range(model.pth_file_count)]


def meta_net_info(model: Model) -> MetaNetInfo:
    """The folder and file list of `model` on Meta's download CDN.

    Raises UnsupportedError for models Meta does not distribute (the demo model).
    """
    if model.family == ModelFamily.smollm2 or model.huggingface_repo is None:
        raise UnsupportedError(
            f"{model.descriptor} is not distributed through Meta's signed URLs; "
            f"run `llama download --model-id {model.descriptor}` without --source meta."
        )
    folder = _FOLDERS.get(model.descriptor) or model.huggingface_repo.rsplit("/", 1)[-1]
    if model.family == ModelFamily.llama2:
        folder = folder.lower()
    files = ["checklist.chk", *_FILES.get(model.descriptor, _meta_layout_files(model))]
    return MetaNetInfo(folder=folder, files=files, pth_size=_PTH_SIZES.get(model.descriptor, 0))
