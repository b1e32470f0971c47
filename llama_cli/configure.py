"""`llama stack configure`'s prompt engine: questions generated from the provider config Structs.

It walks each Struct's fields in order (msgspec.inspect), as the reference's transcript shows (a
Struct's `unasked` ClassVar names fields it keeps or takes from --set without asking):

    Enter value for <field> (required|optional|default: v|existing: v):   a leaf; re-asked when invalid
    Do you want to configure <field>? (y/n):                              an optional sub-config
    Entering sub-configuration for <field>:                               then its fields
    Choose <field> (options: a, b):                                       an enum or literal

Empty input keeps the existing value, else the default; "none" clears an optional field. Lists are
JSON (`["S1", "S2"]`) or comma-separated. `--set api.field=value` answers a question ahead of time,
and `--yes` answers all the others with their existing or default value, for scripts. A secret
field set to `-` (`--set inference.api_key=-`) is read from stdin, out of `ps`'s sight
(llama_cli/secret_input.py).
"""

from __future__ import annotations

import ast
import enum
import json
import re
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi

from llama_core.config import RunConfig, display_path, load_run_config, save_run_config
from llama_core.distributions import api as parse_api
from llama_core.distributions import import_path, provider_spec
from llama_core.errors import InvalidRequestError
from llama_core.models.registry import resolve_model
from llama_core.providers.inference.meta_reference import MetaReferenceModelConfig
from llama_core.redact import is_secret_name

Ask = Callable[[str], str]  # prompt -> one line of answer; EOFError when input ends
Say = Callable[[str], None]
Check = Callable[[Any], "str | None"]  # an answer -> why the config rejects it, or None

YES, NO = ("y", "yes"), ("n", "no")


class Prompter:
    """Where questions go and answers come from; `interactive=False` answers every one by default."""

    def __init__(self, ask: Ask = input, say: Say = print, interactive: bool = True) -> None:
        self._ask, self.say, self.interactive = ask, say, interactive

    def ask(self, prompt: str) -> str:
        from llama_cli.errors import not_utf8

        while True:
            try:
                answer = self._ask(prompt).strip()
            except EOFError:
                raise InvalidRequestError(
                    "Input ended before configuration finished: answer every prompt, or use --yes with --set API.FIELD=VALUE."
                ) from None
            if (problem := not_utf8(answer)) is None:
                return answer
            self.say(f"Validation error: the answer {problem}.")  # the run config could not hold it


def parse_sets(sets: Sequence[str]) -> dict[str, dict[str, Any]]:
    """["inference.max_seq_len=2048", "safety.llama_guard_shield.model=X"] -> nested raw strings per API."""
    out: dict[str, dict[str, Any]] = {}
    for item in sets:
        key, eq, value = item.partition("=")
        api, _, path = key.strip().partition(".")
        if not eq or not path:
            raise InvalidRequestError(f"--set {item!r}: expected API.FIELD=VALUE, e.g. inference.max_seq_len=2048.", field="set")
        from llama_cli.errors import not_utf8

        if (problem := not_utf8(value)) is not None:
            raise InvalidRequestError(f"--set {key.strip()}: the value {problem}.", field="set")
        node = out.setdefault(str(parse_api(api)), {})
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise InvalidRequestError(f"--set {item!r}: '{p}' is a value, not a sub-config.", field="set")
        node[leaf] = value
    return out


def type_name(ann: Any) -> str:
    """A type as a user reads it: int, list[str], str | None."""
    if typing.get_origin(ann) is typing.Annotated:
        ann = typing.get_args(ann)[0]
    if isinstance(ann, type) and not typing.get_args(ann):
        return ann.__name__
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", str(ann)).replace("NoneType", "None")  # list[Struct], not its module path


def show(value: Any, secret: bool = False) -> str:
    """A value as the prompts print it: False, 4096, [], text; secrets masked."""
    if secret and value:
        return "********"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _accepts(info: mi.Type, kind: type[mi.Type]) -> bool:
    types = info.types if isinstance(info, mi.UnionType) else (info,)
    return any(isinstance(t, kind) for t in types)


def parse_value(raw: str, ann: Any) -> Any:
    """`raw` as a value of type `ann` (JSON-able builtins); ValueError when it is not one."""
    info = mi.type_info(ann)
    candidates: list[Any] = [raw] if _accepts(info, mi.StrType) else []
    for load in (json.loads, ast.literal_eval):
        try:
            candidates.append(load(raw))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    if _accepts(info, mi.BoolType) and raw.lower() in YES + NO:
        candidates.append(raw.lower() in YES)
    if _accepts(info, mi.ListType):
        candidates.append([part.strip() for part in raw.split(",") if part.strip()])
    candidates.append(raw)  # lax conversions: "true", "2048"
    for candidate in candidates:
        try:
            return msgspec.to_builtins(msgspec.convert(candidate, ann, strict=False))
        except (msgspec.ValidationError, TypeError):
            continue
    raise ValueError(f"Invalid input. Expected type: {type_name(ann)}")


def _default(field: mi.Field) -> Any:
    if field.default is not mi.NODEFAULT:
        return msgspec.to_builtins(field.default)
    if field.default_factory is not mi.NODEFAULT:
        return msgspec.to_builtins(field.default_factory())
    return mi.NODEFAULT


def _split_optional(info: mi.Type) -> tuple[mi.Type, bool]:
    """(the type without None, whether None is allowed)."""
    if isinstance(info, mi.UnionType) and any(isinstance(t, mi.NoneType) for t in info.types):
        rest = tuple(t for t in info.types if not isinstance(t, mi.NoneType))
        return (rest[0] if len(rest) == 1 else mi.UnionType(rest)), True
    return info, False


def configure_struct(
    cls: type, existing: dict[str, Any], sets: dict[str, Any], prompter: Prompter, path: str
) -> dict[str, Any]:
    """The fields of Struct `cls` as builtins: asked, or taken from `sets`, `existing` or defaults.

    Re-asks the whole Struct when its own checks (`__post_init__`) reject the answers.
    """
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    hints = typing.get_type_hints(cls, include_extras=True)
    unknown = set(sets) - {f.name for f in info.fields}
    if unknown:
        names = ", ".join(f.name for f in info.fields) or "none"
        raise InvalidRequestError(
            f"--set {path}.{sorted(unknown)[0]}: {cls.__name__} has no such field (fields: {names}).", field="set"
        )
    # Fields never asked are fixed first: every answer is checked beside them.
    unasked = [f for f in info.fields if f.name in getattr(cls, "unasked", ())]
    fixed = {f.name: _unasked(f, hints[f.name], existing.get(f.name), sets, path) for f in unasked}
    while True:
        values: dict[str, Any] = {}
        for i, field in enumerate(info.fields):
            if field.name in fixed:
                values[field.name] = fixed[field.name]
                continue
            # Later fields at their defaults (valid, or the Struct could not be made): an error is then this answer's.
            later = {f.name: fixed[f.name] if f.name in fixed else _default(f) if _default(f) is not mi.NODEFAULT
                     else existing.get(f.name, mi.NODEFAULT) for f in info.fields[i + 1 :]}  # fmt: skip
            check = _field_check(cls, field, values, later) if prompter.interactive else None
            values[field.name] = _configure_field(field, hints[field.name], existing.get(field.name), sets, prompter, path, check)
        try:
            msgspec.convert(values, cls)
            return values
        except msgspec.ValidationError as e:
            if not prompter.interactive:
                raise InvalidRequestError(f"Invalid {path}: {e}", field=path) from None
            if unasked and _valid(cls, values | {f.name: _default(f) for f in unasked}):  # no answer can fix it
                culprits = [f for f in unasked if _valid(cls, values | {f.name: _default(f)})] or unasked
                names = " or ".join(f"--set {path}.{f.name}=VALUE" for f in culprits)
                raise InvalidRequestError(f"Invalid {path}: {str(e).rstrip('.')}. Correct it with {names}.", field=path) from None
            prompter.say(f"Validation error: {e}")
            existing = values


def _valid(cls: type, values: dict[str, Any]) -> bool:
    try:
        msgspec.convert(values, cls)
        return True
    except msgspec.ValidationError:
        return False


def _unasked(field: mi.Field, ann: Any, existing: Any, sets: dict[str, Any], path: str) -> Any:
    """A field the config says not to ask about: its --set value, else its existing or default one."""
    if field.name in sets:
        return _configure_field(field, ann, existing, sets, Prompter(interactive=False), path)
    return _fallback(field, existing)


def _fallback(field: mi.Field, existing: Any) -> Any:
    return existing if existing is not None else _default(field)


def _field_check(cls: type, field: mi.Field, before: dict[str, Any], later: dict[str, Any]) -> Check | None:
    """A check of one answer to `field` of Struct `cls`, run as soon as it is given: the Struct is
    built from the answers `before` it (each checked so), this one and `later` values.

    The answer is rejected (the check returns the config's message) only when the Struct fails with
    it and fails otherwise (or not at all) with the field's default instead: an error that the
    default gives too is another field's, left for the whole Struct's check. None (no check) while
    a later field is required and unanswered, or for a sub-config (its own fields are checked).
    """
    if any(v is mi.NODEFAULT for v in later.values()) or isinstance(_split_optional(field.type)[0], mi.StructType):
        return None
    default = _default(field)

    def error(values: dict[str, Any]) -> str | None:
        try:
            msgspec.convert(values, cls)
            return None
        except msgspec.ValidationError as e:
            return str(e)

    def check(value: Any) -> str | None:
        problem = error({**before, field.name: value, **later})
        if problem is None:
            return None
        others = {**before, **later} if default is mi.NODEFAULT else {**before, field.name: default, **later}
        return problem if error(others) != problem else None

    return check


def _configure_field(
    field: mi.Field, ann: Any, existing: Any, sets: dict[str, Any], prompter: Prompter, path: str, check: Check | None = None
) -> Any:
    """One field's value: from `sets`, asked (re-asked until `check` passes), or its existing or default value."""
    name, where = field.name, f"{path}.{field.name}"
    inner, optional = _split_optional(field.type)
    if isinstance(inner, mi.StructType):
        sub_sets = sets.get(name, {})
        if not isinstance(sub_sets, dict):
            raise InvalidRequestError(f"--set {where}: it is a sub-config; set its fields ({where}.FIELD=VALUE).", field="set")
        if optional and not sub_sets and not _wants(name, existing, prompter):
            return None
        if prompter.interactive:
            prompter.say(f"Entering sub-configuration for {name}:")
        return configure_struct(inner.cls, existing or {}, sub_sets, prompter, where)
    default = _default(field)
    if name in sets:
        try:
            return parse_value(sets[name], ann)
        except ValueError as e:
            shown = "…" if is_secret_name(name) else sets[name]  # a secret is never repeated
            raise InvalidRequestError(f"--set {where}={shown}: {e}", field=where) from None
    if existing is not None and check is not None and check(existing) is not None:
        existing = None  # a value the config rejects (a hand edit) is never offered as the answer
    fallback = existing if existing is not None else default
    if not prompter.interactive:
        if fallback is mi.NODEFAULT:
            raise InvalidRequestError(f"{where} is required: pass --set {where}=VALUE.", field=where)
        return fallback
    secret = is_secret_name(name)
    if existing is not None:
        hint = f"existing: {show(existing, secret)}"
    elif default is not mi.NODEFAULT and default is not None:
        hint = f"default: {show(default)}"
    else:
        hint = "optional" if optional or default is None else "required"
    choices = _choices(inner)
    question = f"Choose {name} (options: {', '.join(choices)}) ({hint}): " if choices else f"Enter value for {name} ({hint}): "
    while True:
        raw = prompter.ask(question)
        if not raw:
            if fallback is mi.NODEFAULT:
                prompter.say("This field is required.")
                continue
            value = fallback
        elif optional and raw.lower() == "none":
            value = None
        else:
            try:
                value = parse_value(raw, ann)
            except ValueError as e:
                prompter.say(str(e) if not choices else f"Invalid input. Choose one of: {', '.join(choices)}")
                continue
        problem = check(value) if check is not None else None
        if problem is None:
            return value
        prompter.say(f"Validation error: {problem}")


def _wants(name: str, existing: Any, prompter: Prompter) -> bool:
    """Whether to configure optional sub-config `name` (non-interactive: only if it exists already)."""
    if not prompter.interactive:
        return existing is not None
    while True:
        answer = prompter.ask(f"Do you want to configure {name}? (y/n): ").lower()
        if answer in YES or (not answer and existing is not None):
            return True
        if answer in NO or not answer:
            return False
        prompter.say("Please answer y or n.")


def _choices(info: mi.Type) -> list[str]:
    if isinstance(info, mi.EnumType):
        return [str(m.value) for m in info.cls]
    if isinstance(info, mi.LiteralType):
        return [str(v) for v in info.values]
    return []


def configure_run_config(config: RunConfig, sets: dict[str, dict[str, Any]], prompter: Prompter) -> RunConfig:
    """`config` with every provider table (re)configured, in file order."""
    unknown = set(sets) - set(config.providers)
    if unknown:
        api = sorted(unknown)[0]
        raise InvalidRequestError(f"--set {api}.*: this build has no {api} provider.", field="set")
    providers: dict[str, dict[str, Any]] = {}
    for api_name, section in config.providers.items():
        spec = provider_spec(parse_api(api_name), str(section.get("provider_id")))
        if prompter.interactive:
            prompter.say(f"Configuring API: {api_name} ({spec.provider_id})")
        existing = {k: v for k, v in section.items() if k != "provider_id"}
        cls = import_path(spec.config_class)
        values = configure_struct(cls, existing, sets.get(api_name, {}), prompter, api_name)
        providers[api_name] = {"provider_id": spec.provider_id, **msgspec.to_builtins(msgspec.convert(values, cls))}
        serve_guard_model(providers, config.providers, prompter)  # after safety, or after inference if it comes later
    return msgspec.structs.replace(config, providers=providers)


def _guard_model(providers: dict[str, dict[str, Any]]) -> str | None:
    """The Llama Guard model of meta-reference safety's llama_guard_shield in `providers`, if on."""
    safety = providers.get("safety") or {}
    shield = safety.get("llama_guard_shield") if safety.get("provider_id") == "meta-reference" else None
    return resolve_model(shield["model"]).descriptor if shield and shield.get("model") else None


def serve_guard_model(providers: dict[str, dict[str, Any]], before: dict[str, dict[str, Any]], prompter: Prompter) -> None:
    """Make meta-reference inference serve the llama_guard shield's model, which the shield calls.

    The model joins `extra_models` (unless inference serves it already); a guard model that an earlier
    configuration added for the shield (in `before`) leaves it when the shield is turned off or
    changes model. A remote or vendor inference provider is left alone: it serves what it serves.
    """
    inference = providers.get("inference")
    if inference is None or inference.get("provider_id") != "meta-reference" or "safety" in before.keys() - providers.keys():
        return  # no local inference, or safety is not configured yet
    guard, old_guard = _guard_model(providers), _guard_model(before)
    extras = list(inference.get("extra_models") or [])
    served = [resolve_model(m["model"]).descriptor for m in [inference, *extras]]
    if old_guard is not None and old_guard != guard and old_guard in served[1:]:
        extras.pop(served.index(old_guard) - 1)
        if prompter.interactive:
            prompter.say(f"Inference no longer serves {old_guard} (llama_guard_shield does not use it).")
    if guard is not None and guard not in served:
        extras.append(msgspec.to_builtins(MetaReferenceModelConfig(model=guard)))
        if prompter.interactive:
            prompter.say(f"Inference also serves {guard}, the model of llama_guard_shield.")
    inference["extra_models"] = extras or None


def run_configure(path: Path, sets: Sequence[str], yes: bool, ask: Ask = input, say: Say = print) -> Path:
    """Configure the build whose TOML is at `path` and write it back; prints where it went."""
    from llama_cli.secret_input import secret_sets

    config = load_run_config(path)
    prompter = Prompter(ask, say, interactive=not yes)
    config = configure_run_config(config, secret_sets(parse_sets(sets)), prompter)
    save_run_config(config, path)
    say(f"TOML configuration has been written to {display_path(path)}")
    return path
