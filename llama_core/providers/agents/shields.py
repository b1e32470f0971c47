"""Shields around a turn's steps, through the Safety API (`stack.safety.run_shields`).

    verdict = await check(stack, messages, shields)
    verdict.violation   the first RAISE shield's violating response (the turn ends with its message), or None
    verdict.response    what the shield_call step records: that violation, else a clean response
                        (`is_violation` false) of the first shield, as the reference's placeholder

WARN logs the violation and goes on; IGNORE goes on silently: neither shows in the step, since a
violating response there means the turn ended on it (later turns see its message as the
assistant's reply). A violating response without a message ends the turn with DEFAULT_MESSAGE.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from llama_core.types.messages import Message
from llama_core.types.safety import OnViolationAction, RunShieldsRequest, ShieldDefinition, ShieldResponse

log = logging.getLogger(__name__)

DEFAULT_MESSAGE = "I can't answer that. Can I help with something else?"


@dataclass(frozen=True, slots=True)
class Verdict:
    response: ShieldResponse
    violation: ShieldResponse | None

    @property
    def message(self) -> str:
        assert self.violation is not None
        return self.violation.violation_return_message or DEFAULT_MESSAGE


async def check(stack: Any, messages: list[Message], shields: list[ShieldDefinition]) -> Verdict:
    """Every shield's verdict on `messages` (they run concurrently, in the safety provider)."""
    result = await stack.api("safety").run_shields(RunShieldsRequest(messages=messages, shields=shields))
    raised = None
    for shield, response in zip(shields, result.responses, strict=True):
        if not response.is_violation:
            continue
        if shield.on_violation_action == OnViolationAction.RAISE:
            raised = raised or response
        elif shield.on_violation_action == OnViolationAction.WARN:
            log.warning("shield %s found a violation (%s); going on", response.shield_type, response.violation_type)
    clean = ShieldResponse(shield_type=shields[0].shield_type, is_violation=False)
    return Verdict(response=raised or clean, violation=raised)
