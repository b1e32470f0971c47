"""meta-reference inference end to end on a tiny random Llama 3 checkpoint: the provider, the worker
group and the prompt format together, checked against the engine run in-process."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import anyio

import pytest

from llama_core.engine.checkpoint import load_model
from llama_core.engine.messages import GenParams
from llama_core.engine.parallel import init_model_parallel
from llama_core.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    NotFoundError,
    UnavailableError,
    UnsupportedError,
)
from llama_core.prompt.chat_format import ChatFormat
from llama_core.providers.inference.meta_reference import MetaReferenceInference, MetaReferenceInferenceConfig
from llama_core.tokenizer import Tokenizer
from llama_core.types import (
    LogProbConfig,
    SamplingParams,
    StopReason,
    SystemMessage,
    ToolDefinition,
    ToolPromptFormat,
    UserMessage,
)
from llama_core.types.inference import (
    BatchChatCompletionRequest,
    BatchCompletionRequest,
    ChatCompletionRequest,
    CompletionRequest,
    ToolCallDelta,
)

pytestmark = pytest.mark.anyio

MODEL = "Llama3.2-1B-Instruct"  # the 3.2 route adds no dated system prompt: prompts are stable
DIALOGS = [
    [UserMessage(content="What is the capital of France?")],
    [SystemMessage(content="Be brief."), UserMessage(content="Name a color.")],
    [UserMessage(content="Count to three.")],
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.tiny_checkpoint import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("mr") / "tiny")


def config(ckpt: Path) -> MetaReferenceInferenceConfig:
    return MetaReferenceInferenceConfig(model=MODEL, checkpoint_dir=str(ckpt), max_seq_len=96, max_batch_size=4)


def in_process_greedy(ckpt: Path, messages: list, n: int) -> tuple[list[int], str]:
    from engine.solo import generate

    tok = Tokenizer.from_file(ckpt / "tokenizer.model")
    prompt = ChatFormat(tok).encode_dialog_prompt(messages)
    init_model_parallel()  # a 1-process group for fairscale's layers in this test process
    model, _ = load_model(ckpt, max_seq_len=96, max_batch_size=1)
    stops = frozenset(tok.stop_tokens)
    tokens = [r.token for r in generate(model, prompt, GenParams(max_tokens=n, stop_tokens=stops))]
    return tokens, tok.decode([t for t in tokens if t not in stops])


async def test_chat_stream_batch_and_completion(tiny_dir: Path) -> None:
    sp = SamplingParams(max_tokens=16)
    expected = [in_process_greedy(tiny_dir, d, 16)[1] for d in DIALOGS]
    async with MetaReferenceInference(config(tiny_dir)) as inf:
        # non-stream: the same greedy text as the engine run in this process
        reply = await inf.chat_completion(ChatCompletionRequest(model=MODEL, messages=DIALOGS[0], sampling_params=sp))
        assert reply.completion_message.content == expected[0]
        assert reply.completion_message.stop_reason == StopReason.out_of_tokens

        # stream: start, progress..., complete; the deltas add up to the same text
        request = ChatCompletionRequest(model=MODEL, messages=DIALOGS[0], sampling_params=sp, stream=True)
        stream = await inf.chat_completion(request)
        async with contextlib.aclosing(stream):
            events = [chunk.event async for chunk in stream]
        kinds = [e.event_type for e in events]
        assert kinds[0] == "start" and kinds[-1] == "complete" and set(kinds[1:-1]) == {"progress"}
        assert "".join(e.delta for e in events if isinstance(e.delta, str)) == expected[0]
        assert not any(isinstance(e.delta, ToolCallDelta) for e in events)
        assert events[-1].stop_reason == StopReason.out_of_tokens

        # batch: each dialog as if alone
        batch = await inf.batch_chat_completion(
            BatchChatCompletionRequest(model=MODEL, messages_batch=DIALOGS, sampling_params=sp)
        )
        assert [m.content for m in batch.completion_message_batch] == expected

        # logprobs: one entry per generated token, the chosen token's text among them
        request = ChatCompletionRequest(
            model=MODEL, messages=DIALOGS[2], sampling_params=sp, logprobs=LogProbConfig(top_k=2)
        )
        reply = await inf.chat_completion(request)
        assert reply.logprobs is not None and len(reply.logprobs) == 16
        assert all(len(lp.logprobs_by_token) == 2 for lp in reply.logprobs)

        # raw completion: BOS + text, no chat template
        done = await inf.completion(CompletionRequest(model=MODEL, content="Once upon a time", sampling_params=sp))
        assert done.stop_reason == StopReason.out_of_tokens and isinstance(done.content, str)


async def test_bad_requests_are_clear_errors(tiny_dir: Path) -> None:
    async with MetaReferenceInference(config(tiny_dir)) as inf:
        with pytest.raises(NotFoundError, match="not served here"):
            await inf.chat_completion(ChatCompletionRequest(model="Llama3.1-8B-Instruct", messages=DIALOGS[0]))
        with pytest.raises(ModelNotFoundError):
            await inf.chat_completion(ChatCompletionRequest(model="gpt-5", messages=DIALOGS[0]))
        with pytest.raises(InvalidRequestError, match="max_seq_len"):
            long = [UserMessage(content="hello " * 200)]
            await inf.chat_completion(ChatCompletionRequest(model=MODEL, messages=long))
        with pytest.raises(UnsupportedError, match="python_list"):  # asked for json; none is the model's own (#16)
            tools = [ToolDefinition(tool_name="get_weather", description="Weather in a city")]
            json_tools = ChatCompletionRequest(model=MODEL, messages=DIALOGS[0], tools=tools, tool_prompt_format=ToolPromptFormat.json)
            await inf.chat_completion(json_tools)
        # still serving after the errors
        reply = await inf.chat_completion(
            ChatCompletionRequest(model=MODEL, messages=DIALOGS[1], sampling_params=SamplingParams(max_tokens=3))
        )
        assert reply.completion_message.stop_reason == StopReason.out_of_tokens


async def test_a_seed_the_engine_cannot_take_fails_its_request_only(tiny_dir: Path) -> None:
    bad = SamplingParams(max_tokens=8, seed=2**70)
    async with MetaReferenceInference(config(tiny_dir)) as inf:
        request = ChatCompletionRequest(model=MODEL, messages=DIALOGS[1], sampling_params=SamplingParams(max_tokens=8))
        before = (await inf.chat_completion(request)).completion_message.content
        with pytest.raises(InvalidRequestError, match="^The seed does not fit in 64 bits") as e:
            await inf.chat_completion(ChatCompletionRequest(model=MODEL, messages=DIALOGS[0], sampling_params=bad))
        assert e.value.field == "sampling_params.seed"
        # A batch fails with its rows' error itself, not an exception group (which would be a 500).
        with pytest.raises(InvalidRequestError, match="^The seed does not fit in 64 bits"):
            await inf.batch_chat_completion(BatchChatCompletionRequest(model=MODEL, messages_batch=DIALOGS, sampling_params=bad))
        with pytest.raises(InvalidRequestError, match="^The seed does not fit in 64 bits"):
            await inf.batch_completion(BatchCompletionRequest(model=MODEL, content_batch=["a", "b"], sampling_params=bad))
        assert (await inf.chat_completion(request)).completion_message.content == before
        assert await inf.health() == {"status": "ok", "restarts": 0}


async def test_health_follows_a_crash_and_streams_are_refused_while_restarting(tiny_dir: Path) -> None:
    async with MetaReferenceInference(config(tiny_dir)) as inf:
        assert inf.primary.group is not None
        request = ChatCompletionRequest(model=MODEL, messages=DIALOGS[2], sampling_params=SamplingParams(max_tokens=6))
        before = (await inf.chat_completion(request)).completion_message.content
        os.kill(inf.primary.group.pids[0], signal.SIGKILL)
        with anyio.fail_after(30):
            while inf.primary.group.state == "ready":
                await anyio.sleep(0.01)
        report = await inf.health()
        assert report.pop("retry_after") >= 1
        assert report == {"status": "restarting", "restarts": 1}
        stream = ChatCompletionRequest(model=MODEL, messages=DIALOGS[2], sampling_params=SamplingParams(max_tokens=6), stream=True)
        with pytest.raises(UnavailableError, match="^The inference engine is restarting after a worker crash; retry in "):
            await inf.chat_completion(stream)  # refused before a stream is handed out
        with anyio.fail_after(120):
            while inf.primary.group.state != "ready":
                await anyio.sleep(0.05)
        assert await inf.health() == {"status": "ok", "restarts": 1}
        assert (await inf.chat_completion(request)).completion_message.content == before
    assert await inf.health() == {"status": "down"}
