"""Structured outputs over HTTP, on real stacks: response_format on /v1 (the openai SDK) and on the
native chat_completion (streamed), the demo model's every reply valid against its schema; tool_choice
required and named forcing a call out of the tiny random checkpoint, which otherwise writes text; a
schema the engine cannot use is a 400 before any generation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jsonschema
import pytest

openai = pytest.importorskip("openai")

DEMO = "SmolLM2-135M-Instruct"
TINY = "Llama3.1-8B-Instruct"  # random weights; the 3.1 family calls custom tools in json

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "city": {"type": "string", "maxLength": 40},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}
VERDICT = {
    "type": "object",
    "properties": {
        "answer": {"enum": ["yes", "no", "unsure"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["answer", "confidence"],
    "additionalProperties": False,
}
LIST = {
    "type": "object",
    "properties": {"items": {"type": "array", "items": {"type": "string", "maxLength": 30}, "minItems": 1, "maxItems": 5}},
    "required": ["items"],
    "additionalProperties": False,
}
RECIPE = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 50},
        "vegetarian": {"type": "boolean"},
        "steps": {"type": "integer", "minimum": 1, "maximum": 20},
        "source": {"anyOf": [{"type": "string", "maxLength": 40}, {"type": "null"}]},
    },
    "required": ["title", "vegetarian", "steps", "source"],
    "additionalProperties": False,
}
NESTED = {
    "type": "object",
    "properties": {
        "country": {"type": "string", "maxLength": 30},
        "capital": {
            "type": "object",
            "properties": {"name": {"type": "string", "maxLength": 30}, "population_millions": {"type": "integer", "minimum": 0, "maximum": 100}},
            "required": ["name", "population_millions"],
            "additionalProperties": False,
        },
    },
    "required": ["country", "capital"],
    "additionalProperties": False,
}
CASES = [
    (PERSON, "Describe a fictional person as JSON with name, age and city."),
    (PERSON, "Who wrote Hamlet? Answer as JSON."),
    (PERSON, "Make up a detective character."),
    (PERSON, "Tell me about a famous scientist."),
    (VERDICT, "Is the sky green?"),
    (VERDICT, "Is Paris the capital of France?"),
    (VERDICT, "Will it rain tomorrow?"),
    (VERDICT, "Is 17 a prime number?"),
    (LIST, "List three fruits."),
    (LIST, "Name some programming languages."),
    (LIST, "What are the colours of the rainbow?"),
    (LIST, "Give me ideas for a birthday party."),
    (RECIPE, "Give me a recipe for pancakes."),
    (RECIPE, "How do I make a tomato soup?"),
    (RECIPE, "A quick dinner with chicken."),
    (RECIPE, "Write a recipe for chocolate cake."),
    (NESTED, "Tell me about Japan."),
    (NESTED, "What is the capital of Italy?"),
    (NESTED, "Describe Brazil and its capital."),
    (NESTED, "Facts about Canada, please."),
]


def write_config(path: Path, model: str, ckpt: Path, **inference: object) -> Path:
    import tomli_w

    provider = {"provider_id": "meta-reference", "model": model, "checkpoint_dir": str(ckpt), "device": "cpu",
                "dtype": "fp32", "threads": 1, **inference}  # fmt: skip
    path.write_text(tomli_w.dumps({"name": path.stem, "distribution_id": "local", "providers": {"inference": provider}}))
    return path


def serve(config: Path, model: str) -> Iterator[str]:
    from rpc.server import running_server

    from llama_core.stack import Stack
    from llama_rpc.http import create_app

    stack = Stack.from_config(config)
    with running_server(lambda: create_app(stack), timeout=180, stack=stack) as url:
        warm = {"model": model, "messages": [{"role": "user", "content": "hi"}], "sampling_params": {"max_tokens": 1}}
        assert httpx.post(url + "/inference/chat_completion", json=warm, timeout=600).status_code == 200
        yield url


@pytest.fixture(scope="module")
def demo_url(demo_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("structured-demo")
    yield from serve(write_config(root / "demo.toml", DEMO, demo_ckpt, max_seq_len=1024, max_batch_size=8), DEMO)


@pytest.fixture(scope="module")
def tiny_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from engine.tiny_checkpoint import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("structured-tiny")
    ckpt = write_tiny_checkpoint(root / "tiny")
    yield from serve(write_config(root / "tiny.toml", TINY, ckpt, max_seq_len=512, max_batch_size=4), TINY)


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="none", timeout=600, max_retries=0)


def test_json_schema_replies_validate_over_twenty_prompts(demo_url: str) -> None:
    def one(case: tuple[dict, str]) -> str:
        schema, prompt = case
        reply = client(demo_url).chat.completions.create(
            model=DEMO, messages=[{"role": "user", "content": prompt}], max_tokens=200,
            response_format={"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": True}},
        )  # fmt: skip
        assert reply.choices[0].finish_reason == "stop"
        return reply.choices[0].message.content

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(one, CASES))
    for (schema, _), text in zip(CASES, replies):
        jsonschema.validate(json.loads(text), schema)


def test_streamed_json_schema_replies_validate_over_twenty_prompts(demo_url: str) -> None:
    def one(case: tuple[int, tuple[dict, str]]) -> str:
        i, (schema, prompt) = case
        body = {
            "model": DEMO, "messages": [{"role": "user", "content": prompt}], "stream": True,
            "sampling_params": {"strategy": "top_p", "temperature": 0.8, "top_p": 0.95, "seed": i, "max_tokens": 200},
            "response_format": {"type": "json_schema", "json_schema": schema},
        }  # fmt: skip
        response = httpx.post(demo_url + "/inference/chat_completion", json=body, timeout=600)
        assert response.status_code == 200, response.text
        events = [json.loads(line[6:])["event"] for line in response.text.splitlines() if line.startswith("data: ")]
        assert events[-1]["stop_reason"] == "end_of_turn"
        return "".join(e["delta"] for e in events if e["event_type"] == "progress" and isinstance(e["delta"], str))

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(one, enumerate(CASES)))
    for (schema, _), text in zip(CASES, replies):
        jsonschema.validate(json.loads(text), schema)


def test_json_object_is_an_object(demo_url: str) -> None:
    reply = client(demo_url).chat.completions.create(
        model=DEMO, messages=[{"role": "user", "content": "Describe a cat."}], max_tokens=300,
        response_format={"type": "json_object"},
    )  # fmt: skip
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"days": {"type": "integer"}, "metric": {"type": "boolean"}}, "required": ["days"]}}}  # fmt: skip
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"utc": {"type": "boolean"}}, "required": ["utc"]}}}  # fmt: skip
ASK = [{"role": "user", "content": "weather in Paris?"}]


def test_without_tool_choice_the_tiny_model_answers_text(tiny_url: str) -> None:
    reply = client(tiny_url).chat.completions.create(model=TINY, messages=ASK, tools=[WEATHER, TIME], max_tokens=16)
    assert reply.choices[0].message.tool_calls is None


def test_tool_choice_required_forces_a_call(tiny_url: str) -> None:
    reply = client(tiny_url).chat.completions.create(
        model=TINY, messages=ASK, tools=[WEATHER, TIME], tool_choice="required", max_tokens=100
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    arguments = json.loads(call.function.arguments)
    schema = (WEATHER if call.function.name == "get_weather" else TIME)["function"]["parameters"]
    jsonschema.validate(arguments, schema | {"additionalProperties": False})


def test_a_named_tool_choice_calls_that_tool(tiny_url: str) -> None:
    for tool in (WEATHER, TIME):
        name = tool["function"]["name"]
        reply = client(tiny_url).chat.completions.create(
            model=TINY, messages=ASK, tools=[WEATHER, TIME], max_tokens=100,
            tool_choice={"type": "function", "function": {"name": name}},
        )  # fmt: skip
        (call,) = reply.choices[0].message.tool_calls
        assert call.function.name == name
        jsonschema.validate(json.loads(call.function.arguments), tool["function"]["parameters"])


FORECAST = {"type": "function", "function": {"name": "forecast", "parameters": {
    "type": "object", "properties": {"unit": {"type": "string", "enum": ["C", "F"]}, "days": {"type": "integer"},
                                     "city": {"type": "string"}, "hourly": {"type": "boolean"}},
    "required": ["unit", "days", "city"]}}}  # fmt: skip


@pytest.mark.parametrize("choice", ["required", "named"])
def test_a_forced_call_validates_against_the_tools_parameters(tiny_url: str, choice: str) -> None:
    """At temperature 1 the random model writes anything the grammar allows: the enum, the integer's
    and the string's bounds and the required names must all be in the grammar, or some seed breaks them."""
    tool_choice = "required" if choice == "required" else {"type": "function", "function": {"name": "forecast"}}
    parameters = FORECAST["function"]["parameters"]
    for seed in range(4):
        reply = client(tiny_url).chat.completions.create(
            model=TINY, messages=ASK, tools=[FORECAST], tool_choice=tool_choice, max_tokens=200, temperature=1, seed=seed
        )
        assert reply.choices[0].finish_reason == "tool_calls", (seed, reply.choices[0])
        (call,) = reply.choices[0].message.tool_calls
        arguments = json.loads(call.function.arguments)
        jsonschema.validate(arguments, parameters | {"additionalProperties": False})
        assert len(arguments["city"]) <= 256 and abs(arguments["days"]) <= 2**53 - 1


def test_native_tool_choice_required_in_function_tag(tiny_url: str) -> None:
    body = {
        "model": TINY, "messages": ASK, "tool_choice": "required", "tool_prompt_format": "function_tag",
        "tools": [{"tool_name": "get_time", "parameters": {"utc": {"param_type": "bool"}}}],
        "sampling_params": {"max_tokens": 100},
    }  # fmt: skip
    response = httpx.post(tiny_url + "/inference/chat_completion", json=body, timeout=600)
    assert response.status_code == 200, response.text
    (call,) = response.json()["completion_message"]["tool_calls"]
    assert call["tool_name"] == "get_time" and isinstance(call["arguments"]["utc"], bool)


def test_tool_choice_none_offers_no_tools(tiny_url: str) -> None:
    body = {"model": TINY, "messages": ASK, "tool_choice": "none", "sampling_params": {"max_tokens": 8},
            "tools": [{"tool_name": "get_time", "parameters": {"utc": {"param_type": "bool"}}}]}  # fmt: skip
    response = httpx.post(tiny_url + "/inference/chat_completion", json=body, timeout=600)
    assert response.status_code == 200, response.text
    assert response.json()["completion_message"]["tool_calls"] == []


def test_a_bad_schema_is_a_400_before_generation(tiny_url: str) -> None:
    bad = {"type": "object", "properties": {"a": {"type": "strin"}}}
    body = {"model": TINY, "messages": ASK, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": bad}}}
    response = httpx.post(tiny_url + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400
    assert response.json() == {"error": {
        "message": "The schema or grammar cannot be used: Invalid type: strin",
        "type": "invalid_request", "param": "response_format.json_schema", "code": 400}}  # fmt: skip
    native = {"model": TINY, "messages": ASK, "stream": True, "response_format": {"type": "json_schema", "json_schema": bad}}
    response = httpx.post(tiny_url + "/inference/chat_completion", json=native, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"] == {"message": "The schema or grammar cannot be used: Invalid type: strin",
                                        "type": "invalid_request", "status": 400, "field": "response_format.json_schema"}


# --- /v1 errors name /v1's fields (the core's completion prompt is `content`) ---------------------


def test_a_too_long_completion_prompt_names_prompt(tiny_url: str) -> None:
    response = httpx.post(tiny_url + "/v1/completions", json={"model": TINY, "prompt": "hello " * 600}, timeout=60)
    assert response.status_code == 400
    assert response.json() == {"error": {
        "message": "The prompt has 602 tokens, but this model's context (max_seq_len) is 512. Shorten the prompt.",
        "type": "invalid_request", "param": "prompt", "code": 400}}  # fmt: skip


def test_an_empty_prompt_names_prompt(demo_url: str) -> None:
    """SmolLM2 adds no BOS, so "" is no token at all: nothing to continue."""
    response = httpx.post(demo_url + "/v1/completions", json={"model": DEMO, "prompt": ""}, timeout=60)
    assert response.status_code == 400
    assert response.json() == {"error": {
        "message": "The prompt is empty: give at least one token of text to continue.",
        "type": "invalid_request", "param": "prompt", "code": 400}}  # fmt: skip
    native = httpx.post(demo_url + "/inference/completion", json={"model": DEMO, "content": ""}, timeout=60)
    assert (native.status_code, native.json()["error"]["field"]) == (400, "content")
