"""Constrained decoding in the batch: a sequence with a grammar draws only what it allows, beside
unconstrained sequences that decode as if alone; on the tiny checkpoint, whose random weights would
never write JSON or a tool call by themselves."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from llama_core.engine.checkpoint import load_model
from llama_core.engine.generation import Batch
from llama_core.engine.messages import GenParams
from llama_core.errors import InvalidRequestError
from llama_core.prompt.constraints import json_schema_grammar, tool_call_grammar
from llama_core.prompt.tool_calls import parse_tool_calls
from llama_core.tokenizer import Tokenizer
from llama_core.types import StopReason, ToolDefinition, ToolParamDefinition, ToolPromptFormat

from engine.test_generation import LIKE, PROMPT, TINY_GREEDY

EOT, EOM, EOS = 128009, 128008, 128001
STOPS = frozenset({EOT, EOM, EOS})
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "days": {"type": "integer", "minimum": 1, "maximum": 9},
        "sunny": {"type": "boolean"},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
    },
    "required": ["city", "days", "sunny", "tags"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def tiny(tiny_ckpt: Path):
    return load_model(tiny_ckpt, max_seq_len=128, max_batch_size=4, dtype="fp32", device="cpu")[0]


@pytest.fixture(scope="module")
def tokenizer(tiny_ckpt: Path) -> Tokenizer:
    return Tokenizer.from_file(tiny_ckpt)


def run(batch: Batch, jobs: dict[str, tuple[list[int], GenParams]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    finished: dict[str, StopReason] = {}
    for seq_id, (prompt, params) in jobs.items():
        first = batch.add(seq_id, prompt, params)
        out[seq_id] = [first.token]
    while len(batch):
        for r in batch.step():
            out[r.seq_id].append(r.token)
            if r.stop_reason is not None:
                finished[r.seq_id] = r.stop_reason
    return out


def test_a_json_schema_sequence_validates_beside_an_unconstrained_one(tiny, tiny_ckpt: Path, tokenizer) -> None:
    batch = Batch(tiny, tokenizer_dir=str(tiny_ckpt))
    grammar = json_schema_grammar(SCHEMA)
    jobs = {
        "free": (PROMPT, GenParams(max_tokens=20)),
        "greedy json": (LIKE, GenParams(max_tokens=100, stop_tokens=STOPS, grammar=grammar)),
        "sampled json": (PROMPT, GenParams(max_tokens=100, stop_tokens=STOPS, grammar=grammar, temperature=1.0, seed=3)),
    }
    out = run(batch, jobs)
    assert out["free"] == TINY_GREEDY  # the masks of the others change nothing in its row
    for name in ("greedy json", "sampled json"):
        *body, stop = out[name]
        assert stop in STOPS  # the grammar was complete, so the only id left was an end token
        jsonschema.validate(json.loads(tokenizer.decode(body)), SCHEMA)


@pytest.mark.parametrize(
    ("fmt", "parsed"),
    [
        (ToolPromptFormat.json, "get_weather"),
        (ToolPromptFormat.function_tag, "get_weather"),
        (ToolPromptFormat.python_list, "get_weather"),
    ],
)
def test_a_required_tool_call_parses_in_each_format(tiny, tiny_ckpt: Path, tokenizer, fmt, parsed) -> None:
    # Numbers and booleans: a random model never ends a free string (a real one does; max_tokens bounds it).
    tools = [ToolDefinition(tool_name="get_weather", parameters={
        "days": ToolParamDefinition(param_type="int"),
        "sunny": ToolParamDefinition(param_type="bool", required=False),
    })]  # fmt: skip
    grammar = tool_call_grammar(tools, fmt, tokenizer.python_tag_id)
    out = run(Batch(tiny, tokenizer_dir=str(tiny_ckpt)), {"call": (PROMPT, GenParams(max_tokens=100, stop_tokens=STOPS, grammar=grammar))})
    *body, stop = out["call"]
    assert stop in STOPS
    calls = parse_tool_calls(tokenizer.decode(body))
    assert [c.tool_name for c in calls] == [parsed]
    assert isinstance(calls[0].arguments["days"], int)
    assert set(calls[0].arguments) <= {"days", "sunny"}


def test_a_builtin_call_follows_the_python_tag(tiny, tiny_ckpt: Path, tokenizer) -> None:
    grammar = tool_call_grammar([ToolDefinition(tool_name="brave_search")], ToolPromptFormat.json, tokenizer.python_tag_id)
    out = run(Batch(tiny, tokenizer_dir=str(tiny_ckpt)), {"call": (PROMPT, GenParams(max_tokens=60, stop_tokens=STOPS, grammar=grammar))})
    first, *body, stop = out["call"]
    assert first == tokenizer.python_tag_id and stop in STOPS
    assert [c.tool_name for c in parse_tool_calls(tokenizer.decode(body), ipython=True)] == ["brave_search"]


def test_a_grammar_without_a_tokenizer_is_refused_and_takes_no_slot(tiny) -> None:
    batch = Batch(tiny)
    with pytest.raises(InvalidRequestError, match="no tokenizer"):
        batch.add("x", PROMPT, GenParams(grammar=json_schema_grammar({"type": "object"})))
    assert len(batch) == 0


@pytest.mark.parametrize("fmt", [ToolPromptFormat.json, ToolPromptFormat.function_tag, ToolPromptFormat.python_list])
def test_a_forced_call_keeps_to_the_enum_and_the_bounds_at_temperature_1(tiny, tiny_ckpt: Path, tokenizer, fmt) -> None:
    """Sampled, the random model takes any path the grammar leaves open: an enum outside its values or
    an unbounded integer would show in some seed (strings: tests/rpc/test_structured.py, which has room)."""
    tools = [ToolDefinition(tool_name="forecast", parameters={
        "unit": ToolParamDefinition(param_type="string", enum=["C", "F"]),
        "days": ToolParamDefinition(param_type="integer"),
        "sunny": ToolParamDefinition(param_type="bool | null"),
    })]  # fmt: skip
    schema = {
        "type": "object",
        "properties": {"unit": {"enum": ["C", "F"]}, "days": {"type": "integer", "maximum": 2**53 - 1, "minimum": -(2**53 - 1)},
                       "sunny": {"type": ["boolean", "null"]}},
        "required": ["unit", "days", "sunny"],
        "additionalProperties": False,
    }  # fmt: skip
    grammar = tool_call_grammar(tools, fmt, tokenizer.python_tag_id)
    jobs = {f"seed {seed}": (PROMPT, GenParams(max_tokens=120, stop_tokens=STOPS, grammar=grammar, temperature=1.0, seed=seed)) for seed in range(3)}
    out = run(Batch(tiny, tokenizer_dir=str(tiny_ckpt)), jobs)
    for body in out.values():
        calls = parse_tool_calls(tokenizer.decode(body[:-1]))
        assert body[-1] in STOPS and [c.tool_name for c in calls] == ["forecast"]
        jsonschema.validate(calls[0].arguments, schema)
