"""A real Hypercorn server (fake stack) driven by the `openai` package, httpx and llama_core.client."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import openai
import pytest
from rpc.fakes import MODEL, FakeStack
from rpc.server import running_server

from llama_core import errors
from llama_core.client import StackClient
from llama_core.types import SamplingParams, UserMessage
from llama_core.types.inference import ChatCompletionRequest, CompletionRequest
from llama_core.types.models import ModelsGetRequest
from llama_core.types.safety import RunShieldsRequest
from llama_rpc.http import create_app

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}]


@pytest.fixture(scope="module")
def stack() -> FakeStack:
    return FakeStack()


@pytest.fixture(scope="module")
def url(stack: FakeStack) -> Iterator[str]:
    with running_server(lambda: create_app(stack)) as base:
        yield base


@pytest.fixture(params=["/v1", "/v1/openai/v1"])
def oai(url: str, request: pytest.FixtureRequest) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=url + request.param, api_key="unused", max_retries=0) as client:  # no stray socket
        yield client


def say(text: str, stream: bool = False) -> ChatCompletionRequest:
    return ChatCompletionRequest(model=MODEL, messages=[UserMessage(content=text)], stream=stream)


# --- the openai package --------------------------------------------------------------------------


def test_openai_chat(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi there"}])
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content == "You said: hi there"
    assert reply.choices[0].finish_reason == "stop"


def test_openai_chat_stream(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi there"}], stream=True)
    chunks = list(stream)
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: hi there"
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"


def test_openai_tool_call(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "call it"}], tools=TOOLS)
    call = reply.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == ("call-1", "get_weather", '{"x": 1}')
    assert reply.choices[0].finish_reason == "tool_calls"
    stream = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "call it"}], tools=TOOLS, stream=True)
    deltas = [c.choices[0].delta.tool_calls for c in stream if c.choices[0].delta.tool_calls]
    assert [(d[0].index, d[0].function.name, d[0].function.arguments) for d in deltas] == [(0, "get_weather", '{"x": 1}')]


def test_openai_stop_sequence(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi there"}], stop=["hi"])
    assert (reply.choices[0].message.content, reply.choices[0].finish_reason) == ("You said: ", "stop")


def test_openai_completions(oai: openai.OpenAI) -> None:
    reply = oai.completions.create(model=MODEL, prompt="it rained", max_tokens=3)
    assert (reply.choices[0].text, reply.choices[0].finish_reason) == ("and then it ", "length")
    chunks = list(oai.completions.create(model=MODEL, prompt="it rained", stream=True))
    assert "".join(c.choices[0].text for c in chunks) == "and then it rained"


def test_openai_models_and_embeddings(oai: openai.OpenAI) -> None:
    assert [m.id for m in oai.models.list()] == [MODEL]
    assert oai.models.retrieve(MODEL).owned_by == "fake"
    result = oai.embeddings.create(model=MODEL, input=["abc", "hello"])  # base64 on the wire, by default
    assert [d.embedding for d in result.data] == [[3.0, 0.5], [5.0, 0.5]]


@pytest.mark.parametrize(
    ("kwargs", "exception", "param"),
    [
        pytest.param({"n": 0}, openai.BadRequestError, "n", id="n"),
        pytest.param({"temperature": 5.0}, openai.BadRequestError, "temperature", id="temperature"),
        pytest.param({"messages": [{"role": "user", "content": 3}]}, openai.BadRequestError, "messages[0].content", id="content-type"),
        pytest.param({"model": "Llama-9"}, openai.NotFoundError, None, id="unknown-model"),
    ],
)
def test_openai_errors(oai: openai.OpenAI, kwargs: dict[str, Any], exception: type[Exception], param: str | None) -> None:
    args: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **kwargs}
    with pytest.raises(exception) as caught:
        oai.chat.completions.create(**args)
    assert caught.value.body["param"] == param  # type: ignore[attr-defined]


def test_openai_streams_end_with_done_under_v1_only(url: str) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    for path in ("/v1/chat/completions", "/v1/completions"):
        text = httpx.post(url + path, json={**body, "prompt": "hi"}).text
        assert text.endswith('"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n') and text.count("[DONE]") == 1
    # llama-stack's own path keeps its streams as llama-stack sends them: llama-stack-client cannot parse [DONE].
    text = httpx.post(url + "/v1/openai/v1/chat/completions", json=body).text
    assert text.endswith('"finish_reason":"stop"}]}\n\n')
    assert "[DONE]" not in text
    native = httpx.post(url + "/inference/chat_completion", json=body).text
    assert native.endswith('"stop_reason":"end_of_turn"}}\n\n') and "[DONE]" not in native


def test_openai_done_line_everywhere_on_request(stack: FakeStack) -> None:
    with running_server(lambda: create_app(stack, openai_done=True)) as base:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
        assert httpx.post(base + "/v1/openai/v1/chat/completions", json=body).text.endswith("\n\ndata: [DONE]\n\n")
        with openai.OpenAI(base_url=base + "/v1/openai/v1", api_key="x") as client:
            reply = client.chat.completions.create(**body)
            assert "".join(c.choices[0].delta.content or "" for c in reply) == "You said: hi"


# --- llama_core.client -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_client_chat_and_stream(url: str) -> None:
    async with StackClient(url) as client:
        reply = await client.chat_completion(say("hi there"))
        assert reply.completion_message.content == "You said: hi there"
        stream = await client.chat_completion(say("hi there", stream=True))
        async with contextlib.aclosing(stream):
            kinds = [(c.event.event_type, c.event.delta) async for c in stream]
        assert kinds[0] == ("start", "") and kinds[-1] == ("complete", "")
        assert "".join(d for _, d in kinds) == "You said: hi there"
        stream = await client.completion(CompletionRequest(model=MODEL, content="it rained", stream=True))
        assert "".join([c.delta async for c in stream]) == "and then it rained"
        assert (await client.get_model(ModelsGetRequest(core_model_id=MODEL))).provider == "fake"
        assert [m.descriptor for m in await client.list_models()] == [MODEL]


@pytest.mark.anyio
async def test_client_errors(url: str) -> None:
    async with StackClient(url) as client:
        with pytest.raises(errors.NotFoundError, match="Unknown model 'Llama-9'"):
            await client.chat_completion(ChatCompletionRequest(model="Llama-9", messages=[UserMessage(content="x")]))
        with pytest.raises(errors.NotConfiguredError, match="no safety API"):
            await client.run_shields(RunShieldsRequest(messages=[], shields=[]))
        with pytest.raises(errors.ProviderError, match="the fake engine broke"):
            async for _ in await client.chat_completion(say("fail", stream=True)):
                pass
        bad = ChatCompletionRequest(model=MODEL, messages=[UserMessage(content="x")], sampling_params=SamplingParams(temperature=-1.0))
        with pytest.raises(errors.InvalidRequestError) as caught:
            await client.chat_completion(bad)
        assert caught.value.field == "sampling_params.temperature"  # checked by the server, named back
    async with StackClient("http://127.0.0.1:9") as client:
        with pytest.raises(errors.UnavailableError, match="Cannot reach the stack at http://127.0.0.1:9"):
            await client.list_models()


@pytest.mark.anyio
async def test_api_key_through_the_client(stack: FakeStack) -> None:
    with running_server(lambda: create_app(stack, api_key="sekret")) as base:
        async with StackClient(base) as client:
            with pytest.raises(errors.AuthenticationError, match="API key"):
                await client.list_models()
        async with StackClient(base, api_key="sekret") as client:
            assert len(await client.list_models()) == 1
        with openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0) as oai:  # closed: no stray socket
            with pytest.raises(openai.AuthenticationError):
                oai.models.list()


# --- load and disconnects ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_32_concurrent_streams(url: str, stack: FakeStack) -> None:
    texts: dict[int, str] = {}

    async def one(i: int, client: StackClient) -> None:
        stream = await client.chat_completion(say(f"slow number {i}", stream=True))
        texts[i] = "".join([c.event.delta async for c in stream if isinstance(c.event.delta, str)])

    async with StackClient(url) as client, anyio.create_task_group() as tg:
        for i in range(32):
            tg.start_soon(one, i, client)
    assert texts == {i: f"You said: slow number {i}" for i in range(32)}
    assert stack.providers["inference"].open_streams == 0


def test_disconnect_mid_stream_closes_the_provider_stream(url: str, stack: FakeStack) -> None:
    inference = stack.providers["inference"]
    closed_before = inference.closed_streams
    body = {"model": MODEL, "messages": [{"role": "user", "content": "slow " + "word " * 200}], "stream": True}
    with httpx.stream("POST", url + "/inference/chat_completion", json=body) as response:
        lines = response.iter_lines()  # held: dropping it would close the connection at once
        assert next(lines).startswith('data: {"event":{"event_type":"start"')
        assert inference.open_streams == 1
    deadline = time.monotonic() + 2.0  # 200 words at 50 ms would take 10 s: closed early, or not at all
    while inference.closed_streams == closed_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (inference.open_streams, inference.closed_streams) == (0, closed_before + 1)


# --- python -m llama_cli.client.inference ----------------------------------------------------------


def test_inference_client_interactive_chat_on_a_terminal(url: str, stack: FakeStack) -> None:
    import os
    import pty
    import subprocess
    import sys

    port = url.rsplit(":", 1)[1]
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cli.client.inference", "127.0.0.1", port],
        stdin=slave, stdout=slave, stderr=slave, env={**os.environ, "NO_COLOR": "1"}, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    os.write(master, b"hi there\nand again\n\n")  # two turns, then an empty line ends the chat
    seen = b""
    try:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            seen += data
    finally:
        os.close(master)
        assert proc.wait(30) == 0, seen
    text = seen.decode().replace("\r\n", "\n")
    assert f"Initializing client for http://127.0.0.1:{port}\n" in text
    assert "Assistant> You said: hi there\n" in text
    assert "Assistant> You said: and again\n" in text
    last = stack.providers["inference"].requests[-1]  # the second turn carried the whole chat
    assert [type(m).__name__ for m in last.messages] == ["UserMessage", "CompletionMessage", "UserMessage"]


def test_inference_client_streams_with_the_models_recommended_sampling(url: str, stack: FakeStack) -> None:
    import subprocess
    import sys

    import msgspec

    from llama_core.types import SamplingParams, SamplingStrategy

    recommended = SamplingParams(strategy=SamplingStrategy.top_p, temperature=0.2, top_p=0.9)
    models = stack.providers["models"]
    models.model = msgspec.structs.replace(models.model, recommended_sampling_params=recommended)
    done = subprocess.run(
        [sys.executable, "-m", "llama_cli.client.inference", "127.0.0.1", url.rsplit(":", 1)[1], "--message", "hi"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout.endswith("Assistant> You said: hi\n")
    last = stack.providers["inference"].requests[-1]
    # a few paragraphs (max_tokens 0 meant the whole context: 4,096 tokens over 7 minutes), as they come
    assert last.stream is True
    assert last.sampling_params == msgspec.structs.replace(recommended, max_tokens=512)
    # asked for greedy: greedy
    argv = [sys.executable, "-m", "llama_cli.client.inference", "127.0.0.1", url.rsplit(":", 1)[1], "--message", "hi", "--temperature", "0"]
    assert subprocess.run(argv, capture_output=True, text=True, timeout=60).returncode == 0
    sampling = stack.providers["inference"].requests[-1].sampling_params
    assert (sampling.strategy, sampling.temperature, sampling.max_tokens) == (SamplingStrategy.greedy, 0.0, 512)


def test_inference_client_prints_the_reply_as_it_comes_unless_asked_not_to(url: str, stack: FakeStack) -> None:
    import os
    import select
    import subprocess
    import sys

    port = url.rsplit(":", 1)[1]
    argv = [sys.executable, "-m", "llama_cli.client.inference", "127.0.0.1", port, "--message", "slow " + "word " * 200]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})
    seen, deadline = b"", time.monotonic() + 60
    try:
        while b"Assistant> You said: slow" not in seen and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 1.0)[0]:
                seen += os.read(proc.stdout.fileno(), 4096)  # type: ignore[union-attr]
        # the first words are on screen while the other ~190 (50 ms apart) are still on their way
        assert b"Assistant> You said: slow" in seen and proc.poll() is None, seen
        assert stack.providers["inference"].requests[-1].stream is True
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    # --no-stream: one answer, printed whole
    done = subprocess.run([*argv[:5], "--no-stream", "--message", "hi"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.endswith("User>hi\n\nAssistant> You said: hi\n")
    assert stack.providers["inference"].requests[-1].stream is False


def test_inference_client_errors_are_one_line() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "llama_cli.client.inference", "127.0.0.1", "9", "--message", "hi"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("Error: Cannot reach the stack at http://127.0.0.1:9") and done.stderr.count("\n") == 1
