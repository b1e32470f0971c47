"""The shield table: which class judges each `shield_type`, and which config section turns it on.

A shield is one family's check on a message list. The provider builds each configured shield once
(lazily, on first use) as `Class(section, stack)`, where `section` is the shield's table of the
safety provider's config (None for shields that need none), and calls `run` for every request that
names it. `run` gives the raw verdict; the provider applies `definition.on_violation_action`.

    class Shield(Protocol):
        async def run(self, messages: list[Message], definition: ShieldDefinition) -> ShieldResponse

A shield raises llama_core.errors (InvalidRequestError for a request it cannot judge, its `field`
relative to the definition; ProviderError for a model or endpoint that answered nonsense), never a
bare exception. Its constructor runs in a worker thread (it may load a model); `run` on the loop.

Non-goals: no shield plugins; adding a shield is adding a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from llama_core.types.messages import Message
from llama_core.types.safety import BuiltinShield, ShieldDefinition, ShieldResponse


class Shield(Protocol):
    async def run(self, messages: list[Message], definition: ShieldDefinition) -> ShieldResponse:
        """The verdict on `messages` (before `definition.on_violation_action` is applied)."""
        ...


@dataclass(frozen=True, slots=True)
class ShieldRow:
    """`implementation` is "module:Class"; `config_section` the SafetyConfig field that turns it on
    (None: always on, given its Python packages)."""

    shield_type: BuiltinShield
    implementation: str
    config_section: str | None
    pip_packages: tuple[str, ...] = ()


_PKG = "llama_core.providers.safety"

# fmt: off
SHIELDS: tuple[ShieldRow, ...] = (
    ShieldRow(BuiltinShield.llama_guard, f"{_PKG}.llama_guard:LlamaGuardShield", "llama_guard_shield"),
    ShieldRow(BuiltinShield.jailbreak_shield, f"{_PKG}.prompt_guard:JailbreakShield", "prompt_guard_shield", ("transformers",)),
    ShieldRow(BuiltinShield.injection_shield, f"{_PKG}.prompt_guard:InjectionShield", "prompt_guard_shield", ("transformers",)),
    ShieldRow(BuiltinShield.code_scanner_guard, f"{_PKG}.code_scanner:CodeScannerShield", None, ("codeshield",)),
    ShieldRow(BuiltinShield.third_party_shield, f"{_PKG}.third_party:ThirdPartyShield", None, ("httpx",)),
)
# fmt: on
