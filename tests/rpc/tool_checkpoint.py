"""A tiny Llama 3.2 that writes issue #16's tool-call texts exactly: the tiny Llama 3 (real tokenizer)
trained for seconds (tests/engine/tiny_training.py) to answer each lesson's question greedily.

Each lesson is an OpenAI chat request (one user question, the request's tools) whose prompt is built
as the server builds it (llama_rpc.openai.chat_request, prepare_messages with the model's default
tool format, python_list for Llama 3.2, then the Llama 3 chat format), and the exact output:

    QUESTIONS[key]           tools          the model writes (then its end token)
    json                     get_weather    {"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>
    hyphen                   get-weather    [get-weather(city="Paris")]<|eot_id|>
    truncated                get_weather    <|python_tag|>{"name": "get_weather", "parameters": {"ci  ty": "Rome"}}<|eom_id|>
    malformed                get_weather    <|python_tag|>{"name": "get_weather", "parameters": {"ci<|eom_id|>
    string_args              get_weather    {"name": "get_weather", "parameters": "{\\"city\\": \\"Paris\\"}"}<|eot_id|>
    unoffered                get_weather    <|python_tag|>brave_search.call(query="Paris weather")<|eom_id|>
    list_prose               get_weather    [1, 2, 3] are the first numbers.<|eot_id|>
    prose                    get_weather    Hello! Ask me about the weather.<|eot_id|>

`truncated` is taught as the issue's text plus a continuation, so that max_tokens = TRUNCATED_TOKENS
cuts it exactly after `{"ci`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODEL = "Llama3.2-1B-Instruct"  # family llama3_2: custom tools as python_list by default
MAX_SEQ_LEN = 512  # the longest lesson prompt is about 200 tokens

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
           "properties": {"city": {"type": "string"}}}}}  # fmt: skip  -- issue #16's tool, as OpenAI clients send it
HYPHEN_WEATHER = {"type": "function", "function": {**WEATHER["function"], "name": "get-weather"}}

JSON_CALL = '{"name": "get_weather", "parameters": {"city": "Paris"}}'
TRUNCATED = '{"name": "get_weather", "parameters": {"ci'
STRING_ARGS = '{"name": "get_weather", "parameters": "{\\"city\\": \\"Paris\\"}"}'
LIST_PROSE = "[1, 2, 3] are the first numbers."
PROSE = "Hello! Ask me about the weather."

# key: (question, tools, whether the output opens with <|python_tag|>, text, end token)
LESSONS: dict[str, tuple[str, list[dict[str, Any]], bool, str, str]] = {
    "json": ("weather in Paris?", [WEATHER], False, JSON_CALL, "<|eot_id|>"),
    "hyphen": ("weather in Paris, hyphenated?", [HYPHEN_WEATHER], False, '[get-weather(city="Paris")]', "<|eot_id|>"),
    "truncated": ("weather in Rome?", [WEATHER], True, TRUNCATED + 'ty": "Rome"}}', "<|eom_id|>"),
    "malformed": ("weather in Oslo?", [WEATHER], True, TRUNCATED, "<|eom_id|>"),
    "string_args": ("weather in Paris, as a string?", [WEATHER], False, STRING_ARGS, "<|eot_id|>"),
    "unoffered": ("search the web for Paris weather", [WEATHER], True, 'brave_search.call(query="Paris weather")', "<|eom_id|>"),
    "list_prose": ("which numbers come first?", [WEATHER], False, LIST_PROSE, "<|eot_id|>"),
    "prose": ("hi", [WEATHER], False, PROSE, "<|eot_id|>"),
}
QUESTIONS = {key: lesson[0] for key, lesson in LESSONS.items()}
TOOLS = {key: lesson[1] for key, lesson in LESSONS.items()}


def openai_body(key: str, **fields: Any) -> dict[str, Any]:
    """The OpenAI chat request of lesson `key` (more `fields` beside: stream, max_tokens, stop...)."""
    return {"model": MODEL, "messages": [{"role": "user", "content": QUESTIONS[key]}], "tools": TOOLS[key], **fields}


def truncated_tokens(tokenizer: Any) -> int:
    """max_tokens that cuts the `truncated` lesson right after `{"ci`: the tag and TRUNCATED's tokens."""
    return 1 + len(tokenizer.encode(TRUNCATED))


def lessons(tokenizer: Any) -> list[tuple[list[int], list[int]]]:
    """(prompt ids as meta-reference encodes the OpenAI request, answer ids) of each lesson."""
    from llama_core.prompt.chat_format import ChatFormat
    from llama_core.prompt.system_prompts import default_tool_prompt_format, prepare_messages
    from llama_core.types.schema import decode_request
    from llama_rpc.openai import chat_request
    from llama_rpc.openai_types import OpenAIChatCompletionRequest

    fmt = ChatFormat(tokenizer)
    tool_format = default_tool_prompt_format("llama3_2")
    out = []
    for key, (_, _, tagged, text, end) in LESSONS.items():
        request = chat_request(decode_request(OpenAIChatCompletionRequest, json.dumps(openai_body(key)).encode()))
        messages = prepare_messages(request.messages, family="llama3_2", tools=request.tools, tool_prompt_format=tool_format)
        prompt = fmt.encode_dialog_prompt(messages, tool_format)
        answer = [tokenizer.python_tag_id] if tagged else []
        if key == "truncated":  # two pieces, so the cut falls exactly after TRUNCATED's tokens
            answer += tokenizer.encode(TRUNCATED) + tokenizer.encode(text.removeprefix(TRUNCATED))
        else:
            answer += tokenizer.encode(text)
        out.append((prompt, answer + [tokenizer.special_tokens[end]]))
    return out


def train_tool_model(dest: Path, seed: int = 0) -> Path:
    """Write the trained checkpoint (params.json, consolidated.00.pth, tokenizer.model) to `dest`."""
    from engine.tiny_checkpoint import llama3_tokenizer_model
    from engine.tiny_training import train_tiny

    from llama_core.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_file(llama3_tokenizer_model())
    return train_tiny(dest, lessons(tokenizer), what="the tiny tool-call model", seed=seed, margin=6.0, max_steps=800,
                      lr=1e-2)  # its ~240-token prompts make a step slow: 64 steps at 1e-2 where 3e-3 took 143
