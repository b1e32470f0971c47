"""`meta-reference` safety: the shields of llama_core.providers.safety.shields, run concurrently.

    async with MetaReferenceSafety(SafetyConfig(llama_guard_shield=...), stack) as safety:
        reply = await safety.run_shields(RunShieldsRequest(messages=[...], shields=[...]))

Each requested shield judges the whole message list; they run at once, and the answer holds one
ShieldResponse per requested shield, in the request's order. Every shield is resolved before any
runs, so a request naming an unknown or unconfigured shield does no work (400 naming it and how to
configure it). Each shield is built once, on its first request (`Class(section, stack)` in a worker
thread, since a shield may load a model there), and shared by every later request.

`on_violation_action` then says what a violation becomes:

    RAISE (default)   the response as the shield gave it: is_violation true
    WARN              the same, and a warning in the server's log
    IGNORE            is_violation false; violation_type and the message stay, for the record

(The reference's agents raised on RAISE, printed on WARN and did nothing on IGNORE; over this API a
violation is an answer, not an error, so RAISE is the plain verdict.)

A shield type the request names that is no builtin is served by `third_party_shield` when the
definition carries an execution_config (the reference's `Union[BuiltinShield, str]`).

Non-goals: no shield registry or per-request config; which shields exist is the config's.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from llama_core.config import SafetyConfig
from llama_core.distributions import import_path
from llama_core.errors import InvalidRequestError, NotConfiguredError, first_error, shown
from llama_core.providers.safety.shields import SHIELDS, Shield, ShieldRow
from llama_core.types.safety import (
    BuiltinShield,
    OnViolationAction,
    RunShieldsRequest,
    RunShieldsResponse,
    ShieldDefinition,
    ShieldResponse,
)

if TYPE_CHECKING:
    from llama_core.stack import Stack

log = logging.getLogger(__name__)

ROWS: dict[str, ShieldRow] = {row.shield_type.value: row for row in SHIELDS}
# A shield's InvalidRequestError about one of these is about its definition: shields[i].<field>.
DEFINITION_FIELDS = frozenset(f.name for f in msgspec.structs.fields(ShieldDefinition))
OUR_PACKAGES = ("llama_core", "llama_cli", "llama_rpc")

# How to turn on the shields of each config section: `--set` of one of its fields.
HOW_TO_SET: dict[str, str] = {
    "llama_guard_shield": "safety.llama_guard_shield.model=Llama-Guard-3-1B",
    "prompt_guard_shield": "safety.prompt_guard_shield.model=Prompt-Guard-86M",
}


def missing_package(row: ShieldRow) -> str | None:
    """The first of the row's Python packages that is not installed (found without importing it)."""
    return next((p for p in row.pip_packages if importlib.util.find_spec(p) is None), None)


def installed(row: ShieldRow) -> bool:
    """Whether the row's module is part of this installation (found without importing it)."""
    return importlib.util.find_spec(row.implementation.partition(":")[0]) is not None


def apply_action(response: ShieldResponse, definition: ShieldDefinition) -> ShieldResponse:
    """`response` as `definition.on_violation_action` wants it answered (see the module docstring)."""
    response = msgspec.structs.replace(response, shield_type=definition.shield_type)
    if not response.is_violation:
        return response
    action = definition.on_violation_action
    if action == OnViolationAction.IGNORE:
        return msgspec.structs.replace(response, is_violation=False)
    if action == OnViolationAction.WARN:
        log.warning(
            "safety: the %s shield found a violation (%s); on_violation_action WARN lets the caller decide",
            shown(definition.shield_type), shown(response.violation_type or "no type given"),
        )  # fmt: skip
    return response


def served_shields(config: SafetyConfig) -> list[str]:
    """The shield types the provider runs with `config`, sorted, each with its model where it has one:
    `["code_scanner_guard", "llama_guard (Llama-Guard-3-1B)", "third_party_shield"]`.

    A shield is served when its config section is present (or it needs none), and its module and
    Python packages are installed. Nothing is imported or loaded (`llama stack run` prints it).
    """
    served = []
    for row in SHIELDS:
        section = getattr(config, row.config_section) if row.config_section else None
        if (row.config_section is not None and section is None) or missing_package(row) or not installed(row):
            continue
        model = getattr(section, "model", None)
        served.append(f"{row.shield_type} ({model})" if model else str(row.shield_type))
    return sorted(served)


class MetaReferenceSafety:
    """apis.Safety over the configured shields. An async context manager: leaving closes the shields."""

    def __init__(self, config: SafetyConfig, stack: Stack) -> None:
        self.config = config
        self.stack = stack
        self._shields: dict[str, Shield] = {}
        self._building: dict[str, anyio.Lock] = {}

    async def __aenter__(self) -> MetaReferenceSafety:
        served = self.served_shields()
        log.info("safety: serving shields %s", ", ".join(served) if served else "none")
        return self

    async def __aexit__(self, *exc: object) -> None:
        shields, self._shields = self._shields, {}
        for shield in shields.values():
            close = getattr(shield, "aclose", None)
            if close is not None:
                await close()

    def served_shields(self) -> list[str]:
        """`served_shields(self.config)`."""
        return served_shields(self.config)

    def section(self, row: ShieldRow) -> Any:
        """The row's config section (None when it needs none, or the config lacks it)."""
        return getattr(self.config, row.config_section) if row.config_section else None

    async def run_shields(self, request: RunShieldsRequest) -> RunShieldsResponse:
        """Every requested shield's verdict on `request.messages`, in the order of `request.shields`.

        Raises InvalidRequestError (400) for no messages, an unknown shield type or one this stack
        does not configure (field `shields[i].shield_type`), or a definition a shield cannot use;
        NotConfiguredError (501) for a shield whose Python package is missing; and what a shield
        raises (ProviderError for a guard model or endpoint that answered nonsense).
        """
        if not request.messages:
            raise InvalidRequestError("Give the shields at least one message to judge.", field="messages")
        rows = [self.row_for(d, i) for i, d in enumerate(request.shields)]  # all checked before any runs
        shields = [await self.shield(row) for row in rows]
        responses: list[Any] = [None] * len(shields)

        async def judge(i: int) -> None:
            definition = request.shields[i]
            try:
                verdict = await shields[i].run(request.messages, definition)
            except InvalidRequestError as e:
                if (e.field or "").partition(".")[0] in DEFINITION_FIELDS:  # say which definition
                    e.field = f"shields[{i}].{e.field}"
                raise
            responses[i] = apply_action(verdict, definition)

        try:
            async with anyio.create_task_group() as tg:
                for i in range(len(shields)):
                    tg.start_soon(judge, i)
        except BaseExceptionGroup as failed:  # one shield's error is the request's (the others were cancelled)
            raise first_error(failed) from None
        return RunShieldsResponse(responses=responses)

    def row_for(self, definition: ShieldDefinition, index: int) -> ShieldRow:
        """The table row serving `definition`; InvalidRequestError if none does or it is not configured."""
        field = f"shields[{index}].shield_type"
        row = ROWS.get(definition.shield_type)
        if row is None and definition.execution_config is not None:
            row = ROWS[BuiltinShield.third_party_shield]
        if row is None:
            known = ", ".join(sorted(ROWS))
            raise InvalidRequestError(
                f"Unknown shield_type '{shown(definition.shield_type)}'. Choose one of: {known}; or give an "
                "execution_config to call a REST shield under your own name.",
                field=field,
            )
        if row.config_section is not None and self.section(row) is None:
            raise InvalidRequestError(
                f"The {row.shield_type} shield is not configured in this stack. {self.how_to_configure(row.config_section)}",
                field=field,
            )
        return row

    def how_to_configure(self, section: str) -> str:
        """One sentence on turning on config `section` for this stack's build."""
        if self.stack is not None and getattr(self.stack, "source", None) is not None:
            build = f"{self.stack.config.distribution_id} --name {self.stack.config.name}"
        else:
            build = "DIST --name NAME"
        return (
            f"Turn it on with `llama stack configure {build} --set {HOW_TO_SET.get(section, f'safety.{section}.FIELD=VALUE')}` "
            f'(or answer y to "Do you want to configure {section}?"), then restart the stack.'
        )

    async def shield(self, row: ShieldRow) -> Shield:
        """The row's shield, built on first use (once, however many requests wait for it)."""
        name = row.shield_type.value
        if name in self._shields:
            return self._shields[name]
        lock = self._building.setdefault(name, anyio.Lock())
        async with lock:
            if name not in self._shields:
                self._shields[name] = await self._build(row)
        return self._shields[name]

    async def _build(self, row: ShieldRow) -> Shield:
        package = missing_package(row)
        if package is not None:
            raise NotConfiguredError(
                f"The {row.shield_type} shield needs the Python package '{package}', which is not installed "
                f"here: `pip install {' '.join(row.pip_packages)}`."
            )
        section = self.section(row)

        def build() -> Shield:
            try:
                cls = import_path(row.implementation)
            except ModuleNotFoundError as e:
                if (e.name or "").partition(".")[0] in OUR_PACKAGES:
                    raise NotConfiguredError(f"The {row.shield_type} shield is missing from this installation ({e.name}).") from None
                raise NotConfiguredError(
                    f"The {row.shield_type} shield needs the Python package '{e.name}', which is not installed here: "
                    f"`pip install {e.name}`."
                ) from None
            return cls(section, self.stack)

        shield: Shield = await anyio.to_thread.run_sync(build)
        return shield
