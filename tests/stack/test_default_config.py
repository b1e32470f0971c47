"""`llama stack run` with no arguments: safety is on, with the guard models that are downloaded.

A folder with the right file names under $LLAMA_STACK_CONFIG_DIR/checkpoints is what counts (the
files are not read here: the config is all these tests check).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llama_core import paths
from llama_core.distributions import Api
from llama_core.stack import Stack, default_run_config

META = ("params.json", "consolidated.00.pth", "tokenizer.model")
META_ORIGINAL = ("original/params.json", "original/consolidated.00.pth", "original/tokenizer.model", "config.json")
HF = ("config.json", "model-00001-of-00002.safetensors", "tokenizer.json")
CLASSIFIER = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def download(model: str, files: tuple[str, ...]) -> Path:
    folder = paths.model_checkpoint_dir(model)
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    return folder


def safety_and_extras(config) -> tuple[dict, list | None]:
    return config.providers["safety"], config.providers["inference"].get("extra_models")


def test_nothing_downloaded_serves_the_demo_model_and_the_code_scanner() -> None:
    config = default_run_config()
    assert config.providers["inference"] == {"provider_id": "meta-reference"}
    assert safety_and_extras(config) == ({"provider_id": "meta-reference"}, None)
    from llama_core.providers.safety.meta_reference import served_shields

    # code_scanner_guard needs no config; third_party_shield takes its endpoint from each request.
    assert served_shields(Stack.default().provider_config(Api.safety)) == ["code_scanner_guard", "third_party_shield"]


@pytest.mark.parametrize(
    ("downloads", "guard"),
    [
        ({"Llama-Guard-3-1B": META}, "Llama-Guard-3-1B"),
        ({"Llama-Guard-3-8B": HF}, "Llama-Guard-3-8B"),
        ({"Llama-Guard-3-8B": META_ORIGINAL}, "Llama-Guard-3-8B"),
        ({"Llama-Guard-3-8B": META, "Llama-Guard-3-1B": HF}, "Llama-Guard-3-1B"),  # the smaller one first
        ({"Llama-Guard-3-1B": ("params.json", "tokenizer.model"), "Llama-Guard-3-8B": META}, "Llama-Guard-3-8B"),  # 1B incomplete
    ],
    ids=["1b", "8b-hf", "8b-original", "both", "1b-incomplete"],
)
def test_a_downloaded_llama_guard_turns_its_shield_on_and_is_served(downloads: dict, guard: str) -> None:
    for model, files in downloads.items():
        download(model, files)
    config = default_run_config()
    assert safety_and_extras(config) == ({"provider_id": "meta-reference", "llama_guard_shield": {"model": guard}}, [{"model": guard}])
    stack = Stack.from_config(config)  # the config is one a stack accepts
    assert [c.model for c in stack.provider_config(Api.inference).model_configs()] == ["SmolLM2-135M-Instruct", guard]
    assert stack.provider_config(Api.safety).llama_guard_shield.model == guard
    from llama_core.providers.safety.meta_reference import served_shields

    assert served_shields(stack.provider_config(Api.safety)) == ["code_scanner_guard", f"llama_guard ({guard})", "third_party_shield"]


@pytest.mark.parametrize(
    "files",
    [(), ("tokenizer.model",), ("params.json", "consolidated.00.pth"), ("config.json", "tokenizer.json")],
    ids=["empty", "tokenizer-only", "no-tokenizer", "no-weights"],
)
def test_an_incomplete_llama_guard_folder_is_not_used(files: tuple[str, ...]) -> None:
    download("Llama-Guard-3-1B", files).mkdir(parents=True, exist_ok=True)
    assert safety_and_extras(default_run_config()) == ({"provider_id": "meta-reference"}, None)


def test_a_downloaded_prompt_guard_turns_its_shields_on() -> None:
    download("Prompt-Guard-86M", CLASSIFIER)
    download("Llama-Guard-3-1B", META)
    config = default_run_config()
    assert config.providers["safety"] == {"provider_id": "meta-reference", "llama_guard_shield": {"model": "Llama-Guard-3-1B"},
                                          "prompt_guard_shield": {"model": "Prompt-Guard-86M"}}  # fmt: skip
    assert config.providers["inference"]["extra_models"] == [{"model": "Llama-Guard-3-1B"}]  # Prompt Guard is not a Llama
    from llama_core.providers.safety.meta_reference import served_shields

    shields = served_shields(Stack.from_config(config).provider_config(Api.safety))
    assert shields == ["code_scanner_guard", "injection_shield (Prompt-Guard-86M)", "jailbreak_shield (Prompt-Guard-86M)",
                       "llama_guard (Llama-Guard-3-1B)", "third_party_shield"]


def test_prompt_guard_without_weights_is_not_used() -> None:
    download("Prompt-Guard-86M", ("config.json", "tokenizer.json"))
    assert safety_and_extras(default_run_config()) == ({"provider_id": "meta-reference"}, None)
