"""meta-reference serving two models at once: an instruct model and a guard model, each its own worker group.

Two tiny checkpoints (different seeds, so different greedy text) behind `llama stack run` answer over
HTTP exactly as a one-model stack of the same checkpoint does; listing shows both; a model that is
not served is a 404 naming the served ones. The config: `extra_models` beside `model`, inheritance,
and the checks that refuse a bad list before anything starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import msgspec
import pytest
import tomli_w

from llama_core.config import load_run_config
from llama_core.errors import CheckpointError, NotFoundError
from llama_core.providers.inference.meta_reference import (
    MetaReferenceInference,
    MetaReferenceInferenceConfig,
    MetaReferenceModelConfig,
)

from .process import llama_stack_run

INSTRUCT, GUARD = "Llama3.2-1B-Instruct", "Llama-Guard-3-1B"
SETTINGS = {"max_seq_len": 128, "max_batch_size": 2, "device": "cpu", "dtype": "fp32", "threads": 1}
PROMPT = [{"role": "user", "content": "Tell me about the sea."}]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("torch")
    from engine.tiny_checkpoint import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("two-models")
    return {INSTRUCT: write_tiny_checkpoint(root / "instruct", seed=1), GUARD: write_tiny_checkpoint(root / "guard", seed=2)}


def one_model_answers(model: str, ckpt: Path) -> tuple[str, str]:
    """(chat reply, raw completion) of a one-model provider of `ckpt` served as `model`, greedy."""
    from llama_core.types import SamplingParams, UserMessage
    from llama_core.types.inference import ChatCompletionRequest, CompletionRequest

    async def ask() -> tuple[str, str]:
        config = MetaReferenceInferenceConfig(model=model, checkpoint_dir=str(ckpt), **SETTINGS)
        async with MetaReferenceInference(config) as inf:
            sampling = SamplingParams(max_tokens=8)
            chat = await inf.chat_completion(ChatCompletionRequest(model=model, messages=[UserMessage(content=PROMPT[0]["content"])],
                                                                   sampling_params=sampling))  # fmt: skip
            completion = await inf.completion(CompletionRequest(model=model, content="The sea", sampling_params=sampling))
            return chat.completion_message.content, completion.content

    return anyio.run(ask)


@pytest.fixture(scope="module")
def expected(checkpoints: dict[str, Path]) -> dict[str, tuple[str, str]]:
    return {model: one_model_answers(model, ckpt) for model, ckpt in checkpoints.items()}


@pytest.fixture(scope="module")
def server(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from rpc.server import free_port

    root = tmp_path_factory.mktemp("two-models-run")
    inference = {"provider_id": "meta-reference", "model": INSTRUCT, "checkpoint_dir": str(checkpoints[INSTRUCT]), **SETTINGS,
                 "extra_models": [{"model": GUARD, "checkpoint_dir": str(checkpoints[GUARD])}]}  # fmt: skip
    config = root / "two.toml"
    config.write_text(tomli_w.dumps({"name": "two", "distribution_id": "local", "providers": {"inference": inference}}))
    log = root / "server.log"
    with llama_stack_run([str(config)], free_port(), log, env={"LLAMA_STACK_CONFIG_DIR": str(root / "home")}) as url:
        yield url, log


def post(url: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=60)


def test_each_model_answers_as_its_own_one_model_stack(server: tuple[str, Path], expected: dict[str, tuple[str, str]]) -> None:
    url, _ = server
    assert expected[INSTRUCT] != expected[GUARD]  # different weights: a request sent to the wrong group would show
    for model, (chat, completion) in expected.items():
        reply = post(url, "/inference/chat_completion", {"model": model, "messages": PROMPT, "sampling_params": {"max_tokens": 8}})
        assert reply.status_code == 200, reply.text
        assert reply.json()["completion_message"]["content"] == chat
        reply = post(url, "/inference/completion", {"model": model, "content": "The sea", "sampling_params": {"max_tokens": 8}})
        assert reply.status_code == 200, reply.text
        assert reply.json()["content"] == completion
        reply = post(url, "/v1/chat/completions", {"model": model, "messages": PROMPT, "max_tokens": 8, "temperature": 0})
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == chat


def test_both_models_are_listed_and_started(server: tuple[str, Path]) -> None:
    url, log = server
    models = httpx.get(url + "/models/list", timeout=10).json()
    assert [(m["descriptor"], m["provider"]) for m in models] == [(INSTRUCT, "meta-reference"), (GUARD, "meta-reference")]
    assert httpx.get(url + "/v1/models", timeout=10).json() == {
        "object": "list",
        "data": [{"id": INSTRUCT, "object": "model", "created": 0, "owned_by": "meta-reference"},
                 {"id": GUARD, "object": "model", "created": 0, "owned_by": "meta-reference"}],
    }  # fmt: skip
    assert httpx.get(url + "/v1/models/" + GUARD, timeout=10).json()["id"] == GUARD
    health = httpx.get(url + "/health", timeout=10).json()
    assert health["apis"]["inference"] == {"status": "ok", "restarts": 0, "models": {INSTRUCT: {"status": "ok", "restarts": 0},
                                                                                     GUARD: {"status": "ok", "restarts": 0}}}  # fmt: skip
    assert f"Models: {INSTRUCT}, {GUARD}" in log.read_text().splitlines()


NOT_SERVED = f"Model 'Llama3.1-8B-Instruct' is not served here; this stack serves {INSTRUCT}, {GUARD}."


def test_a_model_not_served_is_a_404_naming_the_served_ones(server: tuple[str, Path]) -> None:
    url, _ = server
    reply = post(url, "/inference/chat_completion", {"model": "Llama3.1-8B-Instruct", "messages": PROMPT})
    assert reply.status_code == 404
    assert reply.json()["error"]["message"] == NOT_SERVED
    reply = post(url, "/inference/batch_completion", {"model": "Llama3.1-8B-Instruct", "content_batch": ["a"]})
    assert (reply.status_code, reply.json()["error"]["message"]) == (404, NOT_SERVED)
    reply = post(url, "/v1/chat/completions", {"model": "Llama3.1-8B-Instruct", "messages": PROMPT})
    assert (reply.status_code, reply.json()["error"]["message"]) == (404, NOT_SERVED)
    # An id the registry does not know at all keeps the registry's answer, with its suggestions.
    reply = post(url, "/inference/chat_completion", {"model": "Llama-Guard-3-1C", "messages": PROMPT})
    assert reply.status_code == 404
    assert reply.json()["error"]["message"].startswith("Unknown model 'Llama-Guard-3-1C'. Did you mean: Llama-Guard-3-1B")


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_one_model_failing_to_start_fails_the_start_naming_it(checkpoints: dict[str, Path], tmp_path: Path, anyio_backend: str) -> None:
    broken = tmp_path / "guard"
    broken.mkdir()
    (broken / "tokenizer.model").write_bytes((checkpoints[GUARD] / "tokenizer.model").read_bytes())  # loads; no weights
    config = MetaReferenceInferenceConfig(model=INSTRUCT, checkpoint_dir=str(checkpoints[INSTRUCT]), **SETTINGS,
                                          extra_models=[MetaReferenceModelConfig(model=GUARD, checkpoint_dir=str(broken))])  # fmt: skip
    inf = MetaReferenceInference(config)
    with pytest.raises(CheckpointError, match=rf"^{GUARD} could not start: No params.json in {broken} or {broken}/original; "):
        async with inf:
            pass
    assert [m.group for m in inf.models.values()] == [None, None]  # the instruct model's workers were stopped too
    missing = msgspec.structs.replace(config, extra_models=[MetaReferenceModelConfig(model=GUARD, checkpoint_dir=str(tmp_path / "none"))])
    with pytest.raises(CheckpointError, match=rf"^No checkpoint for {GUARD} in {tmp_path}/none. Run `llama download --model-id {GUARD}` first.$"):
        async with MetaReferenceInference(missing):
            pass


# -- the config --------------------------------------------------------------------------------------


def test_extra_models_inherit_how_to_run_but_not_where_the_checkpoint_is() -> None:
    config = msgspec.convert({"model": INSTRUCT, "max_seq_len": 2048, "dtype": "bf16", "checkpoint_dir": "/ckpt/a", "model_parallel_size": 2,
                              "extra_models": [{"model": "meta-llama/Llama-Guard-3-1B", "max_batch_size": 1}]},
                             MetaReferenceInferenceConfig)  # fmt: skip
    primary, guard = config.model_configs()
    assert primary == msgspec.structs.replace(config, extra_models=None)
    assert guard == MetaReferenceInferenceConfig(model="meta-llama/Llama-Guard-3-1B", max_seq_len=2048, max_batch_size=1, dtype="bf16")
    assert MetaReferenceInference(config).models.keys() == {INSTRUCT, GUARD}


def test_a_one_model_config_is_unchanged() -> None:
    config = MetaReferenceInferenceConfig(model=INSTRUCT, max_seq_len=64)
    assert config.extra_models is None
    assert config.model_configs() == [config]
    assert msgspec.to_builtins(config)["extra_models"] is None  # not written to the TOML


@pytest.mark.parametrize(
    ("extra_models", "message"),
    [
        ([{"model": INSTRUCT}], rf"^{INSTRUCT} is listed twice \(model and extra_models\[0\]\); list each model once.$"),
        ([{"model": GUARD}, {"model": "Llama-Guard-3-1b"}],
         rf"^{GUARD} is listed twice \(extra_models\[0\] and extra_models\[1\]\); list each model once.$"),
        ([{"model": "Prompt-Guard-86M"}], r"^Prompt-Guard-86M is not a Llama model; meta-reference inference cannot serve it. - at `\$.extra_models\[0\]`$"),
        ([{"model": "gpt-4o"}], r"^Unknown model 'gpt-4o'. See `llama model list --show-all`. - at `\$.extra_models\[0\]`$"),
        ([{"model": GUARD, "dtype": "fp16"}], r"^dtype 'fp16' is not supported; choose one of fp32, bf16, int8, gguf - at `\$.extra_models\[0\]`$"),
        ([{"model": GUARD, "max_seq_len": 0}], r"^max_seq_len must be at least 1, got 0 - at `\$.extra_models\[0\]`$"),
        ([{"checkpoint_dir": "/x"}], r"^Object missing required field `model` - at `\$.extra_models\[0\]`$"),
        ([{"model": GUARD, "modle": "x"}], r"^Object contains unknown field `modle` - at `\$.extra_models\[0\]`$"),
    ],
    ids=["twice-with-model", "twice-in-list", "not-llama", "unknown", "dtype", "size", "no-model", "unknown-field"],
)
def test_bad_extra_models_are_refused_when_read(extra_models: list[dict], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert({"model": INSTRUCT, "extra_models": extra_models}, MetaReferenceInferenceConfig)


def test_extra_models_in_a_run_config_file(tmp_path: Path) -> None:
    from llama_core.errors import InvalidRequestError
    from llama_core.stack import Stack

    path = tmp_path / "two.toml"
    path.write_text(
        'name = "two"\ndistribution_id = "local"\n\n[providers.inference]\nprovider_id = "meta-reference"\n'
        f'model = "{INSTRUCT}"\nmax_seq_len = 1024\n\n[[providers.inference.extra_models]]\nmodel = "{GUARD}"\n'
    )
    config = Stack.from_config(load_run_config(path)).provider_config("inference")
    assert [(c.model, c.max_seq_len) for c in config.model_configs()] == [(INSTRUCT, 1024), (GUARD, 1024)]
    path.write_text(path.read_text() + f'\n[[providers.inference.extra_models]]\nmodel = "{GUARD}"\n')
    with pytest.raises(InvalidRequestError, match=rf"^Invalid config for inference provider meta-reference: {GUARD} is listed twice "):
        Stack.from_config(load_run_config(path))


def test_the_router_names_the_served_models_without_starting() -> None:
    inf = MetaReferenceInference(MetaReferenceInferenceConfig(model=INSTRUCT, extra_models=[MetaReferenceModelConfig(model=GUARD)]))
    assert inf.local("meta-llama/Llama-Guard-3-1B") is inf.models[GUARD]
    assert inf.primary is inf.models[INSTRUCT]
    with pytest.raises(NotFoundError, match=rf"^{NOT_SERVED}$".replace(".", r"\.")):
        inf.local("Llama3.1-8B-Instruct")
