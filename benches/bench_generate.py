"""Generation speed of our engine beside llama.cpp on the demo model's own GGUF, or beside
transformers' `generate` on the same weights, in the same run.

Against llama.cpp (--against llama.cpp, the default on the demo model; needs llama-cpp-python, the
`bench` extra): llama.cpp and each of our --modes run in fresh processes, interleaved for --rounds
(the build machines are shared: the best of each is kept), on SmolLM2-135M-Instruct's Q4_1 GGUF
and its conversion. llama.cpp's prefill and decode tok/s come from its own perf counters (decode
only: no load, no prefill, no sampling); ours time the prefill, and Batch.step for decode (sampling
included). One line per configuration with its ratio to llama.cpp; for each quantized mode, how many
of fp32's greedy tokens it reproduces and its greedy text (a chat prompt, --quality-tokens).

    python benches/bench_generate.py [--modes fp32,int8,gguf] [--threads 2] [--rounds 3]
                                     [--prompt-len 128] [--new-tokens 128]

Against transformers (--against transformers, the default with --model-dir):

    python benches/bench_generate.py [--model-dir DIR] [--dtypes fp32,bf16] [--threads 2]
                                     [--prompt-len 128] [--new-tokens 32] [--batch 8] [--device cpu|cuda]

There, for each dtype, ours and transformers each run in fresh processes (so peak memory is their own),
interleaved for --rounds and the best of each kept (the build machines are shared), on
the demo model (SmolLM2-135M-Instruct, converted once into a cache) or --model-dir. Measured:
prefill tok/s (one prompt of --prompt-len), decode tok/s at batch 1, aggregate decode tok/s at
--batch, peak RSS (on CUDA: peak GPU memory allocated); plus the share of the bandwidth roofline
batch-1 decode reached: tok/s x bytes read per token (weights except the embedding table, plus the
KV cache) / the read bandwidth probed just before and after that decode in its own process, the
median over the chunks of every decode (decode_with_bandwidth). As a check on the same weights, how many of the batch-1 greedy tokens match
transformers' (all of them in fp32; bf16 rounding may part the two after a near-tie).

benches/random_checkpoint.py writes random weights of a registry model's shape (e.g. a
Llama-3.2-1B-shaped checkpoint) for --model-dir.

Ours alone (--against none), as benches/cuda_check.sh runs it on a GPU: for each dtype and each
--graphs setting (LLAMA_CUDA_GRAPHS on or off: the decode step captured in CUDA graphs, or the
dynamic forward), in fresh processes, one line: prefill, batch-1 decode tok/s and its share of the
roofline (as above), the first decode's extra seconds (compile and capture), peak memory, and
how many greedy tokens equal the graphs-off run's.

    python benches/bench_generate.py --against none --model-dir DIR --device cuda --dtypes bf16,int8
                                     [--graphs on,off] [--prompt-len 128] [--new-tokens 128]

int8 is weight-only (per-row scales, activations in fp32 on CPU): beside it, transformers runs the
float weights.

Goals (issue 3): batch-1 fp32 decode >= 2x transformers and >= 60% of the roofline; batch 8 >= 4x batch 1.
Goals (issue 17): our best mode >= 1.0x llama.cpp's decode on the demo GGUF at 2 threads; fp32 >= 60%
of its roofline.
A second line per dtype: batch-1 decode under a JSON-schema constraint (engine/grammar.py) beside the
same decode without one, in the same process (issue 16's goal: at most 10% more time per token).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # engine.hf_reference: the Meta -> HF conversion the tests use too


def default_model_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "llama-toolchain" / "SmolLM2-135M-Instruct"


def best_of(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Shortest wall time of `repeats` calls (the machine is shared: the minimum is the signal)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def prompts(n: int, length: int, vocab: int) -> list[list[int]]:
    """`n` different deterministic prompts of `length` ordinary token ids."""
    return [[100 + (i * 7919 + j * 104729) % (vocab - 200) for i in range(length)] for j in range(n)]


def synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> Callable[[], None]:
    """`fn` followed by a device sync, so that wall time covers the queued kernels."""
    def run() -> None:
        fn()
        synchronize(device)
    return run


class BandwidthProbe:
    """Read bandwidth as torch.sum over a buffer far past the caches (GPU L2 is 50-60 MB), in GB/s.

    The roofline's denominator. Measured once per run it swung 23-66 GB/s between runs on the shared
    build machines, so it is probed between the chunks of the decode it judges, in the same process
    (`decode_with_bandwidth`): load that slows a chunk slows the probes on either side of it too.
    """

    def __init__(self, threads: int, device: str) -> None:
        import torch

        torch.set_num_threads(threads)
        self.device = device
        self.buffer = torch.ones((1024 if device == "cuda" else 64) * 1024 * 1024, device=device)

    def gbs(self, repeats: int = 2) -> float:
        return self.buffer.numel() * 4 / best_of(timed(self.buffer.sum, self.device), repeats) / 1e9


def decode_with_bandwidth(start: Callable[[], Callable[[], Any]], new: int, threads: int, device: str,
                          repeats: int = 2, chunk: int = 16) -> dict[str, Any]:
    """Batch-1 decode tok/s, the best of `repeats` decodes of `new` steps (`start()` prefills and
    returns the step), timed in chunks of `chunk` steps with a bandwidth probe between chunks; each
    chunk's (tok/s, GB/s of the faster probe beside it) goes to "paired". Peak memory is read
    before the probe's buffer exists."""
    rss = peak_memory_mb(device)
    probe = BandwidthProbe(threads, device)
    best, pairs = 0.0, []
    for _ in range(repeats):
        step = start()
        synchronize(device)
        before, total = probe.gbs(), 0.0
        for done in range(0, new, chunk):
            n = min(chunk, new - done)
            seconds = best_of(timed(lambda: [step() for _ in range(n)], device), 1)
            after = probe.gbs()
            pairs.append((n / seconds, max(before, after)))
            before, total = after, total + seconds
        best = max(best, new / total)
    return {"decode1": best, "paired": pairs, "rss_mb": rss}


# ---- one engine in one process --------------------------------------------------------------------


def started(model: Any, prompt: list[int], new: int) -> Callable[[], Any]:
    """A batch of one greedy sequence, prefilled: its step, to be called `new` times."""
    from llama_core.engine.generation import Batch
    from llama_core.engine.messages import GenParams

    batch = Batch(model)
    batch.add(0, prompt, GenParams(max_tokens=new + 1))
    return batch.step


def greedy_run(model: Any, prompt: list[int], new: int, device: str) -> tuple[float, list[int]]:
    """Seconds of `new` greedy decode steps after the prompt (its prefill not timed), and the tokens:
    the prefill's, then the steps'."""
    from llama_core.engine.generation import Batch
    from llama_core.engine.messages import GenParams

    batch = Batch(model)
    first = batch.add(0, prompt, GenParams(max_tokens=new + 1)).token
    synchronize(device)
    start = time.perf_counter()
    tokens = [batch.step()[0].token for _ in range(new)]
    synchronize(device)
    return time.perf_counter() - start, [first, *tokens]


def run_ours(model_dir: Path, dtype: str, prompt_len: int, new: int, batch: int, device: str) -> dict[str, Any]:
    import torch

    from llama_core.engine.checkpoint import load_model
    from llama_core.engine.generation import Batch, prefill
    from llama_core.engine.messages import GenParams
    from llama_core.engine.parallel import init_model_parallel

    init_model_parallel(backend="nccl" if device == "cuda" else "gloo")
    model, _ = load_model(model_dir, max_seq_len=prompt_len + new + 8, max_batch_size=batch, dtype=dtype, device=device)
    ps = prompts(batch, prompt_len, model.args.vocab_size)
    greedy = GenParams(max_tokens=new + 1)
    with torch.inference_mode():
        t_prefill = best_of(timed(lambda: prefill(model, torch.tensor(ps[0], device=device), 0), device))
    tokens: list[int] = []

    def decode(n_seqs: int) -> float:
        b = Batch(model)
        first = [b.add(j, ps[j], greedy).token for j in range(n_seqs)]
        synchronize(device)
        start = time.perf_counter()
        steps = [b.step() for _ in range(new)]
        synchronize(device)
        elapsed = time.perf_counter() - start
        tokens[:] = [first[0]] + [step[0].token for step in steps]
        return elapsed

    decode(1)  # warm-up, and the greedy tokens; decode() times its steps only, not the prefill in add()
    greedy_tokens = list(tokens)
    tb = min(decode(batch) for _ in range(2))
    json_tps, free_tps = constrained_decode(model, model_dir, ps[0], new, device)
    threads = torch.get_num_threads()
    return {"prefill": prompt_len / t_prefill, "decodeB": batch * new / tb, "tokens": greedy_tokens,
            "json1": json_tps, "free1": free_tps} | decode_with_bandwidth(lambda: started(model, ps[0], new), new, threads, device)


# A reply that may run long: a constrained sequence must not end (its grammar complete) in a few steps.
JSON_SCHEMA = {"type": "object", "properties": {"notes": {"type": "array", "items": {"type": "string"}}}, "required": ["notes"]}


def constrained_decode(model: Any, model_dir: Path, prompt: list[int], new: int, device: str) -> tuple[float, float]:
    """Batch-1 decode tok/s under a JSON-schema grammar, and without one: the median step of each
    over 5 interleaved runs, in CPU time of this process on one thread (a grammar may end its
    sequence before `new`; on a shared machine the wall time of a step is mostly the other
    tenants', and a second OpenMP thread's spin-waits count as CPU time). On CUDA the sync waits
    in CPU time too."""
    import statistics

    import torch

    from llama_core.engine.generation import Batch
    from llama_core.engine.messages import GenParams
    from llama_core.prompt.constraints import json_schema_grammar
    from llama_core.tokenizer import Tokenizer

    stops = frozenset(Tokenizer.from_file(model_dir).stop_tokens)
    constrained = GenParams(max_tokens=new + 1, stop_tokens=stops, grammar=json_schema_grammar(JSON_SCHEMA))
    free = GenParams(max_tokens=new + 1)

    def steps(params: GenParams) -> list[float]:
        b = Batch(model, tokenizer_dir=str(model_dir))
        b.add(0, prompt, params)
        times = []
        while len(b):  # CPU time of the process: what the step costs, less the other tenants' share
            start = time.process_time()
            b.step()
            synchronize(device)
            times.append(time.process_time() - start)
        return times

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        steps(constrained)  # the grammar's tokenizer is built once per process: not a decode cost
        times: dict[str, list[float]] = {"json": [], "free": []}
        for _ in range(5):
            times["json"] += steps(constrained)
            times["free"] += steps(free)
    finally:
        torch.set_num_threads(threads)
    return 1 / statistics.median(times["json"]), 1 / statistics.median(times["free"])


def run_hf(model_dir: Path, dtype: str, prompt_len: int, new: int, batch: int, device: str) -> dict[str, Any]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from engine.hf_reference import hf_config, to_hf_state_dict
    from llama_core.engine.args import ModelArgs
    from llama_core.engine.checkpoint import DTYPES, read_shard

    args = ModelArgs.from_file(model_dir / "params.json")
    config = {k: v for k, v in hf_config(args).items() if k not in ("architectures", "model_type")}
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**config)).eval()
    sd = to_hf_state_dict(args, read_shard(model_dir / "consolidated.00.pth"))
    model.load_state_dict({k: v.to(device, DTYPES[hf_dtype(dtype, device)]) for k, v in sd.items()}, strict=False, assign=True)
    if args.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.model.rotary_emb = type(model.model.rotary_emb)(config=model.config).to(device)
    ps = torch.tensor(prompts(batch, prompt_len, args.vocab_size), device=device)

    def gen(rows: int, n: int) -> Any:
        return model.generate(ps[:rows], max_new_tokens=n, min_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0)

    with torch.inference_mode():
        t_prefill = best_of(timed(lambda: model(ps[:1]), device))
        t1 = best_of(timed(lambda: gen(1, new + 1), device), 2) - best_of(timed(lambda: gen(1, 1), device), 2)
        tb = best_of(timed(lambda: gen(batch, new + 1), device), 2) - best_of(timed(lambda: gen(batch, 1), device), 2)
        tokens = gen(1, new + 1)[0, prompt_len:].tolist()
    return {"prefill": prompt_len / t_prefill, "decode1": new / t1, "decodeB": batch * new / tb, "tokens": tokens}


# ---- ours alone, graphs on and off (--against none) -------------------------------------------------


def decode_path(model: Any) -> str:
    """Which decode step this model runs: the CPU's native op, the CUDA graphs (of the compiled
    step, the uncompiled one, or failed: the dynamic forward), or the dynamic forward."""
    from llama_core.engine import kernels

    if model._step_weights is not None and kernels.cpu_kernels_available():
        return "native step"
    graphs = model._graphs
    if graphs is None:
        return "dynamic forward"
    if graphs.failed:
        return "graphs failed: dynamic forward"
    return "graphs of the compiled step" if graphs.compiled else "graphs of the uncompiled step"


def run_ours_alone(model_dir: Path, dtype: str, prompt_len: int, new: int, device: str) -> dict[str, Any]:
    """Prefill tok/s, the first greedy decode's extra seconds over the second (compile and capture
    on CUDA), batch-1 decode as decode_with_bandwidth measures it, the greedy tokens, the path."""
    import torch

    from llama_core.engine.checkpoint import load_model
    from llama_core.engine.generation import prefill
    from llama_core.engine.parallel import init_model_parallel

    init_model_parallel(backend="nccl" if device == "cuda" else "gloo")
    model, _ = load_model(model_dir, max_seq_len=prompt_len + new + 8, max_batch_size=1, dtype=dtype, device=device)
    prompt = prompts(1, prompt_len, model.args.vocab_size)[0]
    with torch.inference_mode():
        t_prefill = best_of(timed(lambda: prefill(model, torch.tensor(prompt, device=device), 0), device))

    first, tokens = greedy_run(model, prompt, new, device)
    warm = first - greedy_run(model, prompt, new, device)[0]
    decoded = decode_with_bandwidth(lambda: started(model, prompt, new), new, torch.get_num_threads(), device)
    return {"prefill": prompt_len / t_prefill, "tokens": tokens, "warmup_s": warm, "path": decode_path(model)} | decoded


def ours_alone(model_dir: Path, a: argparse.Namespace) -> None:
    """One line per dtype and --graphs setting, each in fresh processes, interleaved for --rounds."""
    where = torch_device_name(a.device) if a.device == "cuda" else f"cpu, {a.threads} threads"
    print(f"model {model_dir.name} on {where}, prompt {a.prompt_len}, {a.new_tokens} new tokens, batch 1", flush=True)
    memory = "peak GPU memory" if a.device == "cuda" else "peak RSS"
    settings = a.graphs.split(",")
    for dtype in a.dtypes.split(","):
        runs: dict[str, list[dict[str, Any]]] = {g: [] for g in settings}
        for _ in range(a.rounds):  # interleaved, so every setting sees the same drift in machine load
            for g in settings:
                runs[g].append(measure("ours-alone", model_dir, dtype, a, {"LLAMA_CUDA_GRAPHS": "0" if g == "off" else "1"}))
        best = {g: best_run(r) for g, r in runs.items()}
        bytes_read = bytes_per_token(model_dir, dtype, a.prompt_len + a.new_tokens // 2, a.device)
        base = best.get("off")
        for g, r in best.items():
            same = ""
            if base is not None and g != "off":
                same = f" | greedy tokens equal to graphs-off's {matching_prefix(r['tokens'], base['tokens'])}/{len(base['tokens'])}"
            print(f"{model_dir.name} {dtype} graphs {g} ({r['path']}): prefill {r['prefill']:.0f} tok/s | decode b1 "
                  f"{r['decode1']:.1f} tok/s ({roofline_share(r['paired'], bytes_read)}) | first decode {r['warmup_s']:+.1f} s "
                  f"| {memory} {r['rss_mb']:.0f} MB{same}", flush=True)


# ---- against llama.cpp on the demo model's GGUF ----------------------------------------------------

QUALITY_PROMPT = "What is the capital of France? Answer in two sentences."


def quality_prompt(model_dir: Path) -> list[int]:
    """The chat prompt the greedy-quality check continues, as the demo model's chat template writes it."""
    from tokenizers import Tokenizer

    template = (model_dir / "chat_template.jinja").read_text()
    from jinja2 import Template

    text = Template(template).render(messages=[{"role": "user", "content": QUALITY_PROMPT}], add_generation_prompt=True)
    return Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode(text, add_special_tokens=False).ids


def run_ours_vs_llamacpp(model_dir: Path, mode: str, prompt_len: int, new: int, quality_tokens: int) -> dict[str, Any]:
    """Our prefill and batch-1 decode tok/s in one mode, and its greedy tokens after the chat prompt."""
    import torch

    from llama_core.engine.checkpoint import load_model
    from llama_core.engine.generation import prefill
    from llama_core.engine.parallel import init_model_parallel

    init_model_parallel(backend="gloo")
    chat = quality_prompt(model_dir)
    model, _ = load_model(model_dir, max_seq_len=max(prompt_len + new, len(chat) + quality_tokens) + 8, dtype=mode, device="cpu")
    ps = prompts(1, prompt_len, model.args.vocab_size)[0]
    with torch.inference_mode():
        t_prefill = best_of(lambda: prefill(model, torch.tensor(ps), 0))

    tokens = greedy_run(model, chat, quality_tokens - 1, "cpu")[1]  # also the warm-up
    decoded = decode_with_bandwidth(lambda: started(model, ps, new), new, torch.get_num_threads(), "cpu")
    return {"prefill": prompt_len / t_prefill, "tokens": tokens} | decoded


def run_llamacpp(gguf: Path, prompt_len: int, new: int, threads: int, chat: list[int], quality_tokens: int) -> dict[str, Any]:
    """llama.cpp's prefill and decode tok/s from its perf counters (best of 2), and its greedy tokens."""
    import numpy as np
    from llama_cpp import Llama, llama_cpp

    llm = Llama(model_path=str(gguf), n_ctx=max(prompt_len + new, len(chat) + quality_tokens) + 8, n_batch=max(512, prompt_len),
                n_threads=threads, n_threads_batch=threads, no_perf=False, verbose=False)
    ctx = llm._ctx.ctx

    def greedy(prompt: list[int], n: int) -> list[int]:
        llm.reset()  # the next eval overwrites the cache from position 0
        llm.eval(prompt)
        out = []
        for i in range(n):  # the last position's logits (llama-cpp-python keeps no copy without logits_all)
            out.append(int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)))))
            if i + 1 < n:
                llm.eval(out[-1:])
        return out

    ps = prompts(1, prompt_len, llm.n_vocab())[0]
    prefill_tps = decode_tps = 0.0
    for _ in range(2):
        llama_cpp.llama_perf_context_reset(ctx)
        greedy(ps, new + 1)
        perf = llama_cpp.llama_perf_context(ctx)
        prefill_tps = max(prefill_tps, perf.n_p_eval / perf.t_p_eval_ms * 1e3)
        decode_tps = max(decode_tps, perf.n_eval / perf.t_eval_ms * 1e3)
    return {"prefill": prefill_tps, "decode1": decode_tps, "tokens": greedy(chat, quality_tokens)}


def peak_memory_mb(device: str) -> float:
    """This process's high-water resident set (Linux VmHWM; getrusage elsewhere); on CUDA the GPU's."""
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(argv: list[str]) -> None:
    engine, model_dir, dtype, threads, prompt_len, new, batch, device, quality = argv
    if engine == "llama.cpp":  # dtype: the GGUF file
        chat = quality_prompt(Path(model_dir))
        result = run_llamacpp(Path(dtype), int(prompt_len), int(new), int(threads), chat, int(quality))
    else:
        import torch

        torch.set_num_threads(int(threads))
        if engine == "ours-vs-llama.cpp":
            result = run_ours_vs_llamacpp(Path(model_dir), dtype, int(prompt_len), int(new), int(quality))
        elif engine == "ours-alone":
            result = run_ours_alone(Path(model_dir), dtype, int(prompt_len), int(new), device)
        else:
            run = run_ours if engine == "ours" else run_hf
            result = run(Path(model_dir), dtype, int(prompt_len), int(new), int(batch), device)
    result.setdefault("rss_mb", peak_memory_mb(device))
    print(json.dumps(result))


def measure(engine: str, model_dir: Path, dtype: str, a: argparse.Namespace, env: dict[str, str] | None = None) -> dict[str, Any]:
    argv = [engine, str(model_dir), dtype, str(a.threads), str(a.prompt_len), str(a.new_tokens), str(a.batch), a.device,
            str(a.quality_tokens)]
    proc = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True,
                          env=None if env is None else os.environ | env)  # env: e.g. LLAMA_CUDA_GRAPHS
    if proc.returncode != 0:
        raise SystemExit(f"{engine} {dtype} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def best_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each speed at its best over the rounds; peak memory at its lowest; the first run's tokens;
    every round's (decode tok/s, GB/s) chunks."""
    listed = ("tokens", "paired")
    best = {k: (min if k == "rss_mb" else max)(r[k] for r in runs) for k in runs[0] if k not in listed}
    return best | {"tokens": runs[0]["tokens"], "paired": [p for r in runs for p in r.get("paired", [])]}


def roofline_share(pairs: list[list[float]], bytes_per_token: float) -> str:
    """The share of the roofline each chunk of decode reached (its tok/s x bytes per token / the
    bandwidth probed beside it): the median over every chunk of every round, and the quartiles."""
    shares = sorted(tps * bytes_per_token / (gbs * 1e9) for tps, gbs in pairs)
    q1, median, q3 = statistics.quantiles(shares, n=4, method="inclusive")  # within the data, also for a few chunks
    return (f"{100 * median:.0f}% of roofline (median of {len(shares)} chunks, quartiles {100 * q1:.0f}-{100 * q3:.0f}%; "
            f"bandwidth beside them {statistics.median(gbs for _, gbs in pairs):.0f} GB/s)")


def matching_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens two greedy runs share."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def hf_dtype(dtype: str, device: str) -> str:
    """transformers has no int8 weight-only path of ours: it runs the float weights int8 computes in."""
    if dtype != "int8":
        return dtype
    return "bf16" if device == "cuda" else "fp32"


def bytes_per_token(model_dir: Path, dtype: str, ctx: int, device: str) -> float:
    """Weights read per decode step (the embedding table costs one row; a tied LM head is read once) + KV."""
    from llama_core.engine.args import ModelArgs

    a = ModelArgs.from_file(model_dir / "params.json")
    per_layer = a.dim * (a.n_heads + 2 * a.n_kv_heads) * a.head_dim + a.n_heads * a.head_dim * a.dim
    per_layer += 3 * a.dim * a.ffn_hidden_dim + 2 * a.dim
    params = a.n_layers * per_layer + a.dim + a.vocab_size * a.dim  # + final norm + LM head
    size = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}
    kv = 2 * a.n_layers * a.n_kv_heads * a.head_dim * ctx * size[hf_dtype(dtype, device)]
    return params * size[dtype] + kv


def gguf_bytes_per_token(gguf: Path, model_dir: Path, ctx: int) -> float:
    """What a decode step reads on the GGUF's own blocks: every tensor once (the tied embedding as
    the LM head; the lookup is one row), plus the fp32 KV cache."""
    from llama_core.engine.args import ModelArgs
    from llama_core.engine.gguf import _reader

    a = ModelArgs.from_file(model_dir / "params.json")
    return sum(int(t.n_bytes) for t in _reader(gguf).tensors) + 2 * a.n_layers * a.n_kv_heads * a.head_dim * ctx * 4


def against_llamacpp(model_dir: Path, a: argparse.Namespace) -> None:
    """One line per configuration: llama.cpp on the GGUF, then each of our modes with its ratio to it."""
    try:
        import llama_cpp
    except ImportError:
        raise SystemExit("llama.cpp is not installed: pip install -e '.[bench]' (llama-cpp-python compiles for about "
                         "half an hour), or --against transformers --model-dir DIR") from None

    gguf = next(model_dir.glob("*.gguf"), None)
    if gguf is None:
        raise SystemExit(f"{model_dir} has no GGUF file to run llama.cpp on")
    print(f"model {model_dir.name} ({gguf.name}) on cpu, {a.threads} threads, prompt {a.prompt_len}, "
          f"{a.new_tokens} new tokens, best of {a.rounds} interleaved rounds")
    configs = [("llama.cpp", str(gguf))] + [("ours-vs-llama.cpp", mode) for mode in a.modes.split(",")]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {c: [] for c in configs}
    for _ in range(a.rounds):  # interleaved: every configuration sees the same drift in machine load
        for engine, what in configs:
            runs[(engine, what)].append(measure(engine, model_dir, what, a))
    best = {c: best_run(r) for c, r in runs.items()}
    anchor = best[configs[0]]
    ctx = a.prompt_len + a.new_tokens // 2
    bw = statistics.median(gbs for c in configs[1:] for _, gbs in best[c]["paired"])  # probed beside our decodes
    print(f"llama.cpp {llama_cpp.__version__} on {gguf.name}: prefill {anchor['prefill']:.0f} tok/s | decode b1 "
          f"{anchor['decode1']:.1f} tok/s (roofline {bw * 1e9 / gguf_bytes_per_token(gguf, model_dir, ctx):.1f} at the "
          f"median bandwidth probed beside ours, {bw:.0f} GB/s)", flush=True)
    fp32 = next((best[c]["tokens"] for c in configs if c[1] == "fp32"), None)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    end = tokenizer.token_to_id("<|im_end|>")

    def text(ids: list[int]) -> str:  # the reply, up to its end of turn
        return tokenizer.decode(ids[: ids.index(end)] if end in ids else ids)

    reply = fp32[: fp32.index(end) + 1] if fp32 is not None and end in fp32 else fp32  # compared up to its end of turn
    for c in configs[1:]:
        ours, mode = best[c], c[1]
        bytes_read = gguf_bytes_per_token(gguf, model_dir, ctx) if mode == "gguf" else bytes_per_token(model_dir, mode, ctx, "cpu")
        quality = ""
        if mode != "fp32" and fp32 is not None:
            quality = (f" | greedy reply tokens equal to fp32's {matching_prefix(ours['tokens'], reply)}/{len(reply)}: "
                       f"{text(ours['tokens'])!r}")
        print(f"ours {mode}: prefill {ours['prefill']:.0f} tok/s ({ours['prefill'] / anchor['prefill']:.2f}x llama.cpp) | "
              f"decode b1 {ours['decode1']:.1f} tok/s ({ours['decode1'] / anchor['decode1']:.2f}x llama.cpp; "
              f"{roofline_share(ours['paired'], bytes_read)}) | peak RSS {ours['rss_mb']:.0f} MB{quality}", flush=True)
    if fp32 is not None:
        print(f"greedy reply: fp32 {text(fp32)!r}; llama.cpp {text(anchor['tokens'])!r}, its tokens equal to fp32's "
              f"{matching_prefix(anchor['tokens'], reply)}/{len(reply)}", flush=True)


def torch_device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name() if device == "cuda" else device


def listed(*allowed: str) -> Callable[[str], str]:
    """An argparse type: a comma-separated list of `allowed` names."""
    def parse(value: str) -> str:
        wrong = [v for v in value.split(",") if v not in allowed]
        if wrong:
            raise argparse.ArgumentTypeError(f"{', '.join(wrong)}: not one of {', '.join(allowed)}")
        return value
    return parse


def positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: a whole number >= 1")
    return int(value)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2:])
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--model-dir", type=Path, default=None)
    p.add_argument("--against", choices=["llama.cpp", "transformers", "none"], default=None,
                   help="the anchor: llama.cpp on the demo model, transformers with --model-dir, or none (ours alone)")
    p.add_argument("--graphs", default="on,off", type=listed("on", "off"), help="with --against none: the LLAMA_CUDA_GRAPHS settings compared")
    p.add_argument("--modes", default="fp32,int8,gguf", type=listed("fp32", "bf16", "int8", "gguf"), help="our modes beside llama.cpp")
    p.add_argument("--quality-tokens", type=int, default=48, help="greedy tokens compared with fp32's")
    p.add_argument("--dtypes", default="fp32,bf16", type=listed("fp32", "bf16", "int8"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=None, help="default 128 against llama.cpp, else 32")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=positive, default=2, help="fresh processes per engine, interleaved; best kept")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = p.parse_args()
    model_dir = a.model_dir
    a.against = a.against or ("transformers" if model_dir is not None else "llama.cpp")
    a.new_tokens = a.new_tokens or (128 if a.against == "llama.cpp" else 32)
    if model_dir is None:
        from llama_core.download.demo import prepare_demo_model

        model_dir = prepare_demo_model(default_model_dir())
    if a.against == "none":
        return ours_alone(model_dir, a)
    if a.against == "llama.cpp":
        return against_llamacpp(model_dir, a)
    where = torch_device_name(a.device) if a.device == "cuda" else f"cpu, {a.threads} threads"
    print(f"model {model_dir.name} on {where}, prompt {a.prompt_len}, {a.new_tokens} new tokens, batch {a.batch}")
    memory = "peak GPU memory" if a.device == "cuda" else "peak RSS"
    for dtype in a.dtypes.split(","):
        runs: dict[str, list[dict[str, float]]] = {"ours": [], "hf": []}
        for _ in range(a.rounds):  # interleaved, so both engines see the same drift in machine load
            for engine in runs:
                runs[engine].append(measure(engine, model_dir, dtype, a))
        ours, theirs = (best_run(runs[e]) for e in ("ours", "hf"))
        bytes_read = bytes_per_token(model_dir, dtype, a.prompt_len + a.new_tokens // 2, a.device)
        hf = "transformers" if hf_dtype(dtype, a.device) == dtype else f"transformers {hf_dtype(dtype, a.device)}"
        print(
            f"{dtype}: prefill {ours['prefill']:.0f} tok/s ({hf} {theirs['prefill']:.0f}, "
            f"{ours['prefill'] / theirs['prefill']:.2f}x) | decode b1 {ours['decode1']:.1f} tok/s "
            f"(transformers {theirs['decode1']:.1f}, {ours['decode1'] / theirs['decode1']:.2f}x; "
            f"{roofline_share(ours['paired'], bytes_read)}) | decode b{a.batch} "
            f"{ours['decodeB']:.1f} tok/s (transformers {theirs['decodeB']:.1f}, "
            f"{ours['decodeB'] / theirs['decodeB']:.2f}x; {ours['decodeB'] / ours['decode1']:.1f}x our b1) | "
            f"{memory} {ours['rss_mb']:.0f} MB (transformers {theirs['rss_mb']:.0f} MB) | greedy tokens equal to "
            f"transformers' {matching_prefix(ours['tokens'], theirs['tokens'])}/{len(theirs['tokens'])}",
            flush=True,
        )
        print(
            f"{dtype}: decode b1 with a JSON-schema constraint {ours['json1']:.1f} tok/s, without {ours['free1']:.1f} "
            f"(same run, one thread, CPU time): {100 * (ours['free1'] / ours['json1'] - 1):+.1f}% time per token",
            flush=True,
        )


if __name__ == "__main__":
    main()
