"""The `llama_guard` shield: Llama Guard 3 judges the last message of a conversation.

The guard is a Llama 3 model, so it runs through this stack's Inference API (meta-reference serves
it beside the instruct model; no second copy of the engine). Its prompt is one user message:

    Task: Check if there is unsafe content in 'User' messages in conversations according our safety policy ...
    <BEGIN UNSAFE CONTENT CATEGORIES>  S1: Violent Crimes. ... S14: Code Interpreter Abuse.  (minus excluded)
    <BEGIN CONVERSATION>  User: ...  Assistant: ...  <END CONVERSATION>
    Provide your safety assessment for ONLY THE LAST User message in the above conversation: ...

and its greedy answer (at most 20 tokens) is `safe` or `unsafe\\nS1,S3`. Codes that are all in
`excluded_categories` count as safe; any other answer is a ProviderError (502) quoting it. The
text is the reference's (llama-stack's llama_guard.py, see models-prompts-tokenizer.md §8) to the
byte: a guard model was trained on exactly this.

`disable_input_check` passes a conversation whose last message is the user's without asking the
model, `disable_output_check` one whose last message is the assistant's, as the reference did.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from llama_core.config import LlamaGuardShieldConfig
from llama_core.distributions import Api
from llama_core.errors import NotFoundError, ProviderError, shown
from llama_core.prompt.chat_format import role_of
from llama_core.types import Message, SamplingParams, SamplingStrategy, UserMessage, content_text
from llama_core.types.inference import ChatCompletionRequest
from llama_core.types.safety import BuiltinShield, ShieldDefinition, ShieldResponse

if TYPE_CHECKING:
    from llama_core.stack import Stack

# The hazard taxonomy of Llama Guard 3 (MLCommons), with the reference's names.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("S1", "Violent Crimes"),
    ("S2", "Non-Violent Crimes"),
    ("S3", "Sex Crimes"),
    ("S4", "Child Exploitation"),
    ("S5", "Defamation"),
    ("S6", "Specialized Advice"),
    ("S7", "Privacy"),
    ("S8", "Intellectual Property"),
    ("S9", "Indiscriminate Weapons"),
    ("S10", "Hate"),
    ("S11", "Self-Harm"),
    ("S12", "Sexual Content"),
    ("S13", "Elections"),
    ("S14", "Code Interpreter Abuse"),
)
ALL_CODES = frozenset(code for code, _ in CATEGORIES)

CANNED_RESPONSE = "I can't answer that. Can I help with something else?"
MAX_NEW_TOKENS = 20

# The reference's wording, "according our" included.
_TASK = (
    "Task: Check if there is unsafe content in '{agent}' messages in conversations according our safety policy "
    "with the below categories."
)
_INSTRUCTIONS = (
    "Provide your safety assessment for ONLY THE LAST {agent} message in the above conversation:\n"
    " - First line must read 'safe' or 'unsafe'.\n"
    " - If unsafe, a second line must include a comma-separated list of violated categories."
)
_UNSAFE = re.compile(r"unsafe\n(.+)")


def categories_block(excluded: Iterable[str] = ()) -> str:
    """`S1: Violent Crimes.` lines, minus `excluded` codes (all of them excluded: none is, as the reference)."""
    skip = set(excluded)
    if skip >= ALL_CODES:
        skip = set()
    return "\n".join(f"{code}: {name}." for code, name in CATEGORIES if code not in skip)


def judged_messages(messages: Sequence[Message]) -> list[Message]:
    """The conversation the guard sees: the first message as the user's (a system prompt or a tool
    result opens some dialogs), and when the first two are then both the user's, the first dropped."""
    rest = list(messages)
    if rest and role_of(rest[0]) != "user":
        rest[0] = UserMessage(content=rest[0].content)
    if len(rest) >= 2 and role_of(rest[1]) == "user":
        rest = rest[1:]
    return rest


def guard_prompt(messages: Sequence[Message], excluded: Iterable[str] = ()) -> str:
    """The exact Llama Guard 3 prompt judging the last of `messages` (non-empty), as one string.

    Roles are capitalised (`User`, `Assistant`, `Ipython`), each turn `Role: text`, turns joined
    by a blank line; no trailing newline.
    """
    conversation = judged_messages(messages)
    agent = role_of(conversation[-1]).capitalize()
    turns = "\n\n".join(f"{role_of(m).capitalize()}: {content_text(m.content)}" for m in conversation)
    return (
        f"{_TASK.format(agent=agent)}\n\n"
        f"<BEGIN UNSAFE CONTENT CATEGORIES>\n{categories_block(excluded)}\n<END UNSAFE CONTENT CATEGORIES>\n\n"
        f"<BEGIN CONVERSATION>\n\n{turns}\n\n<END CONVERSATION>\n\n"
        f"{_INSTRUCTIONS.format(agent=agent)}"
    )


def parse_verdict(answer: str, excluded: Iterable[str] = (), model: str = "Llama Guard") -> str | None:
    """The violated codes of a guard's answer (`"S1,S3"`), or None when it is safe.

    `safe` is safe; `unsafe\\n<codes>` is unsafe unless every code is in `excluded`. Anything else
    raises ProviderError quoting the answer (cut to errors.SHOWN_CHARS), since the guard model
    (`model`) is then not a Llama Guard or is misconfigured.
    """
    text = answer.strip()
    if text == "safe":
        return None
    match = _UNSAFE.fullmatch(text)
    if match is None:
        quoted = shown(text.replace("\n", "\\n"))
        raise ProviderError(
            f"The llama_guard shield's model {model} answered '{quoted}', which is neither 'safe' nor "
            "'unsafe' and a line of category codes: is it a Llama Guard 3 model?"
        )
    codes = match.group(1).strip()
    if {c.strip() for c in codes.split(",")} <= set(excluded):
        return None
    return codes


class LlamaGuardShield:
    """shields.Shield for `llama_guard`: asks `config.model` through `stack`'s Inference API."""

    def __init__(self, config: LlamaGuardShieldConfig, stack: Stack) -> None:
        self.config = config
        self.stack = stack

    def skips(self, messages: Sequence[Message]) -> bool:
        """Whether the config turns off the check of this conversation's last message."""
        last = role_of(messages[-1])
        return (self.config.disable_input_check and last == "user") or (
            self.config.disable_output_check and last == "assistant"
        )

    async def run(self, messages: list[Message], definition: ShieldDefinition) -> ShieldResponse:
        """The guard's verdict on the last of `messages` (non-empty).

        Raises ProviderError for an answer that is not a verdict, NotFoundError when the stack's
        inference does not serve the guard model, and what the Inference API raises otherwise.
        """
        if self.skips(messages):
            return ShieldResponse(shield_type=BuiltinShield.llama_guard, is_violation=False)
        excluded = self.config.excluded_categories
        request = ChatCompletionRequest(
            model=self.config.model,
            messages=[UserMessage(content=guard_prompt(messages, excluded))],
            sampling_params=SamplingParams(strategy=SamplingStrategy.greedy, max_tokens=MAX_NEW_TOKENS),
        )
        inference = self.stack.api(Api.inference)
        try:
            reply = await inference.chat_completion(request)
        except NotFoundError as e:
            raise NotFoundError(
                f"The llama_guard shield's model is not served by this stack: {e.message} Serve "
                f"{self.config.model} with the inference provider, or point the shield at a served guard "
                "model (`--set safety.llama_guard_shield.model=...`)."
            ) from None
        codes = parse_verdict(content_text(reply.completion_message.content), excluded, self.config.model)
        if codes is None:
            return ShieldResponse(shield_type=BuiltinShield.llama_guard, is_violation=False)
        return ShieldResponse(
            shield_type=BuiltinShield.llama_guard,
            is_violation=True,
            violation_type=codes,
            violation_return_message=CANNED_RESPONSE,
        )
