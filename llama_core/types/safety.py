"""Safety wire types (0.0.13 shapes): shield definitions, per-shield responses, run_shields.

`shield_type` is a plain `str`: a BuiltinShield value (a StrEnum, so it compares equal) or the name of
a third-party shield, as the original's `Union[BuiltinShield, str]` allowed.
"""

from __future__ import annotations

import enum
from typing import Any

from llama_core.types._base import Base
from llama_core.types.common import URL
from llama_core.types.messages import Message, ToolParamDefinition


class BuiltinShield(enum.StrEnum):
    llama_guard = "llama_guard"
    code_scanner_guard = "code_scanner_guard"
    third_party_shield = "third_party_shield"
    injection_shield = "injection_shield"
    jailbreak_shield = "jailbreak_shield"


class OnViolationAction(enum.IntEnum):
    """What an agent does when a shield fires. Integers on the wire, as in the original."""

    IGNORE = 0
    WARN = 1
    RAISE = 2


class RestAPIMethod(enum.StrEnum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    DELETE = "DELETE"


class RestAPIExecutionConfig(Base):
    """Run a shield or tool by calling a REST endpoint instead of in-process."""

    url: URL
    method: RestAPIMethod
    params: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    body: dict[str, str] | None = None


class ShieldDefinition(Base):
    shield_type: str
    description: str | None = None
    parameters: dict[str, ToolParamDefinition] | None = None
    on_violation_action: OnViolationAction = OnViolationAction.RAISE
    execution_config: RestAPIExecutionConfig | None = None


class ShieldResponse(Base):
    """One shield's verdict. `violation_type` is e.g. Llama Guard's codes ("S9")."""

    shield_type: str
    is_violation: bool
    violation_type: str | None = None
    violation_return_message: str | None = None


class RunShieldsRequest(Base):
    """POST /safety/run_shields: every shield judges the whole message list."""

    messages: list[Message]
    shields: list[ShieldDefinition]


class RunShieldsResponse(Base):
    """One response per requested shield, in the request's order."""

    responses: list[ShieldResponse]


# Later (0.0.21+) vocabulary, for agents that report a violation with a severity.


class ViolationLevel(enum.StrEnum):
    info = "info"
    warn = "warn"
    error = "error"


class SafetyViolation(Base):
    violation_level: ViolationLevel
    user_message: str | None = None
    metadata: dict[str, Any] = {}
