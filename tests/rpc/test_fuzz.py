"""Hostile input, seeded and bounded, into the real servers: no 5xx, no traceback, every bad
request answered within a second, and a normal request answered afterwards.

stdio: 1,000 malformed or random lines into `python -m llama_rpc`, one well-formed answer per
request: pipelined into a stack with no model (models/list works without one; inference answers
-32601), and one at a time into the tiny model's stack. Lines are seeded-random members of each kind
below, each knowing what it must get back: an answer with its own id, an answer with id null
(unreadable id), or nothing (notifications, client responses).

HTTP: 600 bad bodies into the native and OpenAI-compatible routes of the tiny model's stack served
by Hypercorn (tests/rpc/conftest.py), each kind knowing the statuses it may get.
"""

from __future__ import annotations

import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from llama_core.types.schema import MAX_JSON_DEPTH

CODES = {-32700, -32600, -32601, -32602, -32603, -32002}
NULL = ("null",)
NOTHING = None

Line = tuple[bytes, Any]  # (the line, what it expects: ("id", id) | NULL | NOTHING)


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def invalid_json(rng: random.Random, i: int) -> Line:
    good = _dump({"jsonrpc": "2.0", "id": i, "method": "ping"})
    choice = rng.randrange(4)
    if choice == 0:
        line = good[: rng.randrange(1, len(good) - 1)]  # truncated
    elif choice == 1:
        line = bytes(rng.choice([b for b in range(256) if b not in b"\n\r \t"]) for _ in range(rng.randrange(1, 80)))
    elif choice == 2:
        line = b"{'jsonrpc': '2.0', 'id': %d}" % i  # single quotes
    else:
        line = good + b"}"  # trailing garbage
    try:
        json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return line, NULL
    return b"nope", NULL  # random bytes that happened to be JSON: use a sure parse error


def not_an_object(rng: random.Random, i: int) -> Line:
    value = rng.choice([i, "ping", None, True, [], [{"jsonrpc": "2.0", "id": i, "method": "ping"}], 1.5])
    return _dump(value), NULL


def bad_id(rng: random.Random, i: int) -> Line:
    return _dump({"jsonrpc": "2.0", "id": rng.choice([None, True, False, 1.5, {"a": i}, [i]]), "method": "ping"}), NULL


def huge_id(rng: random.Random, i: int) -> Line:
    request_id = rng.choice([2**64 + i, -(2**80) - i, 10**40 + i, f"id-{i}-" + "x" * rng.randrange(1000, 20000), f"ü{i}✓"])
    method = rng.choice(["ping", "models/list", "no/such"])
    return _dump({"jsonrpc": "2.0", "id": request_id, "method": method}), ("id", request_id)


def wrong_types(rng: random.Random, i: int) -> Line:
    message = rng.choice([
        {"jsonrpc": "1.0", "id": i, "method": "ping"},
        {"jsonrpc": 2, "id": i, "method": "ping"},
        {"id": i, "method": "ping"},
        {"jsonrpc": "2.0", "id": i, "method": 42},
        {"jsonrpc": "2.0", "id": i, "method": None},
        {"jsonrpc": "2.0", "id": i},
        {"jsonrpc": "2.0", "id": i, "method": "models/get", "params": {"core_model_id": i}},
        {"jsonrpc": "2.0", "id": i, "method": "models/get", "params": [1, 2]},
        {"jsonrpc": "2.0", "id": i, "method": "models/get", "params": "x"},
        {"jsonrpc": "2.0", "id": i, "method": "models/get", "params": {}},
        {"jsonrpc": "2.0", "id": i, "method": "models/list", "params": {"extra": True}},
        {"jsonrpc": "2.0", "id": i, "method": "initialize", "params": {"protocolVersion": 5}},
        {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": ["x"]}},
        {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "models_get", "arguments": {"core_model_id": False}}},
        {"jsonrpc": "2.0", "id": i, "method": "resources/read", "params": {"uri": f"llama://models/nope{i}"}},
        {"jsonrpc": "2.0", "id": i, "method": "prompts/get", "params": {"name": "user-default", "arguments": {"tool_prompt_format": 1}}},
        {"jsonrpc": "2.0", "id": i, "method": "inference/chat_completion", "params": {"model": "x", "messages": []}},
    ])  # fmt: skip
    return _dump(message), ("id", i)


def unknown_method(rng: random.Random, i: int) -> Line:
    method = rng.choice(["server/discover", "no/such", "", "tools/lists", "x" * 500, "INITIALIZE", "$/cancelRequest"])
    return _dump({"jsonrpc": "2.0", "id": f"u{i}", "method": method, "params": {"_meta": {}}}), ("id", f"u{i}")


def notification_with_id(rng: random.Random, i: int) -> Line:
    method = rng.choice(["notifications/initialized", "notifications/cancelled", "notifications/progress"])
    return _dump({"jsonrpc": "2.0", "id": i, "method": method, "params": {"requestId": i}}), ("id", i)


def notification(rng: random.Random, i: int) -> Line:
    message = rng.choice([
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": i}},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": None}},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": [1]},
        {"jsonrpc": "2.0", "method": "no/such"},
        {"jsonrpc": "2.0", "method": "ping"},  # ping without an id is a notification: no answer
        {"jsonrpc": "1.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "method": 7},
        {"jsonrpc": "2.0", "id": i, "result": {}},  # a response from the client
        {"jsonrpc": "2.0", "id": i, "error": {"code": 1, "message": "x"}},
    ])  # fmt: skip
    return _dump(message), NOTHING


def valid(rng: random.Random, i: int) -> Line:
    message = rng.choice([
        {"method": "ping"},
        {"method": "models/list"},
        {"method": "models/list", "params": {}},
        {"method": "tools/list"},
        {"method": "prompts/list"},
        {"method": "resources/list"},
        {"method": "initialize", "params": {"protocolVersion": rng.choice(["2025-11-25", "2024-11-05", "1999-01-01"]), "capabilities": {}}},
        {"method": "tools/call", "params": {"name": "models_list", "arguments": {}, "_meta": {"progressToken": i}}},
    ])  # fmt: skip
    return _dump({"jsonrpc": "2.0", "id": i, **message}), ("id", i)


def nested(rng: random.Random) -> str:
    """A JSON value nested past the limit (up to 20,000 levels), of arrays or objects."""
    depth = rng.choice([MAX_JSON_DEPTH + 1, 100, 1000, 20_000])
    if rng.random() < 0.5:
        return "[" * depth + "]" * depth
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def deep(rng: random.Random, i: int) -> Line:
    """Too deep anywhere: refused before decoding, so even a readable id is not read (id null)."""
    value = nested(rng)
    line = rng.choice([
        value,
        '{"jsonrpc":"2.0","id":%d,"method":"models/list","params":{"x":%s}}' % (i, value),
        '{"jsonrpc":"2.0","id":%s,"method":"ping"}' % value,
        '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"models_list","arguments":{"a":%s}}}' % (i, value),
        '{"jsonrpc":"2.0","id":%d,"method":"inference/chat_completion","params":{"model":"m","messages":%s}}' % (i, value),
        '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":%s}}' % value,
    ])  # fmt: skip
    return line.encode(), NULL


def huge_strings(rng: random.Random, i: int) -> Line:
    big = "q" * rng.choice([10_000, 100_000, 1_000_000])
    message = rng.choice([
        {"jsonrpc": "2.0", "id": i, "method": big},
        {"jsonrpc": "2.0", "id": i, "method": "models/get", "params": {"core_model_id": big}},
        {"jsonrpc": "2.0", "id": i, "method": "models/list", "params": {big: 1}},
        {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": big}},
        {"jsonrpc": "2.0", "id": i, "method": "resources/read", "params": {"uri": "llama://models/" + big}},
        {"jsonrpc": "2.0", "id": i, "method": "prompts/get", "params": {"name": big}},
        {"jsonrpc": "2.0", "id": i, "method": "inference/chat_completion",
         "params": {"model": big, "messages": [{"role": "user", "content": "hi"}]}},
    ])  # fmt: skip
    return _dump(message), ("id", i)


def odd_unicode(rng: random.Random, i: int) -> Line:
    good = b'{"jsonrpc":"2.0","id":%d,"method":"models/get","params":{"core_model_id":"VALUE"}}' % i
    bad_escapes = [b"\\ud800", b"\\udfff\\ud800", b"\\u12"]  # refused as the line is parsed: id null
    bad_utf8 = [b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80"]  # in params, read when params are decoded (after the id)
    readable = ["\u0000", "\u202e\u200b\ufeff", "\U0001f600" * 50, "e\u0301" * 500, "\ud7ff\ue000\uffff"]
    if rng.random() < 0.5:
        if rng.random() < 0.5:
            return good.replace(b"VALUE", rng.choice(bad_utf8)), ("id", i)
        return good.replace(b"VALUE", rng.choice(bad_escapes)), NULL
    if rng.random() < 0.5:
        return b"\xef\xbb\xbf" + good.replace(b"VALUE", b"x"), NULL  # a byte-order mark first
    value = rng.choice(readable)
    message = rng.choice([
        {"jsonrpc": "2.0", "id": i, "method": "models/get", "params": {"core_model_id": value}},
        {"jsonrpc": "2.0", "id": i, "method": value},
        {"jsonrpc": "2.0", "id": i, "method": "models/list", "params": {value: value}},
    ])  # fmt: skip
    return _dump(message), ("id", i)


def bad_inference(rng: random.Random, i: int) -> Line:
    """Inference requests refused before any token is generated (a model, tools or messages at fault)."""
    tools = rng.choice([
        [{"tool_name": "f", "parameters": ["a"]}], [{"tool_name": "f", "parameters": {"p": "string"}}],
        [{"tool_name": 5}], "x", [{"tool_name": "f", "parameters": {"p": {"param_type": "string", "required": "yes"}}}],
    ])  # fmt: skip
    params = rng.choice([
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": tools},
        {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
        {"model": "m", "messages": "hi"},
        {"model": "m", "messages": [{"role": "robot", "content": "hi"}]},
        {"model": 5, "messages": []},
        {"messages": [{"role": "user", "content": "hi"}]},
    ])  # fmt: skip
    method = rng.choice(["inference/chat_completion", "tools/call"])
    if method == "tools/call":
        params = {"name": "inference_chat_completion", "arguments": params}
    return _dump({"jsonrpc": "2.0", "id": i, "method": method, "params": params}), ("id", i)


KINDS: list[Callable[[random.Random, int], Line]] = [
    invalid_json, not_an_object, bad_id, huge_id, wrong_types, unknown_method, notification_with_id, notification, valid,
    deep, huge_strings, odd_unicode, bad_inference,
]


def lines(n: int, seed: int = 7) -> list[Line]:
    rng = random.Random(seed)
    return [rng.choice(KINDS)(rng, i) for i in range(n)]


def well_formed(message: dict[str, Any]) -> bool:
    if message.get("jsonrpc") != "2.0" or "id" not in message or ("result" in message) == ("error" in message):
        return False
    if "error" in message:
        error = message["error"]
        return isinstance(error.get("code"), int) and error["code"] in CODES and isinstance(error.get("message"), str)
    return True


def key(request_id: Any) -> str:
    return json.dumps(request_id)  # ids of any type (and size) as one comparable key


def test_a_thousand_random_lines(tmp_path: Path) -> None:
    config = tmp_path / "empty.toml"
    config.write_text('name = "empty"\ndistribution_id = "local"\n')
    sent = lines(1000)
    expected = Counter(key(e[1]) if e and e != NULL else "null" for _, e in sent if e is not NOTHING)
    assert len(expected) > 400 and expected["null"] > 50 and sum(e is NOTHING for _, e in sent) > 50

    env = {**os.environ, "LLAMA_STACK_CONFIG_DIR": str(tmp_path / "home")}
    with (tmp_path / "stderr.log").open("w") as stderr, subprocess.Popen(
        [sys.executable, "-m", "llama_rpc", str(config)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env
    ) as proc:
        drive(proc, sent, expected, tmp_path / "stderr.log")


def drive(proc: subprocess.Popen[bytes], sent: list[Line], expected: Counter[str], stderr: Path) -> None:
    assert proc.stdin is not None and proc.stdout is not None

    def write() -> None:
        assert proc.stdin is not None
        for line, _ in sent:
            proc.stdin.write(line + b"\n")
        proc.stdin.write(b'{"jsonrpc":"2.0","id":"end","method":"ping"}\n')
        proc.stdin.flush()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    got: Counter[str] = Counter()
    malformed = []
    try:
        while got != expected + Counter({key("end"): 1}):
            raw = proc.stdout.readline()
            assert raw, f"the server exited: {stderr.read_text()[-2000:]}"
            message = json.loads(raw)
            if not well_formed(message):
                malformed.append(message)
            got[key(message["id"]) if message.get("id") is not None else "null"] += 1
            assert got <= expected + Counter({key("end"): 1}), f"unexpected answer: {raw[:300]!r}"
        assert malformed == []
        assert proc.poll() is None  # still up: one more round trip, and nothing else was pending
        proc.stdin.write(b'{"jsonrpc":"2.0","id":"after","method":"models/list"}\n')
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline()) == {"jsonrpc": "2.0", "id": "after", "result": []}
        proc.stdin.close()  # EOF: it exits promptly, having written nothing more
        assert proc.wait(10) == 0
        assert proc.stdout.read() == b""
    finally:
        writer.join(5)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- one line at a time into the tiny model's stack, each answered within a second -----------

ANSWER_WITHIN_S = 1.0
TINY_MODEL = "Llama3.2-1B-Instruct"
HI = [{"role": "user", "content": "hi"}]
CHAT = {"model": TINY_MODEL, "messages": HI, "sampling_params": {"max_tokens": 1}}


def test_a_thousand_lines_one_at_a_time_into_the_tiny_model(tiny_config: Path, tmp_path: Path) -> None:
    env = {**os.environ, "LLAMA_STACK_CONFIG_DIR": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    with (tmp_path / "stderr.log").open("w") as stderr, subprocess.Popen(
        [sys.executable, "-m", "llama_rpc", str(tiny_config)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        answers: queue.Queue[bytes] = queue.Queue()
        reader = threading.Thread(target=lambda: [answers.put(raw) for raw in proc.stdout], daemon=True)  # type: ignore[union-attr]
        reader.start()

        def ask(line: bytes, timeout: float = ANSWER_WITHIN_S) -> dict[str, Any]:
            assert proc.stdin is not None
            proc.stdin.write(line + b"\n")
            proc.stdin.flush()
            try:
                raw = answers.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no answer within {timeout} s to {line[:200]!r}") from None
            assert b"Traceback" not in raw and b'File "' not in raw, raw[:300]
            message = json.loads(raw)
            assert well_formed(message), raw[:300]
            return message

        try:
            chat = _dump({"jsonrpc": "2.0", "id": "warm", "method": "inference/chat_completion", "params": CHAT})
            assert "result" in ask(chat, timeout=120)  # the engine is up (its first load takes seconds)
            for line, expect in lines(1000, seed=11):
                if expect is NOTHING:
                    proc.stdin.write(line + b"\n")
                    continue
                message = ask(line)
                assert message["id"] == (None if expect == NULL else expect[1]), (line[:200], message)
            after = ask(chat.replace(b'"warm"', b'"after"'))
            assert after["id"] == "after" and after["result"]["completion_message"]["role"] == "assistant"
            proc.stdin.close()
            assert proc.wait(30) == 0
            reader.join(5)
            assert answers.empty()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "Traceback" not in (tmp_path / "stderr.log").read_text()


# --- bad bodies over HTTP ---------------------------------------------------------------------

Body = tuple[str, str, bytes, set[int]]  # (verb, path, body, the statuses it may get)

NATIVE: dict[str, dict[str, Any]] = {
    "/inference/chat_completion": CHAT,
    "/inference/completion": {"model": TINY_MODEL, "content": "hi", "sampling_params": {"max_tokens": 1}},
    "/inference/batch_chat_completion": {"model": TINY_MODEL, "messages_batch": [HI], "sampling_params": {"max_tokens": 1}},
    "/inference/embeddings": {"model": TINY_MODEL, "contents": ["hi"]},
}
OPENAI: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": TINY_MODEL, "messages": HI, "max_tokens": 1},
    "/v1/openai/v1/chat/completions": {"model": TINY_MODEL, "messages": HI, "max_tokens": 1},
    "/v1/completions": {"model": TINY_MODEL, "prompt": "hi", "max_tokens": 1},
    "/v1/embeddings": {"model": TINY_MODEL, "input": "hi"},
}
ROUTES = {**NATIVE, **OPENAI}
REFUSED = {400, 404, 405, 413}

# Values of the wrong type (or shape, or out of range) for a field of every body that has it.
WRONG: dict[str, list[Any]] = {
    "model": [5, [], {}, True, None, 1.5],
    "messages": ["hi", 5, {}, None, [], [5], ["hi"], [{"role": "user"}], [{"role": "user", "content": 5}],
                 [{"role": "robot", "content": "hi"}], [{"content": "hi"}]],
    "messages_batch": ["hi", [HI[0]], [[5]], None, [], [[]]],
    "content": [5, None, {}, [5]],
    "contents": ["hi", 5, [5], None],
    "prompt": [5, None, {}, [5], ["a", "b"]],
    "input": [5, None, {}, [5]],
    "sampling_params": ["x", 5, [], {"strategy": "nope"}, {"max_tokens": "x"}, {"max_tokens": 1.5}, {"temperature": "hot"},
                        {"max_tokens": 1e400}, {"nope": 1}, {"seed": 2**70}, {"temperature": 1e308}, {"max_tokens": 2**40},
                        {"stop": ["x"] * 5}, {"stop": ["x" * 300_000]}],
    "max_tokens": ["x", 1.5, 1e400, -1e400, -1, [], 0, 2**40],
    "temperature": ["hot", 1e400, -1, 3],
    "top_p": ["x", 0, 2],
    "n": ["x", 2, 10**40, 1e400],
    "stop": [5, [5], [""], "", ["x"] * 5, "x" * 300_000],
    "seed": [2**70, -(2**70), "x"],
    "stream": ["yes", 5, [], {}, 1e400],
    "tool_choice": ["sometimes", 5, {"function": {}}, {"type": "function", "function": {"name": "nope"}}],
    "response_format": ["x", {"type": "json_object"}],
    "logit_bias": ["x", {"1": "x"}, {"1": 5}],
    "stream_options": ["x", {"include_usage": True}],
    "dimensions": [8, "x"],
    "encoding_format": ["hex", 5],
}
OPENAI_PARAMETERS: list[Any] = [
    {"properties": ["a"]}, {"properties": "abc"}, {"properties": {"c": "string"}}, {"required": 5}, {"required": [[1]]},
    {"type": "string"}, {"properties": {"c": {"type": 5}}}, {"properties": {"c": True}}, [], "x",
    {"properties": {"c": {"description": 5}}},
]  # fmt: skip
OPENAI_TOOLS: list[Any] = [{}, [5], [{"function": []}], [{"type": "x", "function": {"name": "f"}}], [{"function": {"name": 5}}], "x"]
NATIVE_TOOLS: list[Any] = [
    {}, [5], "x", [{"tool_name": 5}], [{"tool_name": "f", "parameters": ["a"]}], [{"tool_name": "f", "parameters": {"p": "string"}}],
    [{"tool_name": "f", "parameters": {"p": {"param_type": 5}}}], [{"tool_name": "f", "parameters": {"p": {}}}],
    [{"tool_name": "f", "parameters": {"p": {"param_type": "string", "required": "yes"}}}],
]  # fmt: skip


def _route(rng: random.Random, routes: dict[str, dict[str, Any]] = ROUTES) -> tuple[str, dict[str, Any]]:
    path = rng.choice(list(routes))
    return path, dict(routes[path])


def _post(path: str, body: Any, statuses: set[int]) -> Body:
    return "POST", path, body if isinstance(body, bytes) else _dump(body), statuses


def deep_body(rng: random.Random) -> Body:
    path, body = _route(rng)
    value = nested(rng)
    where = rng.randrange(4)
    if where == 0:
        return _post(path, value.encode(), {400})
    if where == 1:  # in place of a field's value, or as an unknown field (ignored by /v1, but read first)
        field = rng.choice([*body, "metadata"])
        return _post(path, _dump({**body, field: "VALUE"}).replace(b'"VALUE"', value.encode()), {400})
    if where == 2 and path in NATIVE:
        tools = [{"tool_name": "f", "parameters": {"p": {"param_type": "string", "default": "VALUE"}}}]
        return _post("/inference/chat_completion", _dump({**CHAT, "tools": tools}).replace(b'"VALUE"', value.encode()), {400})
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": value}}  # deep inside a string
    messages = [*HI, {"role": "assistant", "tool_calls": [call]}]
    return _post("/v1/chat/completions", {**OPENAI["/v1/chat/completions"], "messages": messages}, {400})


# The fields of each route that `wrong_type` corrupts (an unknown field is another kind).
FIELDS: dict[str, list[str]] = {
    "/inference/chat_completion": ["model", "messages", "sampling_params", "stream"],
    "/inference/completion": ["model", "content", "sampling_params", "stream"],
    "/inference/batch_chat_completion": ["model", "messages_batch", "sampling_params"],
    "/inference/embeddings": ["model", "contents"],
    "/v1/chat/completions": ["model", "messages", "max_tokens", "temperature", "top_p", "n", "stop", "seed", "stream", "tool_choice",
                             "response_format", "logit_bias", "stream_options"],
    "/v1/completions": ["model", "prompt", "max_tokens", "temperature", "top_p", "n", "stop", "stream", "logit_bias"],
    "/v1/embeddings": ["model", "input", "dimensions", "encoding_format"],
}  # fmt: skip
FIELDS["/v1/openai/v1/chat/completions"] = FIELDS["/v1/chat/completions"]


def wrong_type(rng: random.Random) -> Body:
    path, body = _route(rng)
    field = rng.choice(FIELDS[path])
    return _post(path, {**body, field: rng.choice(WRONG[field])}, {400})


def huge_string(rng: random.Random) -> Body:
    big = "h" * rng.choice([100_000, 100_000, 1_000_000, 3_000_000])
    path, body = _route(rng)
    where = rng.randrange(4)
    if where == 0:
        return _post(path, {**body, "model": big}, {404})
    if where == 1 and path in NATIVE:
        return _post(path, {**body, big: 1}, {400})
    if where == 2 and path in NATIVE:
        return _post(path, {**body, "model": "m" + big[:1000], "sampling_params": {"strategy": big}}, {400})
    return _post(path, {**body, "model": "no-such-model", "user": big, "content": big}, {400, 404})


def huge_number(rng: random.Random) -> Body:
    number = rng.choice(["1e400", "-1e400", "1" + "0" * 40, "9" * 400, "1e-400"])
    path, body = _route(rng)
    field = rng.choice(["model", "stream", "messages", "sampling_params", "n", "max_tokens", "temperature"])
    if field not in body and field not in ("stream", "model"):
        field = "model"
    if field in ("max_tokens", "temperature", "n") or (field == "stream" and path in OPENAI):
        number = rng.choice(["1e400", "-1e400"])  # a float out of range: an in-range number is a sampling value
    return _post(path, _dump({**body, field: "VALUE"}).replace(b'"VALUE"', number.encode()), {400})


def odd_unicode_body(rng: random.Random) -> Body:
    path, body = _route(rng)
    raw = _dump({**body, "model": "VALUE"})
    unreadable = [b"\\ud800", b"\\udfff\\ud800", b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\\u12", b"\x00"]
    readable = ["\u0000", "\u202e\u200b\ufeff", "\U0001f600" * 50, "e\u0301" * 500, "\ud7ff\ue000\uffff", "\t\n\r"]
    choice = rng.randrange(3)
    if choice == 0:
        return _post(path, raw.replace(b"VALUE", rng.choice(unreadable)), {400})
    if choice == 1:
        return _post(path, b"\xef\xbb\xbf" + _dump(body), {400})  # a byte-order mark first
    return _post(path, {**body, "model": rng.choice(readable)}, {404})


def truncated(rng: random.Random) -> Body:
    path, body = _route(rng)
    raw = _dump(body)
    return _post(path, raw[: rng.randrange(1, len(raw) - 1)], {400})


def unknown_field(rng: random.Random) -> Body:
    path, body = _route(rng)
    name = rng.choice(["extra", "x" * 1000, "Model", "model ", "messages\u0000", "request"])
    if path in NATIVE:
        return _post(path, {**body, name: rng.choice([1, None, [], {}])}, {400})
    return _post(path, {**body, name: 1, "model": "no-such-model"}, {404})  # /v1 ignores unknown fields by design


def bad_tools(rng: random.Random) -> Body:
    if rng.random() < 0.5:
        tools = rng.choice(OPENAI_TOOLS)
        if rng.random() < 0.7:
            tools = [{"type": "function", "function": {"name": "f", "parameters": rng.choice(OPENAI_PARAMETERS)}}]
        return _post(rng.choice(["/v1/chat/completions", "/v1/openai/v1/chat/completions"]), {**OPENAI["/v1/chat/completions"], "tools": tools}, {400})
    path = rng.choice(["/inference/chat_completion", "/inference/batch_chat_completion"])
    return _post(path, {**NATIVE[path], "tools": rng.choice(NATIVE_TOOLS)}, {400})


def not_an_object_body(rng: random.Random) -> Body:
    path, _ = _route(rng)
    body = rng.choice([b"", b"   ", b"[]", b"[{}]", b"5", b"-1", b"null", b"true", b'"x"', b"{}", b"{,}", b"\x00", b"{" * 3])
    return _post(path, body, {400})


def wrong_verb_or_id(rng: random.Random) -> Body:
    if rng.random() < 0.5:
        path, body = _route(rng)
        return rng.choice(["PUT", "DELETE", "PATCH", "GET"]), path, _dump(body), {405}
    odd = rng.choice(["x" * 5000, "%FF", "%ED%A0%80", "..%2F..%2Fetc", "\u202e", "a/b/c", "%00"])
    path = rng.choice(["/v1/models/", "/models/get?core_model_id="]) + odd
    return "GET", path, b"", {404}


BODY_KINDS: list[Callable[[random.Random], Body]] = [
    deep_body, wrong_type, huge_string, huge_number, odd_unicode_body, truncated, unknown_field, bad_tools,
    not_an_object_body, wrong_verb_or_id,
]


def bodies(n: int, seed: int = 5) -> list[Body]:
    rng = random.Random(seed)
    return [rng.choice(BODY_KINDS)(rng) for _ in range(n)]


def test_six_hundred_bad_bodies_over_http(tiny_url: str) -> None:
    sent = bodies(600)
    assert len({kind for kind in BODY_KINDS}) == 10 and sum(path.startswith("/v1/") for _, path, _, _ in sent) > 200
    wrong = []
    with httpx.Client(base_url=tiny_url, timeout=10, headers={"Content-Type": "application/json"}) as client:
        for verb, path, body, statuses in sent:
            start = time.monotonic()
            reply = client.request(verb, path, content=body)
            took = time.monotonic() - start
            error = reply.json().get("error") if reply.headers.get("content-type") == "application/json" else None
            if (
                reply.status_code not in statuses
                or not isinstance(error, dict)
                or not isinstance(error.get("message"), str)
                or "Traceback" in reply.text
                or len(reply.content) > 2000
                or took > ANSWER_WITHIN_S
            ):
                wrong.append((verb, path, body[:120], len(body), reply.status_code, reply.text[:300], round(took, 2)))
        assert wrong == [], "\n".join(map(str, wrong))
        assert client.post("/inference/chat_completion", json=CHAT).status_code == 200
        assert client.post("/v1/chat/completions", json=OPENAI["/v1/chat/completions"]).status_code == 200
        assert client.get("/v1/models").json()["data"][0]["id"] == TINY_MODEL
