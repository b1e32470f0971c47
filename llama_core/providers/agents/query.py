"""The memory tool's query generators: what a turn's retrieval searches for.

    check_generator(config, field)                       # at agent creation: 400 for what cannot run
    query = await generate_query(stack, config, turn_messages, conversation)

    default   the turn's message texts joined by `sep`
    llm       `template` (Jinja) rendered with `messages`, the whole conversation (earlier turns, then
              this one's) as wire dicts ({"role", "content", ...}); `model` answers that one user
              message through the Inference API, and its answer, stripped, is the query
    custom    refused at creation (400 naming the field): the reference never implemented it

The template is the client's text, so it renders in Jinja's sandbox, and in a child process under
CPU, memory and wall-time limits (a template can loop or build a huge string in a few characters:
`{{ "x" * 10**10 }}`). Its output is at most MAX_PROMPT_CHARS.

Errors: a template that does not parse, or is longer than MAX_TEMPLATE_CHARS, is an
InvalidRequestError at creation; one that fails or passes a limit when rendered is an
InvalidRequestError naming `query_generator_config.template`; the model's errors are the Inference
API's (an unknown model is a 404).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import msgspec

from llama_core.errors import InvalidRequestError, UnsupportedError, shown
from llama_core.types.agents import (
    CustomMemoryQueryGeneratorConfig,
    DefaultMemoryQueryGeneratorConfig,
    LLMMemoryQueryGeneratorConfig,
    MemoryQueryGeneratorConfig,
)
from llama_core.types.common import SamplingParams, content_text
from llama_core.types.inference import ChatCompletionRequest
from llama_core.types.messages import Message, UserMessage

MAX_TEMPLATE_CHARS = 16 * 1024
MAX_PROMPT_CHARS = 64 * 1024
QUERY_MAX_TOKENS = 128  # a search query, not an essay
RENDER_CPU_S = 5
RENDER_WALL_S = 15.0
RENDER_MEMORY_BYTES = 512 * 2**20
FIELD = "query_generator_config.template"

# Runs in the child: limits first, then the template from stdin; one JSON line out.
RENDERER = """\
import json, resource, sys
cpu, memory, most = (int(a) for a in sys.argv[1:4])
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
job = json.loads(sys.stdin.read())
try:
    parts, size = [], 0
    for piece in ImmutableSandboxedEnvironment().from_string(job["template"]).generate(messages=job["messages"]):
        size += len(piece)
        if size > most:
            raise OverflowError
        parts.append(piece)
    print(json.dumps({"text": "".join(parts)}))
except OverflowError:
    print(json.dumps({"error": f"its output passes {most} characters"}))
except MemoryError:
    print(json.dumps({"error": "it needs more memory than a template may use"}))
except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}"[:300]}))
"""


def check_generator(config: MemoryQueryGeneratorConfig, field: str) -> None:
    """400 (naming `field` or below) for a generator this provider cannot run."""
    if isinstance(config, CustomMemoryQueryGeneratorConfig):
        raise UnsupportedError(
            "The memory tool's query generator 'custom' is not supported: use 'default' (the messages' text) "
            "or 'llm' (a model writes the query from a template).",
            field=field,
        )
    if isinstance(config, LLMMemoryQueryGeneratorConfig):
        _parse(config.template, f"{field}.template")
        if not config.model:
            raise InvalidRequestError("The llm query generator needs a model.", field=f"{field}.model")


def _parse(template: str, field: str) -> None:
    from jinja2.exceptions import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    if len(template) > MAX_TEMPLATE_CHARS:
        raise InvalidRequestError(f"The template has {len(template)} characters; at most {MAX_TEMPLATE_CHARS}.", field=field)
    try:
        ImmutableSandboxedEnvironment().parse(template)  # parsing only: nothing is evaluated
    except TemplateSyntaxError as e:
        raise InvalidRequestError(f"The template does not parse: {shown(e.message or '', 200)} (line {e.lineno}).", field=field) from None


async def render(template: str, messages: list[dict[str, Any]]) -> str:
    """`template` rendered with `messages`, in a child process under the limits; InvalidRequestError if it fails."""
    job = json.dumps({"template": template, "messages": messages}).encode()
    command = [sys.executable, "-I", "-c", RENDERER, str(RENDER_CPU_S), str(RENDER_MEMORY_BYTES), str(MAX_PROMPT_CHARS)]
    with anyio.move_on_after(RENDER_WALL_S) as wall:
        done = await anyio.run_process(command, input=job, check=False)  # killed when cancelled
    if wall.cancelled_caught:
        raise InvalidRequestError(f"The template did not render within {RENDER_WALL_S:g} s.", field=FIELD)
    try:
        answer = json.loads(done.stdout.decode())
    except ValueError:  # killed by a limit (CPU: SIGXCPU), or died: no answer line
        raise InvalidRequestError("The template did not render within its CPU and memory limits.", field=FIELD) from None
    if "error" in answer:
        raise InvalidRequestError(f"The template failed to render: {answer['error'].rstrip('.')}.", field=FIELD)
    return answer["text"]


async def generate_query(
    stack: Any, config: MemoryQueryGeneratorConfig, turn_messages: list[Message], conversation: list[Message]
) -> str:
    """The text to search the banks for ("" for none); see the module docstring."""
    if isinstance(config, DefaultMemoryQueryGeneratorConfig):
        return config.sep.join(content_text(m.content) for m in turn_messages)
    assert isinstance(config, LLMMemoryQueryGeneratorConfig)  # custom: refused at creation
    prompt = await render(config.template, [msgspec.to_builtins(m) for m in conversation])
    request = ChatCompletionRequest(
        model=config.model, messages=[UserMessage(content=prompt)], stream=False,
        sampling_params=SamplingParams(max_tokens=QUERY_MAX_TOKENS),
    )  # fmt: skip
    response = await stack.api("inference").chat_completion(request)
    return content_text(response.completion_message.content).strip()
