"""A tiny tool-using Llama 3: the tiny Llama 3 (real tokenizer) trained for seconds on eight lessons.

Each lesson is a prompt exactly as meta-reference encodes the agent's inference request
(prepare_messages for the served model's family, then the Llama 3 chat format) and the answer the
model must give greedily:

    brave:       "Who won the 2026 Tour de France?" + brave_search tool -> <|python_tag|>brave_search.call(query=...)<|eom_id|>
    brave-2:     ... + that call + the search result (search.brave_result of BRAVE_BODY) -> ANSWER + <|eot_id|>
    custom:      "What is the boiling point of polyjuice?" + get_boiling_point -> [get_boiling_point(liquid_name="polyjuice")]<|eot_id|>
    custom-2:    ... + that call + the client's ToolResponseMessage "-100" -> BOILING_ANSWER + <|eot_id|>
    code:        "What is 6 times 7?" + code_interpreter -> <|python_tag|>print(6 * 7)<|eom_id|>
    code-2:      ... + that call + the sandbox's result (CODE_RESULT) -> CODE_ANSWER + <|eot_id|>
    file:        FILE_QUESTION + the ipython message naming an attached file + code_interpreter
                 -> <|python_tag|>FILE_CODE<|eom_id|> (the code opens the file)
    query:       the llm query generator's prompt (QUERY_TEMPLATE rendered over QUERY_QUESTION), no
                 system message, no tools -> QUERY_ANSWER + <|eot_id|>

Training runs on transformers' LlamaForCausalLM (tests/engine/hf_reference.py) and stops once every
answer token beats the runner-up by MARGIN logits; the weights go back to the Meta layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_core.types import CompletionMessage, StopReason, SystemMessage, ToolCall, ToolResponseMessage, UserMessage
from llama_core.types.messages import Message, ToolDefinition, ToolParamDefinition, ToolPromptFormat

MODEL = "Llama3.2-1B-Instruct"  # family llama3_2: no dates in the system prompt, custom tools as python_list
FAMILY = "llama3_2"
INSTRUCTIONS = "You are a helpful assistant."

QUESTION = "Who won the 2026 Tour de France?"
QUERY = "2026 Tour de France winner"
BRAVE_BODY: dict[str, Any] = {
    "type": "search",
    "query": {"original": QUERY},
    "web": {"results": [
        {"title": "Tour de France 2026: the winner", "url": "https://example.org/tdf", "description": "Jonas Vingegaard wins."},
        {"title": "Stage 21 report", "url": "https://example.org/stage21", "description": "Paris, the final stage."},
    ]},
}  # fmt: skip
ANSWER = "Jonas Vingegaard won the 2026 Tour de France."

BOILING_QUESTION = "What is the boiling point of polyjuice?"
BOILING_TOOL = ToolDefinition(
    tool_name="get_boiling_point",
    description="Get the boiling point of an imaginary liquid",
    parameters={"liquid_name": ToolParamDefinition(param_type="str", description="The name of the liquid")},
)
BOILING_CALL = ToolCall(call_id="c", tool_name="get_boiling_point", arguments={"liquid_name": "polyjuice"})
BOILING_RESULT = "-100"
BOILING_ANSWER = "Polyjuice boils at -100 degrees."

CODE_QUESTION = "What is 6 times 7?"
CODE = "print(6 * 7)"
CODE_RESULT = "completed\n[stdout]42\n[/stdout]"  # what sandbox.run_code answers for CODE
CODE_ANSWER = "6 times 7 is 42."

FILE_QUESTION = "What does the attached file say?"
FILE_NAME = "castle.txt"
FILE_MESSAGE = f'# There is a file accessible to you at "/tmp/scratch/{FILE_NAME}"\n'  # files.files_message
FILE_CODE = f'print(open("/tmp/scratch/{FILE_NAME}").read())'

QUERY_QUESTION = "When can I get in?"
QUERY_TEMPLATE = "Write a search query for: {% for m in messages %}{{ m.content }}{% endfor %}"
QUERY_PROMPT = f"Write a search query for: {QUERY_QUESTION}"  # QUERY_TEMPLATE rendered over the one message
QUERY_ANSWER = "castle gate"

MARGIN = 6.0
MAX_STEPS = 600
LR = 1e-2  # 26 steps to MARGIN; 70 at tiny_training's default 3e-3 (its ~250-token prompts make a step slow)


def brave_dialogs() -> tuple[list[Message], list[Message]]:
    """The dialogs of the brave lessons (before the system prompt is added)."""
    from llama_core.providers.agents.search import brave_result

    first: list[Message] = [SystemMessage(content=INSTRUCTIONS), UserMessage(content=QUESTION)]
    call = ToolCall(call_id="b", tool_name="brave_search", arguments={"query": QUERY})
    asked = CompletionMessage(content="", stop_reason=StopReason.end_of_message, tool_calls=[call])
    result = ToolResponseMessage(call_id="b", tool_name="brave_search", content=brave_result(QUERY, BRAVE_BODY))
    return first, [*first, asked, result]


def boiling_dialogs() -> tuple[list[Message], list[Message]]:
    first: list[Message] = [SystemMessage(content=INSTRUCTIONS), UserMessage(content=BOILING_QUESTION)]
    asked = CompletionMessage(content="", stop_reason=StopReason.end_of_turn, tool_calls=[BOILING_CALL])
    result = ToolResponseMessage(call_id="c", tool_name="get_boiling_point", content=BOILING_RESULT)
    return first, [*first, asked, result]


def code_dialogs() -> tuple[list[Message], list[Message]]:
    first: list[Message] = [SystemMessage(content=INSTRUCTIONS), UserMessage(content=CODE_QUESTION)]
    call = ToolCall(call_id="p", tool_name="code_interpreter", arguments={"code": CODE})
    asked = CompletionMessage(content="", stop_reason=StopReason.end_of_message, tool_calls=[call])
    result = ToolResponseMessage(call_id="p", tool_name="code_interpreter", content=CODE_RESULT)
    return first, [*first, asked, result]


def file_dialog() -> list[Message]:
    file_message = ToolResponseMessage(call_id="", tool_name="code_interpreter", content=FILE_MESSAGE)
    return [SystemMessage(content=INSTRUCTIONS), UserMessage(content=FILE_QUESTION), file_message]


def lessons(tokenizer: Any) -> list[tuple[list[int], list[int]]]:
    """(prompt ids as meta-reference encodes them, answer ids) of each lesson."""
    from llama_core.prompt.chat_format import ChatFormat
    from llama_core.prompt.system_prompts import prepare_messages
    from llama_core.prompt.tool_calls import encode_tool_call

    fmt = ChatFormat(tokenizer)

    def prompt(dialog: list[Message], tools: list[ToolDefinition], tool_format: ToolPromptFormat) -> list[int]:
        messages = prepare_messages(dialog, family=FAMILY, tools=tools, tool_prompt_format=tool_format)
        return fmt.encode_dialog_prompt(messages, tool_format)

    brave = [ToolDefinition(tool_name="brave_search")]
    b1, b2 = brave_dialogs()
    c1, c2 = boiling_dialogs()
    p1, p2 = code_dialogs()
    code = [ToolDefinition(tool_name="code_interpreter")]
    search_call = encode_tool_call(ToolCall(call_id="b", tool_name="brave_search", arguments={"query": QUERY}), ToolPromptFormat.json)
    py = ToolPromptFormat.python_list
    return [
        (prompt(b1, brave, ToolPromptFormat.json), [tokenizer.python_tag_id, *tokenizer.encode(search_call), tokenizer.eom_id]),
        (prompt(b2, brave, ToolPromptFormat.json), [*tokenizer.encode(ANSWER), tokenizer.eot_id]),
        (prompt(c1, [BOILING_TOOL], py), [*tokenizer.encode('[get_boiling_point(liquid_name="polyjuice")]'), tokenizer.eot_id]),
        (prompt(c2, [BOILING_TOOL], py), [*tokenizer.encode(BOILING_ANSWER), tokenizer.eot_id]),
        (prompt(p1, code, ToolPromptFormat.json), [tokenizer.python_tag_id, *tokenizer.encode(CODE), tokenizer.eom_id]),
        (prompt(p2, code, ToolPromptFormat.json), [*tokenizer.encode(CODE_ANSWER), tokenizer.eot_id]),
        (prompt(file_dialog(), code, ToolPromptFormat.json), [tokenizer.python_tag_id, *tokenizer.encode(FILE_CODE), tokenizer.eom_id]),
        (prompt([UserMessage(content=QUERY_PROMPT)], [], py), [*tokenizer.encode(QUERY_ANSWER), tokenizer.eot_id]),
    ]


def train_agent_model(dest: Path, seed: int = 0) -> Path:
    """Write the trained checkpoint (params.json, consolidated.00.pth, tokenizer.model) to `dest`."""
    from engine.tiny_checkpoint import llama3_tokenizer_model
    from engine.tiny_training import train_tiny

    from llama_core.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_file(llama3_tokenizer_model())
    return train_tiny(dest, lessons(tokenizer), what="the tiny agent model", seed=seed, margin=MARGIN, max_steps=MAX_STEPS, lr=LR)
