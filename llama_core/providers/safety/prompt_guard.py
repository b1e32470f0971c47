"""`jailbreak_shield` and `injection_shield`: Prompt-Guard-86M, a DeBERTa-v2 sequence classifier.

    shield = JailbreakShield(PromptGuardShieldConfig(threshold=0.9), stack)
    await shield.run(messages, definition)
    -> ShieldResponse(is_violation=True, violation_type="prompt_injection:malicious=0.9978",
                      violation_return_message="Sorry, I cannot do this.")

The classifier reads the last message (its content, and a user turn's RAG context after a blank
line, as the model would see it) in windows of 512 tokens (the model's positions) that overlap by
64, so a phrase cut by one window's end is whole in the next; each window's labels BENIGN,
INJECTION, JAILBREAK get softmax(logits / 1.0), and the window that scores highest is the verdict:

    jailbreak_shield   score P(JAILBREAK)                  violation_type prompt_injection:malicious=<p>
    injection_shield   score P(INJECTION) + P(JAILBREAK)   violation_type prompt_injection:embedded=<p>,malicious=<p>

a violation when the score is above `threshold` (PromptGuardShieldConfig, default 0.9). Probabilities
are shown with 4 decimals (the reference printed Python's float repr). The reference had no windows:
its tokenizer call fed the model everything (past 512 tokens that fails), and Meta's recipe truncated
at 512, so an injection after the first 512 tokens went unseen.

The checkpoint is `~/.llama/checkpoints/<model>` in Hugging Face layout: model.safetensors and the
tokenizer files, as `llama download` fetches them from Meta (no config.json: the config is then the
registry's arch args plus mDeBERTa-v3's attention settings) or from Hugging Face (with config.json).
It is loaded once per process and folder, on the first request, and shared by both shields; it runs
on a worker thread (CUDA when there is one), never on the event loop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from llama_core.errors import CheckpointError, InvalidRequestError, shown
from llama_core.paths import model_checkpoint_dir
from llama_core.types.common import content_text
from llama_core.types.messages import Message, UserMessage
from llama_core.types.safety import ShieldDefinition, ShieldResponse

if TYPE_CHECKING:
    import torch

    from llama_core.config import PromptGuardShieldConfig
    from llama_core.stack import Stack

VIOLATION_MESSAGE = "Sorry, I cannot do this."
LABELS = ("BENIGN", "INJECTION", "JAILBREAK")
WINDOW_TOKENS = 512  # max_position_embeddings of Prompt-Guard-86M
OVERLAP_TOKENS = 64
BATCH_WINDOWS = 16  # windows per forward pass: bounds the memory a very long message takes
TEMPERATURE = 1.0

# Prompt-Guard-86M is mDeBERTa-v3-base: these settings are in its config.json but not in the
# registry's arch args, which is all there is for a checkpoint downloaded from Meta.
MDEBERTA_V3 = {
    "relative_attention": True, "pos_att_type": ["p2c", "c2p"], "position_biased_input": False,
    "share_att_key": True, "norm_rel_ebd": "layer_norm", "max_relative_positions": -1, "type_vocab_size": 0,
    "hidden_act": "gelu", "id2label": dict(enumerate(LABELS)), "label2id": {label: i for i, label in enumerate(LABELS)},
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Classifier:
    """A loaded Prompt Guard: `probabilities(text)` is a [windows, 3] tensor (BENIGN, INJECTION, JAILBREAK)."""

    tokenizer: Any
    model: Any
    device: str

    def windows(self, text: str) -> dict[str, torch.Tensor]:
        """`text` as padded windows of WINDOW_TOKENS (special tokens included), OVERLAP_TOKENS shared."""
        encoded = self.tokenizer(
            text, truncation=True, max_length=WINDOW_TOKENS, stride=OVERLAP_TOKENS,
            return_overflowing_tokens=True, padding=True, return_tensors="pt",
        )  # fmt: skip
        return {k: encoded[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded}

    def logits(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The model's forward pass on a batch of windows: [windows, 3] logits, on the CPU."""
        import torch

        with torch.inference_mode():
            return self.model(**{k: v.to(self.device) for k, v in inputs.items()}).logits.float().cpu()

    def probabilities(self, text: str) -> torch.Tensor:
        import torch

        inputs = self.windows(text)
        n = inputs["input_ids"].shape[0]
        logits = [self.logits({k: v[i : i + BATCH_WINDOWS] for k, v in inputs.items()}) for i in range(0, n, BATCH_WINDOWS)]
        return torch.softmax(torch.cat(logits) / TEMPERATURE, dim=-1)


_classifiers: dict[Path, Classifier] = {}
_loading = threading.Lock()


def load_classifier(folder: Path) -> Classifier:
    """The classifier in `folder`, loaded on the first call for it (once per process; blocking).

    Raises CheckpointError naming the folder and `llama download` when it is missing or unreadable.
    """
    folder = folder.expanduser().resolve()
    with _loading:
        if folder not in _classifiers:
            _classifiers[folder] = _load(folder)
        return _classifiers[folder]


def _load(folder: Path) -> Classifier:
    download = f"Download it with `llama download --model-id {folder.name}`."
    if not (folder / "model.safetensors").is_file() and not (folder / "pytorch_model.bin").is_file():
        what = "is not there" if not folder.exists() else "has no model.safetensors"
        raise CheckpointError(f"The Prompt Guard checkpoint folder {folder} {what}. {download}")
    import torch
    from transformers import AutoTokenizer, DebertaV2Config, DebertaV2ForSequenceClassification
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a server's log, not a terminal
    try:
        if (folder / "config.json").is_file():
            config = DebertaV2Config.from_pretrained(folder)
        else:
            from llama_core.models import resolve_model

            config = DebertaV2Config(**{**resolve_model("Prompt-Guard-86M").arch_args, **MDEBERTA_V3})
        embedding = _embedding_shape(folder)
        if embedding not in (None, (config.vocab_size, config.hidden_size)):  # before building 1 GB of model
            raise CheckpointError(f"{folder} is not a Prompt Guard checkpoint (word embeddings {'×'.join(map(str, embedding))}, its config "
                                  f"says {config.vocab_size}×{config.hidden_size}). {download}")  # fmt: skip
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model, info = DebertaV2ForSequenceClassification.from_pretrained(folder, config=config, output_loading_info=True)
    except CheckpointError:
        raise
    except Exception as e:  # transformers and safetensors raise OSError, ValueError, their own errors...
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(f"Cannot load Prompt Guard from {folder}: {type(e).__name__}: {shown(first_line)}. {download}") from e
    loaded = {"missing": info["missing_keys"], "unexpected": info["unexpected_keys"],
              "mismatched": [key[0] for key in info.get("mismatched_keys", [])]}  # fmt: skip
    problems = [f"{kind} {', '.join(sorted(keys)[:3])}" for kind, keys in loaded.items() if keys]
    if config.num_labels != len(LABELS) or problems:
        found = "; ".join(problems) or f"{config.num_labels} labels, not {len(LABELS)}"
        raise CheckpointError(f"{folder} is not a Prompt Guard checkpoint ({shown(found)}). {download}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return Classifier(tokenizer, model.to(device).eval(), device)


def _embedding_shape(folder: Path) -> tuple[int, ...] | None:
    """The shape of the word embedding in the folder's model.safetensors (read from its header only)."""
    if not (folder / "model.safetensors").is_file():
        return None
    from safetensors import safe_open

    with safe_open(folder / "model.safetensors", "pt") as f:
        name = "deberta.embeddings.word_embeddings.weight"
        return tuple(f.get_slice(name).get_shape()) if name in f.keys() else None


def last_text(messages: list[Message]) -> str:
    """What the classifier reads: the last message's content, a user turn's context after a blank line."""
    if not messages:
        raise InvalidRequestError("Give the shields at least one message to judge.", field="messages")
    last = messages[-1]
    text = content_text(last.content)
    if isinstance(last, UserMessage) and last.context is not None:
        text = f"{text}\n\n{content_text(last.context)}"
    return text


class PromptGuardShield:
    """What both Prompt Guard shields share; a subclass says which score it judges by."""

    score_labels: ClassVar[tuple[str, ...]]  # the labels whose probabilities add up to the score
    score_names: ClassVar[tuple[tuple[str, str], ...]]  # (name in violation_type, label) in order

    def __init__(self, section: PromptGuardShieldConfig, stack: Stack | None) -> None:
        del stack
        self.folder = model_checkpoint_dir(section.model)
        self.threshold = section.threshold

    async def run(self, messages: list[Message], definition: ShieldDefinition) -> ShieldResponse:
        """The verdict on the last message. Raises InvalidRequestError for no messages and
        CheckpointError when the checkpoint is missing or unreadable."""
        text = last_text(messages)
        probabilities = await anyio.to_thread.run_sync(self.probabilities, text)
        scores = probabilities[:, [LABELS.index(label) for label in self.score_labels]].sum(dim=-1)
        best = int(scores.argmax())
        if not float(scores[best]) > self.threshold:
            return ShieldResponse(shield_type=definition.shield_type, is_violation=False)
        named = ",".join(f"{name}={float(probabilities[best, LABELS.index(label)]):.4f}" for name, label in self.score_names)
        return ShieldResponse(
            shield_type=definition.shield_type,
            is_violation=True,
            violation_type=f"prompt_injection:{named}",
            violation_return_message=VIOLATION_MESSAGE,
        )

    def probabilities(self, text: str) -> torch.Tensor:
        return load_classifier(self.folder).probabilities(text)


class JailbreakShield(PromptGuardShield):
    """`jailbreak_shield`: a violation when P(JAILBREAK) of some window is above the threshold."""

    score_labels = ("JAILBREAK",)
    score_names = (("malicious", "JAILBREAK"),)


class InjectionShield(PromptGuardShield):
    """`injection_shield`: a violation when P(INJECTION) + P(JAILBREAK) of some window is above the threshold."""

    score_labels = ("INJECTION", "JAILBREAK")
    score_names = (("embedded", "INJECTION"), ("malicious", "JAILBREAK"))
