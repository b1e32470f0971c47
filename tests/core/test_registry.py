"""The model registry: one row per SKU, resolvable by every name a user might type."""

from __future__ import annotations

import pytest

from llama_core.errors import ModelNotFoundError, UnsupportedError
from llama_core.models import (
    MODELS,
    HardwareRequirements,
    ModelFamily,
    QuantizationFormat,
    all_models,
    as_sampling_params,
    meta_net_info,
    resolve_model,
)
from llama_core.types import SamplingParams, SamplingStrategy

DESCRIPTORS = [m.descriptor for m in MODELS]


def test_descriptors_are_unique():
    assert len(DESCRIPTORS) == len(set(DESCRIPTORS)) == 41
    assert len({d.lower() for d in DESCRIPTORS}) == 41


@pytest.mark.parametrize("descriptor", DESCRIPTORS)
def test_every_row_resolves_by_descriptor_any_case_and_folder_name(descriptor):
    model = resolve_model(descriptor)
    assert model.descriptor == descriptor
    assert resolve_model(descriptor.upper()) is model
    assert resolve_model(f"  {descriptor.lower()} ") is model
    # ~/.llama/checkpoints/<descriptor with ':' -> '-'>
    assert resolve_model(descriptor.replace(":", "-")) is model


@pytest.mark.parametrize("descriptor", DESCRIPTORS)
def test_every_row_resolves_by_hf_repo(descriptor):
    repo = resolve_model(descriptor).huggingface_repo
    assert repo
    # Several SKUs share a repo (405B bf16 mp8 and mp16); the first registered wins.
    assert resolve_model(repo).huggingface_repo == repo
    assert resolve_model(repo.lower()).huggingface_repo == repo


def test_shared_hf_repo_resolves_to_first_registered():
    assert resolve_model("meta-llama/Llama-3.1-405B").descriptor == "Llama3.1-405B:bf16-mp8"
    assert resolve_model("meta-llama/Llama-3.1-405B-Instruct").descriptor == "Llama3.1-405B-Instruct:bf16-mp8"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Meta-Llama3.1-8B-Instruct", "Llama3.1-8B-Instruct"),
        ("Meta-Llama3.1-8B", "Llama3.1-8B"),
        ("Meta-Llama3.1-70B-Instruct", "Llama3.1-70B-Instruct"),
        ("Meta-Llama3.1-405B:bf16-mp16", "Llama3.1-405B:bf16-mp16"),
        ("Meta-Llama3.1-405B-Instruct:bf16-mp8", "Llama3.1-405B-Instruct:bf16-mp8"),
        ("Meta-Llama3.1-405B", "Llama3.1-405B"),
        ("meta-llama/Meta-Llama-3.1-405B-Instruct-FP8", "Llama3.1-405B-Instruct"),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", "Llama3.1-8B-Instruct"),
        ("Llama-Guard-3-8B:int8-mp1", "Llama-Guard-3-8B:int8"),
        ("Meta-Llama-Guard-3-8B", "Llama-Guard-3-8B"),
        ("Meta-Llama3-8B-Instruct", "Llama-3-8B-Instruct"),
        ("meta-llama/Meta-Llama-3-70B", "Llama-3-70B"),
        ("meta-llama/Prompt-Guard-86M", "Prompt-Guard-86M"),
    ],
    ids=lambda s: s,
)
def test_older_reference_names_resolve(old, new):
    assert resolve_model(old).descriptor == new


@pytest.mark.parametrize(
    ("typo", "first"),
    [
        ("Llama3.1-8B-Instruc", "Llama3.1-8B-Instruct"),
        ("llama3.2-3b-instrcut", "Llama3.2-3B-Instruct"),
        ("SmolLM2-135M", "SmolLM2-135M-Instruct"),
        ("Meta-Llama3.3-70B-Instruc", "Llama3.3-70B-Instruct"),
    ],
)
def test_unknown_id_suggests_closest_descriptors(typo, first):
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model(typo)
    err = info.value
    assert err.model_id == typo
    assert err.suggestions[0] == first
    assert 1 <= len(err.suggestions) <= 3
    assert "\n" not in str(err) and first in str(err)


def test_unknown_id_with_nothing_close_has_no_suggestions():
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("gpt-4o")
    assert info.value.suggestions == []
    assert str(info.value) == "Unknown model 'gpt-4o'. See `llama model list --show-all`."


def test_featured_list_hides_llama2_and_llama3():
    featured = [m.descriptor for m in all_models()]
    everything = [m.descriptor for m in all_models(show_all=True)]
    assert everything == DESCRIPTORS
    assert len(featured) == 31
    hidden = [d for d in everything if d not in featured]
    assert hidden == [
        "Llama-2-7b", "Llama-2-13b", "Llama-2-70b", "Llama-2-7b-chat", "Llama-2-13b-chat", "Llama-2-70b-chat",
        "Llama-3-8B", "Llama-3-70B", "Llama-3-8B-Instruct", "Llama-3-70B-Instruct",
    ]  # fmt: skip
    families = {m.family for m in all_models()}
    assert families == {
        ModelFamily.llama3_1, ModelFamily.llama3_2, ModelFamily.llama3_3,
        ModelFamily.safety, ModelFamily.prompt_guard, ModelFamily.smollm2,
    }  # fmt: skip


LLAMA_KEYS = {"dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "norm_eps", "use_scaled_rope"}


@pytest.mark.parametrize("model", [m for m in MODELS if m.is_llama_architecture], ids=lambda m: m.descriptor)
def test_llama_arch_args_are_complete(model):
    args = model.arch_args
    assert LLAMA_KEYS <= set(args)
    assert "rope_theta" in args or "rope_freq_base" in args
    # the FFN width is either explicit or follows from multiple_of (and an optional multiplier)
    assert "hidden_dim" in args or "multiple_of" in args
    assert args["dim"] % args["n_heads"] == 0
    assert args["n_heads"] % args["n_kv_heads"] == 0
    assert (model.rope_scaling_factor is not None) == args["use_scaled_rope"]


def test_arch_args_are_per_model_copies():
    a, b = resolve_model("Llama3.1-8B"), resolve_model("Llama3.1-8B-Instruct")
    assert a.arch_args == b.arch_args and a.arch_args is not b.arch_args


@pytest.mark.parametrize(
    ("descriptor", "factor"),
    [
        ("Llama3.1-8B-Instruct", 8.0),
        ("Llama3.3-70B-Instruct", 8.0),
        ("Llama3.2-11B-Vision-Instruct", 8.0),
        ("Llama3.2-1B-Instruct", 32.0),
        ("Llama3.2-3B-Instruct:int4-qlora-eo8", 32.0),
        ("Llama-Guard-3-1B", 32.0),
        ("Llama-Guard-3-8B", None),
        ("Llama-3-8B", None),
        ("SmolLM2-135M-Instruct", None),
    ],
)
def test_rope_scaling_factor(descriptor, factor):
    assert resolve_model(descriptor).rope_scaling_factor == factor


def test_demo_model_row():
    m = resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert m.descriptor == "SmolLM2-135M-Instruct"
    assert m.featured and m.family == ModelFamily.smollm2 and m.context_length == 8192
    assert m.arch_args == {
        "dim": 576, "n_layers": 30, "n_heads": 9, "n_kv_heads": 3, "vocab_size": 49152, "hidden_dim": 1536,
        "norm_eps": 1e-05, "rope_theta": 100000.0, "use_scaled_rope": False, "tie_word_embeddings": True,
    }  # fmt: skip
    assert m.quantization_format == QuantizationFormat.bf16 and m.pth_file_count == 1
    with pytest.raises(UnsupportedError):
        meta_net_info(m)


def test_prompt_guard_row():
    m = resolve_model("Prompt-Guard-86M")
    assert not m.is_llama_architecture
    assert m.arch_args["model_type"] == "deberta-v2" and m.context_length == 512
    assert m.hardware_requirements == HardwareRequirements(gpu_count=1, memory_gb_per_gpu=1)
    info = meta_net_info(m)
    assert info.folder == "Prompt-Guard"
    assert info.files == [
        "checklist.chk", "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("descriptor", "gpus", "gb"),
    [  # the reference's `llama model list` (old descriptors)
        ("Llama3.1-8B", 1, 20),
        ("Llama3.1-70B-Instruct", 8, 20),
        ("Llama3.1-405B:bf16-mp8", 8, 120),
        ("Llama3.1-405B", 8, 70),
        ("Llama3.1-405B-Instruct:bf16-mp16", 16, 70),
        ("Llama-Guard-3-8B", 1, 20),
        ("Llama-Guard-3-8B:int8", 1, 10),
    ],
)
def test_hardware_requirements_match_reference(descriptor, gpus, gb):
    assert resolve_model(descriptor).hardware_requirements == HardwareRequirements(gpu_count=gpus, memory_gb_per_gpu=gb)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.descriptor)
def test_hardware_has_one_gpu_per_shard(model):
    # the reference engine runs one model-parallel rank per .pth shard; 0 GPUs: it runs on a CPU
    gpus = model.hardware_requirements.gpu_count
    assert gpus >= model.pth_file_count or (gpus == 0 and model.descriptor == "SmolLM2-135M-Instruct")


def test_recommended_sampling():
    m = resolve_model("Llama3.1-8B-Instruct")
    assert m.recommended_sampling_params == SamplingParams(strategy=SamplingStrategy.top_p, temperature=1.0, top_p=0.9)
    assert m.recommended_sampling == {"strategy": "top_p", "temperature": 1.0, "top_p": 0.9, "top_k": 0}
    assert m.recommended_sampling_params is not resolve_model("Llama3.1-8B").recommended_sampling_params
    assert resolve_model("Llama-Guard-3-8B").recommended_sampling_params is None
    assert resolve_model("SmolLM2-135M-Instruct").recommended_sampling_params.temperature == 0.2
    assert as_sampling_params(None) is None
    with pytest.raises(TypeError):  # the table is read-only
        m.recommended_sampling["top_p"] = 0.5  # type: ignore[index]


def test_fp8_405b_file_list():
    info = meta_net_info(resolve_model("Llama3.1-405B-Instruct"))
    assert info.folder == "Llama-3.1-405B-Instruct" and info.pth_size == 60_903_742_309
    assert info.files[:3] == ["checklist.chk", "tokenizer.model", "params.json"]
    assert info.files[3:5] == ["fp8_scales_0.pt", "fp8_scales_1.pt"]
    assert info.files[-1] == "consolidated.07.pth" and len(info.files) == 3 + 8 + 8


# --- Against the llama-models package (0.0.63), the reference registry ----------------------------

REF_IDS = [d for d in DESCRIPTORS if not d.startswith(("Llama-2-", "Prompt-Guard", "SmolLM2"))]


@pytest.fixture(scope="module")
def reference():
    sku_list = pytest.importorskip("llama_models.sku_list")
    return {m.descriptor(): m for m in sku_list.all_registered_models()}, sku_list.llama_meta_net_info


def test_same_descriptors_as_reference(reference):
    ref, _ = reference
    # ours adds Prompt Guard and the demo model; the reference's order is kept
    assert [d for d in DESCRIPTORS if d in ref] == list(ref)
    assert set(ref) - set(DESCRIPTORS) == set()


@pytest.mark.parametrize("descriptor", REF_IDS)
def test_row_matches_reference(reference, descriptor):
    ref, ref_net_info = reference
    r, m = ref[descriptor], resolve_model(descriptor)
    assert m.huggingface_repo == r.huggingface_repo
    assert m.context_length == r.max_seq_length
    assert m.description == r.description
    assert m.arch_args == r.arch_args
    assert m.quantization_format == r.quantization_format.value
    assert m.pth_file_count == r.pth_file_count
    assert m.featured == r.is_featured
    rs = r.recommended_sampling_params
    assert m.recommended_sampling == (None if rs is None else {
        "strategy": rs.strategy.value, "temperature": rs.temperature, "top_p": rs.top_p, "top_k": rs.top_k,
    })  # fmt: skip
    ours, theirs = meta_net_info(m), ref_net_info(r)
    assert (ours.folder, ours.files, ours.pth_size) == (theirs.folder, theirs.files, theirs.pth_size)


@pytest.mark.parametrize("descriptor", [d for d in DESCRIPTORS if d.startswith("Llama-2-")])
def test_llama2_uses_real_shapes_not_reference_copies(reference, descriptor):
    ref, ref_net_info = reference
    m = resolve_model(descriptor)
    assert m.arch_args["rope_theta"] == 10000.0 and m.arch_args["vocab_size"] == 32000
    assert m.arch_args["n_kv_heads"] == (8 if "70b" in descriptor else m.arch_args["n_heads"])
    assert meta_net_info(m).folder == ref_net_info(ref[descriptor]).folder == descriptor.lower()
