"""Hostile input, seeded and bounded, into the real servers: no 5xx, no traceback, every bad
request answered within a second, and a normal request answered afterwards.

stdio: 1,000 malformed or random lines into `python -m llama_rpc`, one well-formed answer per
request: pipelined into a stack with no model (models/list works without one; inference answers
-32601), and one at a time into the tiny model's stack. Lines are seeded-random members of each kind
below, each knowing what it must get back: an answer with its own id, an answer with id null
(unreadable id), or nothing (notifications, client responses).

The HTTP half is test_fuzz_http.py.
"""

from __future__ import annotations

import json
import os
import queue
import random
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
