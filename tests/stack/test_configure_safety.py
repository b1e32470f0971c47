"""configure's safety questions: each answer checked at once, --set/--yes for the same fields, and the
Llama Guard shield's model served by meta-reference inference (added once, removed when unused)."""

from __future__ import annotations

import textwrap

import pytest

from llama_cli.app import main
from llama_cli.configure import Prompter, configure_run_config, parse_sets
from llama_core.config import RunConfig, load_run_config, run_config_path, save_run_config
from llama_core.errors import InvalidRequestError

from .test_configure import Script

GUARDS = "Llama-Guard-3-1B, Llama-Guard-3-8B, Llama-Guard-3-8B:int8"
NO_EXTRAS = dict.fromkeys(("max_seq_len", "max_batch_size", "device", "dtype", "model_parallel_size", "checkpoint_dir", "threads"))


def build(inference: dict | None = None, safety: dict | None = None, provider: str = "meta-reference") -> RunConfig:
    inference = {"provider_id": provider, **({"model": "Llama3.2-1B-Instruct"} if provider == "meta-reference" else {}), **(inference or {})}
    return RunConfig(name="g", distribution_id="local", providers={"inference": inference, "safety": {"provider_id": "meta-reference", **(safety or {})}})


def extras(configured: RunConfig) -> list[str] | None:
    models = configured.providers["inference"].get("extra_models")
    return None if models is None else [m["model"] for m in models]


def test_the_guard_questions_reask_what_the_config_refuses_and_serve_the_guard() -> None:
    answers = [""] * 8 + ["y", "Llama-Guard-3-2B", "Llama3.2-1B-Instruct", "meta-llama/Llama-Guard-3-1B", "S1, S99", "S1, S2", "", "yes",
                          "y", ""]  # fmt: skip
    script = Script(answers)
    configured = configure_run_config(build(), {}, Prompter(script.ask, script.say))
    assert script.text.split("Configuring API: safety (meta-reference)\n")[1] == textwrap.dedent(
        f"""\
        Do you want to configure llama_guard_shield? (y/n): y
        Entering sub-configuration for llama_guard_shield:
        Enter value for model (default: Llama-Guard-3-8B): Llama-Guard-3-2B
        Validation error: model must be a Llama Guard 3 model ({GUARDS}), got 'Llama-Guard-3-2B'
        Enter value for model (default: Llama-Guard-3-8B): Llama3.2-1B-Instruct
        Validation error: model must be a Llama Guard 3 model ({GUARDS}), got 'Llama3.2-1B-Instruct'
        Enter value for model (default: Llama-Guard-3-8B): meta-llama/Llama-Guard-3-1B
        Enter value for excluded_categories (default: []): S1, S99
        Validation error: excluded_categories are codes S1..S14, got S99
        Enter value for excluded_categories (default: []): S1, S2
        Enter value for disable_input_check (default: False): 
        Enter value for disable_output_check (default: False): yes
        Do you want to configure prompt_guard_shield? (y/n): y
        Entering sub-configuration for prompt_guard_shield:
        Enter value for model (default: Prompt-Guard-86M): 
        Inference also serves Llama-Guard-3-1B, the model of llama_guard_shield.
        """  # noqa: W291
    )
    assert configured.providers["safety"]["llama_guard_shield"] == {
        "model": "Llama-Guard-3-1B", "excluded_categories": ["S1", "S2"], "disable_input_check": False, "disable_output_check": True,
    }  # fmt: skip
    assert configured.providers["inference"]["extra_models"] == [{"model": "Llama-Guard-3-1B", **NO_EXTRAS}]


def test_reconfiguring_keeps_one_guard_and_drops_the_one_no_longer_used() -> None:
    guard_1b = {"llama_guard_shield": {"model": "Llama-Guard-3-1B"}}
    before = build({"extra_models": [{"model": "Llama-Guard-3-1B"}]}, guard_1b)
    # Unchanged: nothing said, nothing added twice.
    script = Script([""] * 8 + ["", "", "", "", "", "n"])
    configured = configure_run_config(before, {}, Prompter(script.ask, script.say))
    assert extras(configured) == ["Llama-Guard-3-1B"]
    assert not [line for line in script.lines if line.startswith("Inference")]
    # Another guard: the old one goes, the new one comes.
    script = Script([""] * 8 + ["", "Llama-Guard-3-8B", "", "", "", "n"])
    configured = configure_run_config(before, {}, Prompter(script.ask, script.say))
    assert extras(configured) == ["Llama-Guard-3-8B"]
    assert script.lines[-2:] == ["Inference no longer serves Llama-Guard-3-1B (llama_guard_shield does not use it).",
                                 "Inference also serves Llama-Guard-3-8B, the model of llama_guard_shield."]  # fmt: skip
    # The shield turned off: its model goes, and the list with it.
    script = Script([""] * 8 + ["n", "n"])
    configured = configure_run_config(before, {}, Prompter(script.ask, script.say))
    assert (extras(configured), configured.providers["safety"]["llama_guard_shield"]) == (None, None)
    # A model listed by hand that no shield used stays.
    by_hand = build({"extra_models": [{"model": "Llama-Guard-3-8B"}]})
    configured = configure_run_config(by_hand, {}, Prompter(Script([""] * 8 + ["n", "n"]).ask, print))
    assert extras(configured) == ["Llama-Guard-3-8B"]


def test_a_guard_that_inference_serves_already_is_not_added() -> None:
    configured = configure_run_config(build({"model": "Llama-Guard-3-1B"}), parse_sets(["safety.llama_guard_shield.model=Llama-Guard-3-1B"]),
                                      Prompter(interactive=False))  # fmt: skip
    assert (configured.providers["inference"]["model"], extras(configured)) == ("Llama-Guard-3-1B", None)


def test_a_remote_inference_provider_is_left_alone() -> None:
    configured = configure_run_config(build(provider="remote::ollama"), parse_sets(["safety.llama_guard_shield.model=Llama-Guard-3-1B"]),
                                      Prompter(interactive=False))  # fmt: skip
    assert configured.providers["inference"] == {"provider_id": "remote::ollama", "url": "http://localhost:11434"}


def test_yes_with_sets_covers_the_safety_fields() -> None:
    sets = parse_sets([
        "safety.llama_guard_shield.model=Llama-Guard-3-1B", "safety.llama_guard_shield.excluded_categories=S9",
        "safety.llama_guard_shield.disable_input_check=true", "safety.llama_guard_shield.disable_output_check=false",
        "safety.prompt_guard_shield.model=Prompt-Guard-86M",
    ])  # fmt: skip
    script = Script([])
    configured = configure_run_config(build(), sets, Prompter(script.ask, script.say, interactive=False))
    assert script.lines == []
    assert configured.providers["safety"] == {
        "provider_id": "meta-reference",
        "llama_guard_shield": {"model": "Llama-Guard-3-1B", "excluded_categories": ["S9"], "disable_input_check": True,
                               "disable_output_check": False},
        "prompt_guard_shield": configured.providers["safety"]["prompt_guard_shield"] | {"model": "Prompt-Guard-86M"},
    }  # fmt: skip
    assert extras(configured) == ["Llama-Guard-3-1B"]
    # The further models can be set too, as a JSON list of tables.
    sets = parse_sets(['inference.extra_models=[{"model": "Llama-Guard-3-8B", "max_seq_len": 2048}]'])
    configured = configure_run_config(build(), sets, Prompter(interactive=False))
    assert configured.providers["inference"]["extra_models"] == [{**NO_EXTRAS, "model": "Llama-Guard-3-8B", "max_seq_len": 2048}]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["safety.llama_guard_shield.model=Llama3.2-1B-Instruct"],
         rf"^Invalid safety.llama_guard_shield: model must be a Llama Guard 3 model \({GUARDS}\), got 'Llama3.2-1B-Instruct'$"),
        (["safety.llama_guard_shield.disable_input_check=maybe"],
         r"^--set safety.llama_guard_shield.disable_input_check=maybe: Invalid input. Expected type: bool$"),
        (['inference.extra_models=[{"model": "Llama3.2-1B-Instruct"}]'],
         r"^Invalid inference: Llama3.2-1B-Instruct is listed twice \(model and extra_models\[0\]\); list each model once.$"),
        (["inference.extra_models=Llama-Guard-3-1B"], r"^--set inference.extra_models=Llama-Guard-3-1B: Invalid input. Expected type: "
                                                      r"list\[MetaReferenceModelConfig\] \| None$"),
    ],
    ids=["not-a-guard", "bool", "twice", "not-a-list"],
)
def test_bad_safety_sets_are_one_line_errors(sets: list[str], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        configure_run_config(build(), parse_sets(sets), Prompter(interactive=False))


def test_cli_refuses_a_guard_that_is_no_llama_guard_and_writes_nothing(capsys) -> None:
    path = save_run_config(build(), run_config_path("local", "g"))
    before = path.read_bytes()
    rc = main(["stack", "configure", "local", "--name", "g", "--yes", "--set", "safety.llama_guard_shield.model=Prompt-Guard-86M"])
    out, err = capsys.readouterr()
    assert (rc, out) == (2, "")
    assert err == f"Error: Invalid safety.llama_guard_shield: model must be a Llama Guard 3 model ({GUARDS}), got 'Prompt-Guard-86M'\n"
    assert path.read_bytes() == before
    rc = main(["stack", "configure", "local", "--name", "g", "--yes", "--set", "safety.llama_guard_shield.model=Llama-Guard-3-1B"])
    assert rc == 0
    written = load_run_config(path).providers
    assert written["inference"]["extra_models"] == [{"model": "Llama-Guard-3-1B"}]  # unset fields are not written
    assert written["safety"]["llama_guard_shield"]["model"] == "Llama-Guard-3-1B"


def test_a_model_inference_serves_beside_is_refused_as_its_main_model_at_once() -> None:
    script = Script(["Llama-Guard-3-1B", "Llama3.2-3B-Instruct"] + [""] * 7 + ["n", "n"])
    configured = configure_run_config(build({"extra_models": [{"model": "Llama-Guard-3-1B"}]}), {}, Prompter(script.ask, script.say))
    assert script.lines[1:4] == [
        "Enter value for model (existing: Llama3.2-1B-Instruct): Llama-Guard-3-1B",
        "Validation error: Llama-Guard-3-1B is listed twice (model and extra_models[0]); list each model once.",
        "Enter value for model (existing: Llama3.2-1B-Instruct): Llama3.2-3B-Instruct",
    ]
    assert (configured.providers["inference"]["model"], extras(configured)) == ("Llama3.2-3B-Instruct", ["Llama-Guard-3-1B"])


def test_a_hand_edited_list_no_answer_can_fix_is_a_clear_error_not_a_loop() -> None:
    broken = build({"extra_models": [{"model": "Llama-Guard-3-1B"}, {"model": "Llama-Guard-3-1B"}]})
    message = (r"^Invalid inference: Llama-Guard-3-1B is listed twice \(extra_models\[0\] and extra_models\[1\]\); list each model once. "
               r"Correct it with --set inference.extra_models=VALUE.$")
    with pytest.raises(InvalidRequestError, match=message):
        configure_run_config(broken, {}, Prompter(Script([""] * 8).ask, print))
    fixed = configure_run_config(broken, parse_sets(['inference.extra_models=[{"model": "Llama-Guard-3-1B"}]']),
                                 Prompter(Script([""] * 8 + ["n", "n"]).ask, print))  # fmt: skip
    assert extras(fixed) == ["Llama-Guard-3-1B"]
