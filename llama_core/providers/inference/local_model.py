"""One model of `meta-reference` inference: its tokenizer and prompt format, its worker group.

The async boundary lives here. This side owns the tokenizer and the prompt format (Llama 3
ChatFormat, or the checkpoint's Jinja chat template for other Llama-architecture models); the
worker group owns the weights and streams token ids back. Concurrent requests share the workers'
continuous batch.

Prompts are tokenized in a worker thread, so a long one never stalls the event loop; one too long
to fit the context whatever its tokens is refused by its size in bytes first. Stop sequences
(`sampling_params.stop`) are cut as the text is decoded, and the engine's sequence ends at the
first match. Each answer counts its tokens (`metrics`: the prompt's and the generated ones), on
a whole response and on a stream's last chunk.

Which model a request is for is not checked here: MetaReferenceInference routes by `request.model`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from llama_core import paths
from llama_core.engine.group import WorkerGroup
from llama_core.engine.messages import GenParams, TokenOut, WorkerSpec
from llama_core.errors import CheckpointError, InvalidRequestError, UnsupportedError, first_error
from llama_core.models.registry import Model, resolve_model
from llama_core.prompt.chat_format import ChatFormat, decode_assistant_message_from_content
from llama_core.prompt.jinja_format import JinjaChatFormat, load_chat_template
from llama_core.prompt.constraints import response_format_grammar, tool_call_grammar
from llama_core.prompt.system_prompts import default_tool_prompt_format, prepare_messages
from llama_core.prompt.tool_calls import offered
from llama_core.providers.inference.batch import chat_requests
from llama_core.providers.inference.budget import check_room
from llama_core.providers.inference.detokenize import IncrementalDecoder
from llama_core.providers.inference.stops import StopCutter
from llama_core.providers.inference.stream import ChatStream
from llama_core.providers.inference.usage import token_metrics
from llama_core.tokenizer import Llama3Tokenizer, Tokenizer
from llama_core.types import (
    CompletionMessage,
    Content,
    Message,
    LogProbConfig,
    SamplingParams,
    SamplingStrategy,
    StopReason,
    TokenLogProbs,
    ToolChoice,
    ToolPromptFormat,
    TopLogProb,
    UserMessage,
    content_text,
)
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
)

if TYPE_CHECKING:
    from llama_core.providers.inference.meta_reference import MetaReferenceInferenceConfig


def shard_count(ckpt_dir: Path) -> int:
    """How many consolidated.NN.pth shards the checkpoint has (Meta layout, or under original/)."""
    for d in (ckpt_dir, ckpt_dir / "original"):
        n = len(list(d.glob("consolidated.*.pth")))
        if n:
            return n
    return 1  # Hugging Face layout: one process


def worker_spec(config: MetaReferenceInferenceConfig, ckpt_dir: Path, node_rank: int = 0) -> WorkerSpec:
    """The worker group's spec for one model's `config`, as host `node_rank` runs it (0: the server).

    Across hosts (config.nnodes > 1) the rendezvous is config.master_addr, else MASTER_ADDR from the
    environment, at config.master_port, else MASTER_PORT, else 29500: torch.distributed's names.
    InvalidRequestError when the ranks cannot be spread so (no address, an uneven split).
    """
    rendezvous = None
    nnodes = config.nnodes or 1
    shards = shard_count(ckpt_dir)
    world_size = config.model_parallel_size or shards
    if nnodes > 1:
        addr = config.master_addr or os.environ.get("MASTER_ADDR")
        port = config.master_port or os.environ.get("MASTER_PORT") or 29500
        if not str(port).isdigit() or not 0 < int(port) < 65536:
            raise InvalidRequestError(f"MASTER_PORT must be a port number, not {str(port)[:20]!r}.", field="master_port")
        if addr:
            rendezvous = f"tcp://[{addr}]:{port}" if ":" in addr else f"tcp://{addr}:{port}"
        if shards != world_size or shards % nnodes:  # said now, not after the other hosts joined
            raise InvalidRequestError(
                f"A model split over {nnodes} hosts needs a checkpoint in as many shards (consolidated.NN.pth) as "
                f"model-parallel ranks, a multiple of {nnodes}; {ckpt_dir} has {shards} shard(s)"
                + (f" and model_parallel_size is {world_size}" if world_size != shards else "")
                + ". Meta's Llama 3.1 70B and 405B checkpoints come in 8 shards.",
                field="nnodes",
            )
    return WorkerSpec(
        ckpt_dir=str(ckpt_dir),
        world_size=world_size,
        device=config.device,
        dtype=config.dtype,
        max_seq_len=config.max_seq_len,
        max_batch_size=config.max_batch_size,
        threads=config.threads,
        nnodes=nnodes,
        node_rank=node_rank,
        rendezvous=rendezvous,
    )


def gen_params(sp: SamplingParams, tokenizer: Tokenizer, logprobs: int | None = None) -> GenParams:
    """Our SamplingParams in the engine's terms; greedy unless a strategy with temperature > 0.

    `logprobs`: None for none, else each token's log-probability and the top `logprobs` ids'. The
    stop sequences go to the engine, which ends the sequence on the token that completes one.
    """
    temperature = 0.0 if sp.strategy == SamplingStrategy.greedy else sp.temperature
    stops = set(tokenizer.stop_tokens) | {tokenizer.eos_id}
    return GenParams(
        temperature=temperature,
        top_p=sp.top_p if sp.strategy == SamplingStrategy.top_p else 1.0,
        top_k=sp.top_k if sp.strategy == SamplingStrategy.top_k else 0,
        repetition_penalty=sp.repetition_penalty,
        seed=sp.seed,
        max_tokens=sp.max_tokens,
        logprobs=logprobs,
        stop=tuple(sp.stop),
        stop_tokens=frozenset(stops),
        eom_tokens=frozenset({tokenizer.eom_id} if tokenizer.eom_id is not None else ()),
    )


def longest_token_bytes(tokenizer: Tokenizer) -> int:
    """The UTF-8 size of the tokenizer's longest token (128 for Llama 3: a run of spaces)."""
    return max(len(tokenizer.id_to_piece(i).encode()) for i in range(tokenizer.vocab_size))


def dialog_bytes(messages: Sequence[Message]) -> int:
    """The UTF-8 size of a dialog's text: each message's content, and a user turn's RAG context."""
    texts = [content_text(m.content) for m in messages]
    texts += [content_text(m.context) for m in messages if isinstance(m, UserMessage) and m.context is not None]
    return sum(len(t.encode()) for t in texts)


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """One finished sequence: its ids, its text, why it ended; `cut` when a stop sequence ended it."""

    tokens: list[int]
    text: str
    stop: StopReason
    cut: bool
    logprobs: list[TokenLogProbs] | None


class LocalModel:
    """One model served by meta-reference: its tokenizer and prompt format here, its weights in a
    worker group. `async with LocalModel(config)` loads it; MetaReferenceInference starts several
    at once with `load()`, `spawn()` and `wait_started()`, and closes each with `aclose()`.

    `config` is a single model's (`MetaReferenceInferenceConfig.model_configs()` gives one per model).
    """

    def __init__(self, config: MetaReferenceInferenceConfig) -> None:
        self.config = config
        self.model: Model = resolve_model(config.model)
        self.ckpt_dir = Path(config.checkpoint_dir or paths.model_checkpoint_dir(self.model.descriptor)).expanduser()
        self.tokenizer: Tokenizer | None = None
        self.format: ChatFormat | JinjaChatFormat | None = None
        self.prompt_bytes_max = 0  # a prompt longer than this cannot fit the context, whatever its tokens
        self.group: WorkerGroup | None = None

    async def __aenter__(self) -> LocalModel:
        await self.load()
        try:
            await self.spawn()
            await self.wait_started()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def load(self) -> None:
        """Read the tokenizer and chat format (in a worker thread); CheckpointError without a checkpoint."""
        if not self.ckpt_dir.is_dir():
            raise CheckpointError(
                f"No checkpoint for {self.model.descriptor} in {self.ckpt_dir}. "
                f"Run `llama download --model-id {self.model.descriptor}` first."
            )
        self.tokenizer, self.format = await anyio.to_thread.run_sync(self._load_format)
        token_bytes = await anyio.to_thread.run_sync(longest_token_bytes, self.tokenizer)
        self.prompt_bytes_max = self.config.max_seq_len * token_bytes

    async def spawn(self) -> None:
        """Start the worker group (WorkerGroup.spawn): from the task that will call `aclose()`."""
        self.group = WorkerGroup(worker_spec(self.config, self.ckpt_dir))
        await self.group.spawn()

    async def wait_started(self) -> None:
        """Wait until the workers loaded the weights; their start error otherwise."""
        await self._engine.wait_started()

    async def aclose(self) -> None:
        if self.group is not None:
            await self.group.aclose()
            self.group = None

    def _load_format(self) -> tuple[Tokenizer, ChatFormat | JinjaChatFormat]:
        tokenizer = Tokenizer.from_file(self.ckpt_dir)
        if isinstance(tokenizer, Llama3Tokenizer):
            return tokenizer, ChatFormat(tokenizer)
        return tokenizer, JinjaChatFormat(tokenizer, load_chat_template(self.ckpt_dir))

    # -- Inference ---------------------------------------------------------------------------------

    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletionResponse | AsyncIterator[ChatCompletionResponseStreamChunk]:
        """A reply to `request.messages`; a chunk stream (start, progress..., complete) if `stream`."""
        prompt = await anyio.to_thread.run_sync(self.chat_prompt, request)
        check_room(len(prompt), request.sampling_params.max_tokens, self.config.max_seq_len, "messages")
        params = self.gen_params(request.sampling_params, request.logprobs)
        params = dataclasses.replace(params, grammar=self.chat_grammar(request))
        stops, tools = request.sampling_params.stop, offered(request.tools if request.tool_choice != ToolChoice.none else [])
        if request.stream:
            self._engine.check_serving()  # a 503 now, not an error event after the stream's start
            return self._chat_stream(prompt, params, stops, tools)
        run = await self._run(prompt, params, stops)
        metrics = token_metrics(len(prompt), len(run.tokens))
        return ChatCompletionResponse(completion_message=self._message(run, tools), logprobs=run.logprobs, metrics=metrics)

    async def completion(
        self, request: CompletionRequest
    ) -> CompletionResponse | AsyncIterator[CompletionResponseStreamChunk]:
        """A raw continuation of `request.content` (no chat template); a chunk stream if `stream`."""
        prompt = await anyio.to_thread.run_sync(self.completion_prompt, request.content)
        check_room(len(prompt), request.sampling_params.max_tokens, self.config.max_seq_len, "prompt")
        params = self.gen_params(request.sampling_params, request.logprobs)
        if request.response_format is not None:
            params = dataclasses.replace(params, grammar=response_format_grammar(request.response_format))
        stops = request.sampling_params.stop
        if request.stream:
            self._engine.check_serving()
            return self._completion_stream(prompt, params, stops)
        run = await self._run(prompt, params, stops)
        metrics = token_metrics(len(prompt), len(run.tokens))
        return CompletionResponse(content=run.text, stop_reason=run.stop, logprobs=run.logprobs, metrics=metrics)

    async def batch_chat_completion(self, request: BatchChatCompletionRequest) -> BatchChatCompletionResponse:
        """Every dialog at once: they share the continuous batch, so this is faster than one by one."""
        requests = chat_requests(request)
        for i, r in enumerate(requests):  # every size first: refusing one must not cost a tokenization
            self._check_bytes(dialog_bytes(r.messages), f"messages_batch[{i}]")
        prompts = await anyio.to_thread.run_sync(lambda: [self.chat_prompt(r) for r in requests])  # all before any runs
        params = self.gen_params(request.sampling_params, request.logprobs)
        params = dataclasses.replace(params, grammar=self.chat_grammar(requests[0]))  # the same tools for each
        runs = await self._run_all(prompts, params, request.sampling_params.stop)
        tools = offered(request.tools)
        return BatchChatCompletionResponse(completion_message_batch=[self._message(run, tools) for run in runs])

    async def batch_completion(self, request: BatchCompletionRequest) -> BatchCompletionResponse:
        """One CompletionMessage per prompt of `content_batch`, in order."""
        for i, c in enumerate(request.content_batch):
            self._check_bytes(len(content_text(c).encode()), f"content_batch[{i}]")
        prompts = await anyio.to_thread.run_sync(lambda: [self.completion_prompt(c) for c in request.content_batch])
        params = self.gen_params(request.sampling_params, request.logprobs)
        runs = await self._run_all(prompts, params, request.sampling_params.stop)
        return BatchCompletionResponse(
            completion_message_batch=[CompletionMessage(content=run.text, stop_reason=run.stop) for run in runs]
        )

    def health(self) -> dict[str, object]:
        """{"status": "ok" | "starting" | "restarting" | "down", "restarts": n}: its worker group's state.

        While restarting, "retry_after" (whole seconds) says when to ask again.
        """
        group = self.group
        if group is None:
            return {"status": "down"}
        state = group.state
        report: dict[str, object] = {"status": "ok" if state == "ready" else state, "restarts": group.restarts}
        if state == "restarting":
            report["retry_after"] = math.ceil(group.retry_after())
        return report

    # -- helpers -----------------------------------------------------------------------------------

    @property
    def _tok(self) -> Tokenizer:
        assert self.tokenizer is not None, "use `async with LocalModel(...)` first"
        return self.tokenizer

    @property
    def _engine(self) -> WorkerGroup:
        assert self.group is not None, "use `async with LocalModel(...)` first"
        return self.group

    @property
    def _fmt(self) -> ChatFormat | JinjaChatFormat:
        assert self.format is not None, "use `async with LocalModel(...)` first"
        return self.format

    def _check_bytes(self, size: int, field: str) -> None:
        """Refuse, before tokenizing, a prompt of `size` UTF-8 bytes that no tokenization fits in the context."""
        if size > self.prompt_bytes_max:
            raise InvalidRequestError(
                f"The prompt is {size} bytes, more than this model's context (max_seq_len "
                f"{self.config.max_seq_len} tokens) can hold: at most {self.prompt_bytes_max} bytes. Shorten it.",
                field=field,
            )

    def _check_length(self, prompt: Sequence[int], field: str = "messages") -> None:
        if len(prompt) >= self.config.max_seq_len:
            raise InvalidRequestError(
                f"The prompt has {len(prompt)} tokens, but this model's context (max_seq_len) is "
                f"{self.config.max_seq_len}. Shorten the {'prompt' if field == 'content' else field}.",
                field=field,
            )

    def chat_prompt(self, request: ChatCompletionRequest) -> list[int]:
        """The prompt's token ids: system prompt and tools per model family, then the chat format.

        Tokenizing is slow for long prompts (about a second per MB): call it in a worker thread.
        """
        self._check_bytes(dialog_bytes(request.messages), "messages")
        if request.tools and request.tool_choice != ToolChoice.none and isinstance(self.format, JinjaChatFormat):
            raise UnsupportedError(f"{self.model.descriptor} does not support tool calling.", field="tools")
        fmt = request.tool_prompt_format or self.tool_prompt_format
        messages = prepare_messages(
            request.messages, family=self.model.family, tools=request.tools, tool_prompt_format=fmt,
            tool_choice=request.tool_choice, vision=self.vision,
        )  # fmt: skip
        prompt = self._fmt.encode_dialog_prompt(messages, fmt)
        self._check_length(prompt)
        return prompt

    def chat_grammar(self, request: ChatCompletionRequest) -> str | None:
        """The grammar a reply must match: a call of one of `tools` in this model's format under
        tool_choice 'required', else the response_format's; None when unconstrained.

        Raises InvalidRequestError (400) for a schema or grammar that cannot be used, or both at once.
        """
        required = request.tool_choice == ToolChoice.required
        if required and request.response_format is not None:
            raise InvalidRequestError(
                "tool_choice 'required' and a response_format cannot both shape one reply; drop one",
                field="response_format",
            )
        if required:
            fmt = request.tool_prompt_format or default_tool_prompt_format(self.model.family)
            return tool_call_grammar(request.tools, fmt, self._tok.python_tag_id)
        if request.response_format is not None:
            return response_format_grammar(request.response_format)
        return None

    def completion_prompt(self, content: Content) -> list[int]:
        """A raw completion's token ids (BOS, then the text); call it in a worker thread, as chat_prompt."""
        self._check_bytes(len(content_text(content).encode()), "content")
        prompt = self._fmt.encode_content(content)
        if not prompt:  # "" with a tokenizer that adds no BOS (SmolLM2): nothing to continue
            raise InvalidRequestError("The prompt is empty: give at least one token of text to continue.", field="content")
        self._check_length(prompt, "content")
        return prompt

    def gen_params(self, sp: SamplingParams, logprobs: LogProbConfig | None = None) -> GenParams:
        """The engine's sampling params, with this model's stop tokens."""
        return gen_params(sp, self._tok, logprobs=logprobs.top_k if logprobs is not None else None)

    def _text(self, tokens: list[int], params: GenParams) -> str:
        """A raw completion's text: the generated tokens without the stop token."""
        return self._tok.decode([t for t in tokens if t not in params.stop_tokens])

    @property
    def vision(self) -> bool:
        """A Llama 3.2 Vision model (it takes tools as Llama 3.1 does)."""
        return "vision_chunk_size" in self.model.arch_args

    @property
    def tool_prompt_format(self) -> ToolPromptFormat:
        """The custom-tool format this model is trained on: a request without one gets it."""
        return default_tool_prompt_format(self.model.family, self.vision)

    def _message(self, run: Run, tools: frozenset[str]) -> CompletionMessage:
        """The assistant's reply: decoded from its tokens, or parsed from its text when a stop sequence
        cut it. Only `tools` (the request's) can be called."""
        if not run.cut:
            return self._fmt.decode_assistant_message(run.tokens, run.stop, tools=tools)
        if isinstance(self.format, ChatFormat):
            return decode_assistant_message_from_content(run.text, run.stop, tools=tools)
        return CompletionMessage(content=run.text, stop_reason=run.stop)

    def _logprobs(self, out: TokenOut) -> TokenLogProbs | None:
        """The engine's log-probabilities of one step: the generated token's and the top k's."""
        if out.logprob is None or out.logprobs is None:
            return None
        tok = self._tok
        top = [TopLogProb(token=tok.id_to_piece(t), logprob=lp, bytes=list(tok.token_bytes(t))) for t, lp in out.logprobs.items()]
        text = tok.id_to_piece(out.token)
        by_text = {text: out.logprob}
        for t in top:
            by_text.setdefault(t.token, t.logprob)  # tokens that read alike: the likeliest keeps the key
        return TokenLogProbs(
            logprobs_by_token=by_text,
            token=text,
            logprob=out.logprob,
            bytes=list(tok.token_bytes(out.token)),
            top_logprobs=top,
        )

    async def _run(self, prompt: list[int], params: GenParams, stops: Sequence[str] = ()) -> Run:
        cutter = StopCutter(stops)
        tokens: list[int] = []
        pieces: list[str] = []
        logprobs: list[TokenLogProbs] = []
        stop = StopReason.out_of_tokens
        async with contextlib.aclosing(self.token_stream(prompt, params, cutter)) as outs:
            async for out, text in outs:
                tokens.append(out.token)
                pieces.append(text)
                if (lp := self._logprobs(out)) is not None:
                    logprobs.append(lp)
                if out.stop_reason is not None:
                    stop = StopReason(out.stop_reason)
        # Uncut, the text is decoded whole (a last character the stream still held is kept).
        text = "".join(pieces) if cutter.stopped else self._text(tokens, params)
        return Run(tokens, text, stop, cutter.stopped, logprobs if params.logprobs is not None else None)

    async def _run_all(self, prompts: list[list[int]], params: GenParams, stops: Sequence[str] = ()) -> list[Run]:
        results: list[Any] = [None] * len(prompts)

        async def one(i: int) -> None:
            results[i] = await self._run(prompts[i], params, stops)

        try:
            async with anyio.create_task_group() as tg:
                for i in range(len(prompts)):
                    tg.start_soon(one, i)
        except BaseExceptionGroup as failed:  # one row's error is the batch's (the others were cancelled)
            raise first_error(failed) from None
        return results

    async def token_stream(
        self, prompt: list[int], params: GenParams, cutter: StopCutter | None = None
    ) -> AsyncIterator[tuple[TokenOut, str]]:
        """Each generated token with the text it completes ('' for stop tokens).

        The text goes through `cutter` (default: one over `params.stop`), held back while it may
        be starting a stop sequence, and the stream ends at the first stop sequence: the engine
        ended the sequence on that very token (its batch slot is free), which comes with
        stop_reason end_of_turn.
        """
        assert self.group is not None, "use `async with LocalModel(...)` first"
        decoder = IncrementalDecoder(self._tok)
        cutter = cutter if cutter is not None else StopCutter(params.stop)
        async with self.group.generate(prompt, params) as stream:
            async for out in stream:
                text = "" if out.token in params.stop_tokens else cutter.push(decoder.push(out.token))
                if cutter.stopped:
                    yield dataclasses.replace(out, stop_reason=StopReason.end_of_turn.value), text
                    return
                if out.stop_reason is not None:
                    text += cutter.flush()
                yield out, text

    async def _chat_stream(
        self, prompt: list[int], params: GenParams, stops: Sequence[str], tools: frozenset[str]
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        chat = ChatStream(tools)
        yield chat.start()
        cutter = StopCutter(stops)
        tokens: list[int] = []
        pieces: list[str] = []
        stop = StopReason.out_of_tokens
        python_tag = self._tok.python_tag_id
        pending: list[TokenLogProbs] = []  # of tokens whose text is not out yet: they go with the next piece
        async with contextlib.aclosing(self.token_stream(prompt, params, cutter)) as outs:
            async for out, text in outs:
                tokens.append(out.token)
                pieces.append(text)
                if (lp := self._logprobs(out)) is not None:
                    pending.append(lp)
                if out.stop_reason is not None:
                    stop = StopReason(out.stop_reason)
                if len(tokens) == 1 and python_tag is not None and out.token == python_tag:
                    for chunk in chat.tool_call_started():
                        yield chunk
                elif text:
                    for chunk in chat.text(text, pending or None):
                        yield chunk
                    pending = []
        run = Run(tokens, "".join(pieces), stop, cutter.stopped, None)
        *chunks, complete = chat.finish(self._message(run, tools))
        complete.event.logprobs = pending or None  # the stop token's: every token's entry is in the stream once
        for chunk in chunks:
            yield chunk
        yield msgspec.structs.replace(complete, metrics=token_metrics(len(prompt), len(tokens)))

    async def _completion_stream(
        self, prompt: list[int], params: GenParams, stops: Sequence[str] = ()
    ) -> AsyncIterator[CompletionResponseStreamChunk]:
        pending: list[TokenLogProbs] = []  # of tokens whose text is not out yet: they go with the next piece
        generated = 0
        async with contextlib.aclosing(self.token_stream(prompt, params, StopCutter(stops))) as outs:
            async for out, text in outs:
                generated += 1
                if (lp := self._logprobs(out)) is not None:
                    pending.append(lp)
                stop = StopReason(out.stop_reason) if out.stop_reason is not None else None
                if text or stop is not None:
                    yield CompletionResponseStreamChunk(
                        delta=text, stop_reason=stop, logprobs=pending or None,
                        metrics=token_metrics(len(prompt), generated) if stop is not None else msgspec.UNSET,
                    )  # fmt: skip
                    pending = []
