"""`meta-reference` inference: Llama models of llama_core.engine, each in its own worker group.

One stack can serve an instruct model and a guard model (Llama Guard is called through this API
with its own model id). Requests go to the model `request.model` names (any spelling the registry
resolves); a model not served here is a 404 that names the served ones. Each model is a LocalModel
(local_model.py); this module holds the config and the routing.

    config = MetaReferenceInferenceConfig(model="Llama3.2-1B-Instruct",
                                          extra_models=[MetaReferenceModelConfig(model="Llama-Guard-3-1B")])
    async with MetaReferenceInference(config) as inf:
        response = await inf.chat_completion(ChatCompletionRequest(model="Llama-Guard-3-1B", messages=[...]))

In a run config the further models are an array of tables:

    [providers.inference]
    provider_id = "meta-reference"
    model = "Llama3.2-1B-Instruct"
    max_seq_len = 4096

    [[providers.inference.extra_models]]
    model = "Llama-Guard-3-1B"
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable
from typing import ClassVar

import anyio
import msgspec

from llama_core.engine.messages import unsupported
from llama_core.errors import LlamaError, ModelNotFoundError, NotFoundError, first_error, shown
from llama_core.models.registry import Model, resolve_model
from llama_core.providers.inference.local_embeddings import is_embedding_model, local_embeddings, not_an_embedding_model
from llama_core.providers.inference.local_model import LocalModel
from llama_core.types._base import Base
from llama_core.types.inference import (
    BatchChatCompletionRequest,
    BatchChatCompletionResponse,
    BatchCompletionRequest,
    BatchCompletionResponse,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
)

# The fields an extra model takes from the top-level config when it leaves them unset: how to run
# (device, precision, sizes, threads). checkpoint_dir and model_parallel_size belong to one
# checkpoint, so an extra model never inherits them (its default: ~/.llama/checkpoints/<model>,
# and that checkpoint's shard count).
INHERITED = ("max_seq_len", "max_batch_size", "device", "dtype", "threads")


def check_model(model: str, dtype: str | None, device: str | None, **sizes: int | None) -> Model:
    """The registry's row for `model` if the engine can serve it so; ValueError (one line) otherwise.

    `sizes` are counts that must be at least 1 (None: the default), as engine.messages.unsupported.
    """
    try:  # an unknown model fails when the config is read (configure re-asks), not at start-up
        row = resolve_model(model)
    except ModelNotFoundError as e:
        raise ValueError(e.message) from None
    if not row.is_llama_architecture:
        raise ValueError(f"{row.descriptor} is not a Llama model; meta-reference inference cannot serve it.")
    problem = unsupported(dtype, device, **sizes)
    if problem is not None:
        raise ValueError(problem[1])
    return row


class MetaReferenceModelConfig(Base, kw_only=True):
    """One further model: `model` and what differs from the top-level config (None: inherit, see INHERITED)."""

    model: str
    max_seq_len: int | None = None
    max_batch_size: int | None = None
    device: str | None = None
    dtype: str | None = None
    model_parallel_size: int | None = None  # default: the checkpoint's shard count
    checkpoint_dir: str | None = None  # default: ~/.llama/checkpoints/<descriptor>
    threads: int | None = None

    def __post_init__(self) -> None:
        check_model(self.model, dtype=self.dtype, device=self.device, max_seq_len=self.max_seq_len,
                    max_batch_size=self.max_batch_size, model_parallel_size=self.model_parallel_size,
                    threads=self.threads)  # fmt: skip


class MetaReferenceInferenceConfig(Base, kw_only=True):
    """Which models to serve and how: `model` and its settings, and `extra_models` beside it.

    `checkpoint_dir` overrides ~/.llama/checkpoints/<descriptor>. Checked when read, so `llama
    stack configure` refuses what the engine cannot run before it writes anything, and `llama stack
    run` before it starts: an unknown or non-Llama model, a dtype or device outside the engine's
    table (llama_core.engine.messages), a size below 1, a model listed twice.
    """

    model: str = "SmolLM2-135M-Instruct"
    max_seq_len: int = 4096
    max_batch_size: int = 8
    device: str | None = None  # cuda, mps or cpu; default: the best present
    dtype: str | None = None  # fp32, bf16, int8 or gguf; default: bf16 on CUDA, fp32 elsewhere
    model_parallel_size: int | None = None  # default: the checkpoint's shard count
    checkpoint_dir: str | None = None
    threads: int | None = None  # torch threads per worker; default: torch's (one per core)
    # Model parallel across hosts: the ranks spread evenly over `nnodes` hosts. This one serves and
    # holds rank 0; each other host runs `llama stack worker CONFIG --node-rank N`, and they meet at
    # master_addr:master_port (default: MASTER_ADDR and MASTER_PORT from the environment, port 29500).
    nnodes: int | None = None  # None: 1, this host alone
    master_addr: str | None = None
    master_port: int | None = None
    # Further models, each in its own worker group; unset fields inherit as INHERITED says.
    # None (not []) when there are none, so that a one-model config's file does not list them.
    extra_models: list[MetaReferenceModelConfig] | None = None
    # `llama stack configure` does not ask for the list: it adds the Llama Guard shield's model
    # itself, and `--set inference.extra_models='[{"model": "..."}]'` sets it.
    unasked: ClassVar[tuple[str, ...]] = ("extra_models", "nnodes", "master_addr", "master_port")

    def __post_init__(self) -> None:
        check_model(self.model, dtype=self.dtype, device=self.device, max_seq_len=self.max_seq_len,
                    max_batch_size=self.max_batch_size, model_parallel_size=self.model_parallel_size,
                    threads=self.threads, nnodes=self.nnodes)  # fmt: skip
        if self.master_port is not None and not 0 < self.master_port < 65536:
            raise ValueError(f"master_port must be from 1 to 65535, got {self.master_port}.")
        seen: dict[str, str] = {resolve_model(self.model).descriptor: "model"}
        for i, extra in enumerate(self.extra_models or ()):
            descriptor, where = resolve_model(extra.model).descriptor, f"extra_models[{i}]"
            if descriptor in seen:
                raise ValueError(f"{descriptor} is listed twice ({seen[descriptor]} and {where}); list each model once.")
            seen[descriptor] = where

    def model_configs(self) -> list[MetaReferenceInferenceConfig]:
        """One single-model config per served model, `model` first, inheritance applied."""
        configs = [msgspec.structs.replace(self, extra_models=None)]
        for extra in self.extra_models or ():
            fields = {f: getattr(extra, f) for f in extra.__struct_fields__}
            fields |= {f: getattr(self, f) for f in INHERITED if fields[f] is None}
            configs.append(MetaReferenceInferenceConfig(**fields))
        return configs


def with_model_named(e: LlamaError, descriptor: str) -> LlamaError:
    """`e` (same class, so the same status) with a message that names the model it is about."""
    if descriptor in e.message:
        return e
    named = copy.copy(e)
    named.message = f"{descriptor} could not start: {e.message}"
    named.args = (named.message,)
    return named


class MetaReferenceInference:
    """apis.Inference over local models. An async context manager: entering starts every model's workers.

    `models` maps each served descriptor to its LocalModel, the config's `model` first.
    """

    def __init__(self, config: MetaReferenceInferenceConfig) -> None:
        self.config = config
        self.models: dict[str, LocalModel] = {}
        for c in config.model_configs():
            local = LocalModel(c)
            self.models[local.model.descriptor] = local

    @property
    def primary(self) -> LocalModel:
        """The config's `model` (what `llama model run` chats with)."""
        return next(iter(self.models.values()))

    async def __aenter__(self) -> MetaReferenceInference:
        # Each group's task group is entered here, in the task that closes it; the checkpoints then
        # load at once (worker processes of their own), and the first failure stops them all.
        try:
            for descriptor, local in self.models.items():
                await self._named(descriptor, local.load())
                await self._named(descriptor, local.spawn())
            try:
                async with anyio.create_task_group() as tg:
                    for descriptor, local in self.models.items():
                        tg.start_soon(self._named, descriptor, local.wait_started())
            except BaseExceptionGroup as failed:
                raise first_error(failed) from None
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every model's workers, the last started first; finishes under cancellation too."""
        for local in reversed(self.models.values()):
            await local.aclose()

    async def _named(self, descriptor: str, step: Awaitable[None]) -> None:
        """Await one model's start step; with several models, its error says which model failed."""
        try:
            await step
        except LlamaError as e:
            if len(self.models) == 1:
                raise
            raise with_model_named(e, descriptor) from None

    def local(self, model_id: str) -> LocalModel:
        """The served model `model_id` names (any spelling the registry resolves).

        Raises ModelNotFoundError (404, with the closest descriptors) for an id the registry does not
        know, NotFoundError (404, naming the served models) for a known model not served here.
        """
        local = self.models.get(resolve_model(model_id).descriptor)  # an id the registry lacks: ModelNotFoundError
        if local is None:
            served = ", ".join(self.models)
            raise NotFoundError(f"Model '{shown(model_id)}' is not served here; this stack serves {served}.")
        return local

    async def check_chat(self, request: ChatCompletionRequest) -> None:
        """Raise now what `chat_completion(request)` would raise on its prompt, generating nothing:
        NotFoundError (404, naming the served models) for a model not served here, UnsupportedError
        (400, field `tools`) for tools on a model without tool calling, InvalidRequestError (400,
        field `messages`) for messages past its context. (The agentic system checks a config with it.)"""
        local = self.local(request.model)
        await anyio.to_thread.run_sync(local.chat_prompt, request)

    # -- Inference ---------------------------------------------------------------------------------

    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletionResponse | AsyncIterator[ChatCompletionResponseStreamChunk]:
        """A reply to `request.messages` from `request.model`; a chunk stream (start, progress..., complete) if `stream`."""
        return await self.local(request.model).chat_completion(request)

    async def completion(
        self, request: CompletionRequest
    ) -> CompletionResponse | AsyncIterator[CompletionResponseStreamChunk]:
        """A raw continuation of `request.content` (no chat template); a chunk stream if `stream`."""
        return await self.local(request.model).completion(request)

    async def batch_chat_completion(self, request: BatchChatCompletionRequest) -> BatchChatCompletionResponse:
        """Every dialog at once: they share the model's continuous batch, so this is faster than one by one."""
        return await self.local(request.model).batch_chat_completion(request)

    async def batch_completion(self, request: BatchCompletionRequest) -> BatchCompletionResponse:
        """One CompletionMessage per prompt of `content_batch`, in order."""
        return await self.local(request.model).batch_completion(request)

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        """Vectors from a local embedding model (all-MiniLM-L6-v2, or a sentence-transformers folder
        under ~/.llama/checkpoints): a generative Llama computes none (400); another name is a 404."""
        if not is_embedding_model(request.model):
            raise not_an_embedding_model(request.model)
        return await local_embeddings(request)

    async def served_models(self) -> list[str]:
        """The descriptors of the models this provider loaded, the config's `model` first."""
        return list(self.models)

    async def health(self) -> dict[str, object]:
        """The worker groups' state: {"status", "restarts"} of the one model, as LocalModel.health.

        With several, "status" is "ok" only when every model is (else the first other state), "restarts"
        their sum, "retry_after" the longest, and "models" maps each descriptor to its own report.
        No path or error text: /health answers without the API key.
        """
        reports = {descriptor: local.health() for descriptor, local in self.models.items()}
        if len(reports) == 1:
            return next(iter(reports.values()))
        states = [r["status"] for r in reports.values()]
        report: dict[str, object] = {
            "status": next((s for s in states if s != "ok"), "ok"),
            "restarts": sum(int(r.get("restarts", 0)) for r in reports.values()),  # type: ignore[call-overload]
        }
        waits = [int(r["retry_after"]) for r in reports.values() if "retry_after" in r]  # type: ignore[call-overload]
        if waits:
            report["retry_after"] = max(waits)
        report["models"] = reports
        return report

