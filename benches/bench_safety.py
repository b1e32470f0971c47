"""What the safety shields add on top of the check they wrap: p50 latency of each shield's `run`
beside the bare call of the same check, in the same run, interleaved so both see the same load.

    code_scanner_guard   bare: `await CodeShield.scan_code(code, language)` on this loop
                         shield: CodeScannerShield.run (fence parsing, a worker thread with its own
                         loop, our temp files, per-language analysis)
    jailbreak_shield     bare: the classifier's forward pass on the text's windows, tokenized beforehand
    injection_shield     shield: JailbreakShield / InjectionShield.run (tokenizing into windows, a
                         worker thread, softmax, the verdict)
    run_shields          where llama_core.providers.safety.meta_reference is installed: the same
                         shields through MetaReferenceSafety.run_shields (on_violation_action, the
                         concurrent task group), against the same bare call

Prompt Guard runs ~/.llama/checkpoints/Prompt-Guard-86M when it is downloaded, else random weights in
its shape (12 layers of 768, relative attention; a small vocabulary, which costs nothing per token) in
a temp folder. One line per configuration: the two p50s and the shield's overhead, the median over pairs of
run/bare - 1. Goal: under 10%.

    python benches/bench_safety.py [--runs 15] [--threads 2] [--only code|prompt]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llama_core.config import PromptGuardShieldConfig, SafetyConfig  # noqa: E402
from llama_core.types.messages import UserMessage  # noqa: E402
from llama_core.types.safety import RunShieldsRequest, ShieldDefinition  # noqa: E402

CODE = {  # label: (message text, the language the fence names, or None)
    "md5 (regex), python": ("```python\nimport hashlib\nh = hashlib.md5(b'x').hexdigest()\n```", "python"),
    "pickle (semgrep), python": ("```python\nimport pickle\n\ndef load(d):\n    return pickle.loads(d)\n```", "python"),
    "strcpy (semgrep), c": ("```c\n#include <string.h>\nvoid f(const char *s) { char b[8]; strcpy(b, s); }\n```", "c"),
    "benign, no fence": ("def add(a, b):\n    return a + b\n", None),
}
WORDS = [f"w{i}" for i in range(2000)]
PROMPTS = {"20 tokens": 20, "500 tokens (1 window)": 500, "2000 tokens (5 windows)": 2000}


def p50_pair(bare: Callable[[], Awaitable[Any]], shield: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, float, float]:
    """p50 (ms) of `bare` and of `shield`, and the median of each pair's shield/bare - 1 (the two of a
    pair run back to back, alternating which goes first, so load that drifts hits both alike)."""

    async def timed(call: Callable[[], Awaitable[Any]]) -> float:
        start = time.perf_counter()
        await call()
        return (time.perf_counter() - start) * 1e3

    async def pairs() -> tuple[list[float], list[float]]:
        await bare(), await shield()  # warm-up: imports, loads, first-call caches
        a, b = [], []
        for i in range(runs):
            if i % 2:
                b.append(await timed(shield)), a.append(await timed(bare))
            else:
                a.append(await timed(bare)), b.append(await timed(shield))
        return a, b

    a, b = asyncio.run(pairs())
    return statistics.median(a), statistics.median(b), statistics.median(y / x - 1 for x, y in zip(a, b))


def line(shield: str, label: str, bare_name: str, bare: float, ours: float, overhead: float) -> None:
    print(f"{shield:<19} {label:<26} {bare_name} p50 {bare:8.2f} ms   run p50 {ours:8.2f} ms   "
          f"overhead (median of pairs) {100 * overhead:+6.1f}%", flush=True)  # fmt: skip


def provider() -> Any:
    """MetaReferenceSafety when safety-core's provider is installed, else None."""
    if importlib.util.find_spec("llama_core.providers.safety.meta_reference") is None:
        return None
    from llama_core.providers.safety.meta_reference import MetaReferenceSafety

    return MetaReferenceSafety


def bench_code(runs: int) -> None:
    from llama_core.providers.safety.code_scanner import CodeScannerShield, load_codeshield

    load_codeshield()  # imports codeshield with our oss settings and prescan fix: the bare call gets them too
    from codeshield.cs import CodeShield
    from codeshield.insecure_code_detector.languages import Language

    shield = CodeScannerShield(None, None)
    definition = ShieldDefinition(shield_type="code_scanner_guard")
    safety = provider()
    print("# code_scanner_guard: codeshield 1.0.1 on semgrep-core; bare = CodeShield.scan_code", flush=True)
    for label, (text, language) in CODE.items():
        code = text.split("\n", 1)[1].rsplit("```", 1)[0] if language else text
        messages = [UserMessage(content=text)]
        bare = lambda: CodeShield.scan_code(code, Language(language) if language else None)  # noqa: E731
        ours = lambda: shield.run(messages, definition)  # noqa: E731
        line("code_scanner_guard", label, "scan_code", *p50_pair(bare, ours, runs))
        if safety is not None:
            line("  run_shields", label, "scan_code", *p50_pair(bare, run_shields(safety, SafetyConfig(), messages, definition), runs))


def run_shields(safety_class: Any, config: SafetyConfig, messages: list[Any], definition: ShieldDefinition) -> Callable[[], Awaitable[Any]]:
    request = RunShieldsRequest(messages=messages, shields=[definition])
    safety = safety_class(config, None)

    async def call() -> Any:  # built and kept by the provider after the first (warm-up) call
        return await safety.run_shields(request)

    return call


def random_prompt_guard(folder: Path) -> None:
    """Random weights in Prompt-Guard-86M's shape and a word-level tokenizer, in Hugging Face layout."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification, PreTrainedTokenizerFast

    from llama_core.models import resolve_model
    from llama_core.providers.safety.prompt_guard import MDEBERTA_V3

    vocab = {w: i for i, w in enumerate(["[PAD]", "[CLS]", "[SEP]", "[UNK]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    PreTrainedTokenizerFast(tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]",
                            model_max_length=512).save_pretrained(folder)  # fmt: skip
    torch.manual_seed(0)
    config = DebertaV2Config(**{**resolve_model("Prompt-Guard-86M").arch_args, **MDEBERTA_V3, "vocab_size": len(vocab)})
    DebertaV2ForSequenceClassification(config).save_pretrained(folder)


def bench_prompt(runs: int) -> None:
    from llama_core.paths import model_checkpoint_dir
    from llama_core.providers.safety.prompt_guard import InjectionShield, JailbreakShield, load_classifier

    real = model_checkpoint_dir("Prompt-Guard-86M")
    scratch = None
    if not (real / "model.safetensors").is_file():
        scratch = tempfile.TemporaryDirectory(prefix="bench-safety-")
        os.environ["LLAMA_STACK_CONFIG_DIR"] = scratch.name
        random_prompt_guard(model_checkpoint_dir("Prompt-Guard-86M"))
    classifier = load_classifier(model_checkpoint_dir("Prompt-Guard-86M"))
    words = WORDS if scratch else ["hello", "world", "please", "summarise", "this", "page"]
    where = "random weights in Prompt-Guard-86M's shape" if scratch else str(real)
    print(f"# Prompt Guard: {where}, {classifier.device}, torch threads {__import__('torch').get_num_threads()}; "
          "bare = the forward pass on the text's windows", flush=True)  # fmt: skip
    config = PromptGuardShieldConfig()
    safety = provider()
    for shield_class, name in ((JailbreakShield, "jailbreak_shield"), (InjectionShield, "injection_shield")):
        shield, definition = shield_class(config, None), ShieldDefinition(shield_type=name)
        for label, n in PROMPTS.items():
            text = " ".join(words[i % len(words)] for i in range(n))
            windows = classifier.windows(text)  # tokenized once, outside the bare timing

            async def bare(windows: dict[str, Any] = windows) -> Any:
                return classifier.logits(windows)

            messages = [UserMessage(content=text)]
            line(name, label, "forward  ", *p50_pair(bare, lambda: shield.run(messages, definition), runs))
            if safety is not None:
                ours = run_shields(safety, SafetyConfig(prompt_guard_shield=config), messages, definition)
                line("  run_shields", label, "forward  ", *p50_pair(bare, ours, runs))
    if safety is None:
        print("# run_shields rows: need llama_core.providers.safety.meta_reference (not installed here)", flush=True)
    if scratch is not None:
        scratch.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="timed calls of each (bare, shield) per configuration")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--only", choices=["code", "prompt"])
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-safety-tmp-") as tmp:
        tempfile.tempdir = tmp  # codeshield's scan_code leaves temp files; keep them here
        if args.only in (None, "code"):
            bench_code(args.runs)
        if args.only in (None, "prompt"):
            bench_prompt(args.runs)


if __name__ == "__main__":
    main()
