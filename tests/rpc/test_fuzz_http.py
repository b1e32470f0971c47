"""Hostile HTTP input, seeded and bounded: 600 bad bodies into the native and OpenAI-compatible routes
of the tiny model's stack served by Hypercorn (tests/rpc/conftest.py), each kind knowing the statuses
it may get: no 5xx, no traceback, each answered within a second, and normal requests afterwards.
(The stdio half is test_fuzz.py, whose line makers this file shares.)
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from rpc.test_fuzz import ANSWER_WITHIN_S, CHAT, HI, TINY_MODEL, _dump, nested

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
    "n": ["x", 0, 129, 10**40, 1e400],
    "stop": [5, [5], [""], "", ["x"] * 5, "x" * 300_000],
    "seed": [2**70, -(2**70), "x"],
    "stream": ["yes", 5, [], {}, 1e400],
    "tool_choice": ["sometimes", 5, {"function": {}}, {"type": "function", "function": {"name": "nope"}}],
    "response_format": ["x", {"type": "json_schema"}, {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strin"}}},
                        {"type": "xml"}],
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
