"""Stack: providers started in dependency order and closed in reverse, unserved APIs, config errors.

The wiring tests use small stand-in provider classes (defined here) that record what the Stack
does to them; the last tests run the real meta-reference provider on a tiny checkpoint.
"""

from __future__ import annotations

import anyio
import pytest

from llama_core import distributions as d
from llama_core.config import ModelsConfig, RunConfig, save_run_config
from llama_core.distributions import Api, ProviderSpec
from llama_core.errors import InvalidRequestError, NotConfiguredError, NotFoundError
from llama_core.providers.models import ModelsProvider
from llama_core.stack import Stack, default_run_config, dependency_order
from llama_core.types._base import Base
from llama_core.types.models import ModelsGetRequest, ModelsListRequest

events: list[str] = []


class Knob(Base, kw_only=True):
    model: str = "Llama3.2-1B-Instruct"
    level: int = 1


class StandIn:
    """Records construction, entry (with the APIs visible through the Stack) and exit."""

    fail_on_enter = False

    def __init__(self, config: Knob, stack: Stack | None = None) -> None:
        self.config, self.stack = config, stack
        events.append(f"init {self.name}{' +stack' if stack else ''}")

    @property
    def name(self) -> str:
        return type(self).__name__

    async def __aenter__(self) -> StandIn:
        await anyio.sleep(0)
        if self.fail_on_enter:
            raise RuntimeError(f"{self.name} cannot start")
        seen = f" sees {','.join(sorted(self.stack.served))}" if self.stack else ""
        events.append(f"enter {self.name}{seen}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await anyio.sleep(0)
        events.append(f"exit {self.name}" + (f" ({exc[0].__name__})" if exc[0] else ""))


class Inference(StandIn):
    pass


class Safety(StandIn):
    pass


class Agents(StandIn):
    pass


class BrokenSafety(StandIn):
    fail_on_enter = True


def row(api: Api, impl: type | str | None, *deps: Api, provider_id: str = "x", config: type | str = Knob) -> ProviderSpec:
    return ProviderSpec(api=api, provider_id=provider_id, pip_packages=("pkg",), config_class=config, implementation=impl, api_dependencies=deps)


TABLE = (
    row(Api.inference, Inference),
    row(Api.safety, Safety),
    row(Api.safety, BrokenSafety, provider_id="broken"),
    row(Api.memory, None),  # listed, not written yet
    row(Api.agentic_system, Agents, Api.inference, Api.safety, Api.memory),
    row(Api.models, ModelsProvider, Api.inference, provider_id="builtin", config=ModelsConfig),
)


@pytest.fixture
def table(monkeypatch):
    monkeypatch.setattr(d, "PROVIDERS", TABLE)
    events.clear()


def config(**providers: str) -> RunConfig:
    return RunConfig(name="t", distribution_id="local", providers={api: {"provider_id": pid} for api, pid in providers.items()})


@pytest.mark.anyio
async def test_dependency_order_start_and_reverse_close(table):
    stack = Stack.from_config(config(agentic_system="x", memory="x", safety="x", inference="x"))
    assert list(stack.planned) == [Api.inference, Api.safety, Api.memory, Api.agentic_system, Api.models]
    async with stack:
        assert stack.served == {Api.inference: "x", Api.safety: "x", Api.agentic_system: "x", Api.models: "builtin"}
        assert isinstance(stack.inference, Inference) and stack.api("safety") is stack.safety
        assert stack.agentic_system.stack is stack and stack.agentic_system.config == Knob()
        assert stack.memory is None
        events.append("serving")
    assert events == [
        "init Inference", "enter Inference",
        "init Safety", "enter Safety",
        "init Agents +stack", "enter Agents sees inference,safety",
        "serving",
        "exit Agents", "exit Safety", "exit Inference",
    ]  # fmt: skip
    assert stack.inference is None and stack.served == {}


@pytest.mark.anyio
async def test_unserved_apis_raise_not_configured(table, tmp_path):
    path = save_run_config(config(inference="x", memory="x"), tmp_path / "t.toml")
    async with Stack.from_config(path) as stack:
        with pytest.raises(NotConfiguredError) as e:
            stack.api("memory")
        assert e.value.status == 501
        assert e.value.message == (
            "The memory API has no provider in this stack (distribution local); "
            "its provider x is not implemented in this version of llama-toolchain."
        )
        with pytest.raises(NotConfiguredError, match=r"^The safety API has no provider in this stack \(distribution local\); .*t.toml lists none \(see `llama stack list-providers safety`\).$"):
            stack.api(Api.safety)
        assert stack.unserved_reason("inference") is None
    with pytest.raises(NotConfiguredError, match="the stack is not started"):
        stack.api("inference")


@pytest.mark.anyio
async def test_a_provider_failing_to_start_closes_those_started(table):
    with pytest.raises(RuntimeError, match="BrokenSafety cannot start"):
        async with Stack.from_config(config(inference="x", safety="broken")):
            pass
    assert events == ["init Inference", "enter Inference", "init BrokenSafety", "exit Inference (RuntimeError)"]


def test_an_exception_inside_reaches_providers_exit(table):
    async def main() -> None:
        async with Stack.from_config(config(inference="x")):
            raise KeyError("boom")

    with pytest.raises(KeyError):
        anyio.run(main)
    assert events[-1] == "exit Inference (KeyError)"


@pytest.mark.parametrize(
    ("providers", "message", "field"),
    [
        ({"inference": {"provider_id": "nope"}}, "Unknown inference provider 'nope'. Choose one of: x", "providers.inference.provider_id"),
        ({"inference": {"provider_id": "x", "level": "high"}}, r"Invalid config for inference provider x: Expected `int`, got `str` - at `\$.level`", "providers.inference.level"),
        ({"inference": {"provider_id": "x", "levl": 2}}, "unknown field `levl`", "providers.inference"),
        ({"inference": {"model": "m"}}, r"The \[providers.inference\] table has no provider_id.", "providers.inference.provider_id"),
        ({"telemetry": {"provider_id": "x"}}, "Unknown API 'telemetry'", "api"),
    ],
    ids=["provider", "type", "unknown-field", "no-id", "api"],
)
def test_config_errors_surface_before_anything_starts(table, providers, message, field):
    with pytest.raises(InvalidRequestError, match=message) as e:
        Stack.from_config(RunConfig(name="t", distribution_id="local", providers=providers))
    assert e.value.field == field
    assert events == []


@pytest.mark.parametrize(
    ("impl", "message"),
    [
        ("no_such_package_xyz.provider:Impl", r"^The inference provider x needs the Python package 'no_such_package_xyz', which is not installed here: build an environment with `llama stack build` or run `pip install pkg`.$"),
        ("llama_core.providers.no_such_module:Impl", r"^The inference provider x is missing from this installation \(llama_core.providers.no_such_module\).$"),
    ],
    ids=["third-party", "ours"],
)
def test_missing_modules_are_one_line_errors(monkeypatch, impl, message):
    monkeypatch.setattr(d, "PROVIDERS", (row(Api.inference, impl), TABLE[-1]))

    async def main() -> None:
        async with Stack.from_config(config(inference="x")):
            pass

    with pytest.raises(NotConfiguredError, match=message):
        anyio.run(main)


def test_dependency_cycles_are_refused():
    assert dependency_order({Api.models: (Api.inference,), Api.inference: ()}) == [Api.inference, Api.models]
    with pytest.raises(InvalidRequestError, match="cycle"):
        dependency_order({Api.safety: (Api.memory,), Api.memory: (Api.safety,)})


def test_default_run_config_is_local_on_the_demo_model():
    assert default_run_config() == RunConfig(
        name="default",
        distribution_id="local",
        providers={
            "inference": {"provider_id": "meta-reference"},
            "memory": {"provider_id": "meta-reference-faiss"},
            "safety": {"provider_id": "meta-reference"},
            "agentic_system": {"provider_id": "meta-reference"},
        },
    )
    stack = Stack.default()
    assert stack.provider_config("inference").model == "SmolLM2-135M-Instruct"
    assert stack.provider_config("safety").llama_guard_shield is None
    assert list(stack.planned) == [Api.inference, Api.memory, Api.safety, Api.agentic_system, Api.models]


@pytest.mark.anyio
async def test_models_provider_reports_the_served_model(table):
    async with Stack.from_config(config(inference="x")) as stack:
        models = await stack.models.list_models(ModelsListRequest())
        assert [(m.descriptor, m.provider, m.max_seq_length, m.huggingface_repo) for m in models] == [
            ("Llama3.2-1B-Instruct", "x", 131072, "meta-llama/Llama-3.2-1B-Instruct")
        ]
        by_repo = await stack.models.get_model(ModelsGetRequest(core_model_id="meta-llama/Llama-3.2-1B-Instruct"))
        assert by_repo == models[0]
        with pytest.raises(NotFoundError, match=r"^Model 'Llama3.1-8B' is not served by this stack; it serves: Llama3.2-1B-Instruct.$"):
            await stack.models.get_model(ModelsGetRequest(core_model_id="Llama3.1-8B"))
    async with Stack.from_config(config(memory="x")) as stack:  # no inference: nothing served
        assert await stack.models.list_models(ModelsListRequest()) == []


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])  # asyncio: the provider's own tests; ~6 s each
async def test_local_stack_serves_inference_and_models_with_the_real_provider(tiny_ckpt, anyio_backend):
    from llama_core.types import CompletionMessage, SamplingParams, UserMessage
    from llama_core.types.inference import ChatCompletionRequest

    inference = {"provider_id": "meta-reference", "model": "Llama3.2-1B-Instruct", "checkpoint_dir": str(tiny_ckpt),
                 "max_seq_len": 64, "max_batch_size": 2, "device": "cpu", "dtype": "fp32"}  # fmt: skip
    local = default_run_config()
    local.providers["inference"] = inference
    async with Stack.from_config(local) as stack:
        assert stack.served == {Api.inference: "meta-reference", Api.memory: "meta-reference-faiss", Api.safety: "meta-reference",
                                Api.models: "builtin"}  # fmt: skip
        request = ChatCompletionRequest(
            model="Llama3.2-1B-Instruct",
            messages=[UserMessage(content="hi")],
            sampling_params=SamplingParams(max_tokens=3),
        )
        reply = await stack.api("inference").chat_completion(request)
        assert isinstance(reply.completion_message, CompletionMessage)
        models = await stack.models.list_models(ModelsListRequest())
        assert [(m.descriptor, m.provider) for m in models] == [("Llama3.2-1B-Instruct", "meta-reference")]
        with pytest.raises(NotConfiguredError, match="The agentic_system API has no provider"):
            stack.api("agentic_system")
