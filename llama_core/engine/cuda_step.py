"""The decode step as one static-shape function of explicit state, and on CUDA that step compiled
and captured in CUDA graphs, so that batch-1 decode is not bound by kernel launches.

`decode_step(weights, dims, k_caches, v_caches, freqs, tokens, input_pos, key_pos)` runs one token
for each of cache rows first_slot.. and writes their keys and values in place. Every shape in it
is fixed by the batch size B and the key window L = key_pos.shape[0] (a bucket: the next power of
two >= the longest row's position + 1, at least MIN_BUCKET, at most max_seq_len), never by the
positions themselves: the mask (key position <= the row's position) is built on the device from
input_pos, so a slot's stale tail past its position and a bucket's slack stay out. Nothing in it
reads a tensor's value on the host (no `.item()`, no `int(tensor)`, no branch on a value), so it
traces whole (torch.compile fullgraph) and replays from a CUDA graph.

`GraphedDecoder` is the CUDA decode path (model.forward takes it for T == 1 rows from slot 0):
the step with its layer and its head compiled by inductor (compiled_step), then captured in one
CUDA graph per (batch size, key bucket), all graphs in one memory pool. Compiled with our own
capture rather than mode="reduce-overhead":
  - the graph's only inputs are the two small tensors we copy into (tokens, positions); weights
    and KV caches are read and written in place at fixed addresses by construction, where
    reduce-overhead's cudagraph trees copy every input it does not infer as static into its own
    buffer at each replay (a missed weight would copy 2.5 GB a step) and skip graphs silently
    when a mutated input is not static;
  - the graphs, their pool, the recompiles and the fallback (one log line, then the dynamic
    forward) are ours to see and test;
  - inductor still fuses what matters: int8 weights are multiplied as F.linear(x, q.to(x.dtype))
    * scale, which for one row it lowers to one reduction that reads the int8 bytes and applies
    the scale (with coordinate_descent_tuning, as gpt-fast's recipe does), so that int8 reads
    half the bytes of bf16 rather than a bf16 copy of the weight made each step (not measured
    yet: benches/cuda_check.sh does, on a GPU).
The key window's length is marked dynamic: one compile serves every bucket below the whole
cache, and a new bucket costs one capture (milliseconds), not a compile. The window that is the
whole cache (a row past half of max_seq_len) is contiguous, which the compiler treats apart: one
more compile. So does the first batch size past 1 (torch then makes the batch dimension dynamic):
at most four compiles of one layer (and of the head) per model; the first is logged.

LLAMA_CUDA_GRAPHS=0 turns the path off (the dynamic forward, as before); where inductor cannot
compile (no Triton, no C compiler), the eager step is captured instead, and where capture fails
the dynamic forward runs, each said once in the log.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from llama_core.engine.kernels import BlockWeight, Int8Weight, Weight

log = logging.getLogger(__name__)

MIN_BUCKET = 64  # key windows below this cost the same: fewer graphs


class LayerWeights(NamedTuple):
    attention_norm: Tensor
    wqkv: Weight  # wq|wk|wv fused: (H D + 2 Hkv D, dim)
    wo: Weight
    ffn_norm: Tensor
    w13: Weight  # w1|w3 fused: (2 ffn, dim)
    w2: Weight


class StepWeights(NamedTuple):
    embedding: Tensor  # (vocab, dim)
    layers: tuple[LayerWeights, ...]
    norm: Tensor
    output: Weight  # the LM head (a tied one is the embedding, or its int8 copy)


class Dims(NamedTuple):
    """Python constants of the step (guarded by the compiler, never tensors)."""

    n_heads: int
    n_kv_heads: int
    head_dim: int
    eps: float
    first_slot: int = 0


def step_weights(model: Any) -> tuple[StepWeights, Dims] | None:
    """The prepared weights of a Transformer as the step takes them; None where the step cannot run
    it (model parallel, weights not prepared, GGUF blocks: those dequantize per call)."""
    from llama_core.engine.parallel import model_parallel_size

    if model_parallel_size() > 1 or model.output_weight is None:
        return None
    layers = []
    for layer in model.layers:
        attn, ffn = layer.attention, layer.feed_forward
        ws = (attn.wqkv, attn.wo_weight, ffn.w13, ffn.w2_weight)
        if any(w is None or isinstance(w, BlockWeight) for w in ws):
            return None
        layers.append(LayerWeights(layer.attention_norm.weight.detach(), ws[0], ws[1],
                                   layer.ffn_norm.weight.detach(), ws[2], ws[3]))
    if isinstance(model.output_weight, BlockWeight):
        return None
    weights = StepWeights(model.tok_embeddings.weight.detach(), tuple(layers), model.norm.weight.detach(),
                          model.output_weight)
    attn = model.layers[0].attention
    return weights, Dims(attn.n_local_heads, attn.n_local_kv_heads, attn.head_dim, model.args.norm_eps)


def kv_bucket(kv_len: int, max_seq_len: int) -> int:
    """The key window for rows whose longest needs kv_len keys: the next power of two, within
    [MIN_BUCKET, max_seq_len]."""
    return min(max(MIN_BUCKET, 1 << max(kv_len - 1, 0).bit_length()), max_seq_len)


def linear(x: Tensor, w: Weight) -> Tensor:
    """x @ w.T in x's dtype; an int8 weight's row scales applied after the matmul. Compiled for one
    row (compiled_step), inductor makes this one reduction that loads the int8 bytes, converts
    them in registers and scales the sums; eagerly it is a float copy of the weight per call."""
    if isinstance(w, Int8Weight):
        return (F.linear(x, w.q.to(x.dtype)) * w.scale).to(x.dtype)
    return F.linear(x, w)


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    # as kernels.rms_norm: normalised in float32, cast back, then scaled
    return F.rms_norm(x.float(), (x.shape[-1],), eps=eps).type_as(x) * weight


def rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Meta's interleaved RoPE in real arithmetic (inductor fuses it; complex tensors it does not):
    x (B, heads, D); cos, sin (B, 1, D/2) float32."""
    pairs = x.float().unflatten(-1, (-1, 2))
    x0, x1 = pairs[..., 0], pairs[..., 1]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2).type_as(x)


def attention(q: Tensor, keys: Tensor, values: Tensor, mask: Tensor) -> Tensor:
    """One query per row over its row's keys: q (B, H, D); keys, values (B, Hkv, L, D) (views of
    the cache); mask (B, 1, 1, L) -> (B, H D). Query heads h share kv head h // (H / Hkv), as
    two batched matmuls over (B Hkv) views of the cache (no copy of the window)."""
    B, H, D = q.shape
    n_kv, L = keys.shape[1], keys.shape[2]
    qg = q.reshape(B * n_kv, H // n_kv, D)
    scores = torch.bmm(qg, keys.flatten(0, 1).transpose(1, 2)) * D**-0.5  # (B Hkv, n_rep, L)
    scores = scores.view(B, n_kv, H // n_kv, L).masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).type_as(q).view(B * n_kv, H // n_kv, L)
    return torch.bmm(probs, values.flatten(0, 1)).reshape(B, H * D)


def layer_step(h: Tensor, layer: LayerWeights, k_cache: Tensor, v_cache: Tensor, input_pos: Tensor, cos: Tensor,
               sin: Tensor, key_pos: Tensor, dims: Dims) -> Tensor:
    """One transformer block for rows first_slot..: h (B, dim) -> (B, dim); k, v written into the
    caches at [row, :, input_pos[row]]; attention over keys 0..L-1 (L = key_pos.shape[0]), each
    row's masked to its own prefix (key position <= its position)."""
    B = h.shape[0]
    H, Hkv, D, L, first = dims.n_heads, dims.n_kv_heads, dims.head_dim, key_pos.shape[0], dims.first_slot
    qkv = linear(rms_norm(h, layer.attention_norm, dims.eps), layer.wqkv)
    qk = rope(qkv[:, : (H + Hkv) * D].view(B, H + Hkv, D), cos, sin)  # q and k rotated at once
    q, k = qk.split([H, Hkv], dim=1)
    v = qkv[:, (H + Hkv) * D :].view(B, Hkv, D)
    rows = torch.arange(first, first + B, device=h.device)
    k_cache[rows, :, input_pos] = k
    v_cache[rows, :, input_pos] = v
    mask = (key_pos[None, :] <= input_pos[:, None])[:, None, None]  # (B, 1, 1, L)
    y = attention(q, k_cache[first : first + B, :, :L], v_cache[first : first + B, :, :L], mask)
    h = h + linear(y, layer.wo)
    gate, up = linear(rms_norm(h, layer.ffn_norm, dims.eps), layer.w13).chunk(2, dim=-1)
    return h + linear(F.silu(gate) * up, layer.w2)


def head_step(h: Tensor, norm: Tensor, output: Weight, eps: float) -> Tensor:
    """The final norm and the LM head: h (B, dim) -> logits (B, vocab) float32."""
    return linear(rms_norm(h, norm, eps), output).float()


def decode_step(weights: StepWeights, dims: Dims, k_caches: list[Tensor], v_caches: list[Tensor], freqs: Tensor,
                tokens: Tensor, input_pos: Tensor, key_pos: Tensor, layer: Any = layer_step, head: Any = head_step) -> Tensor:
    """One token for each of cache rows first_slot .. first_slot+B-1: tokens, input_pos (B,) int64;
    key_pos: arange(L) (the key window; each row's position < L). Writes each layer's k, v at
    [row, :, input_pos[row]] in place. Caches (max_batch, Hkv, max_seq_len, D); freqs: the RoPE
    table (max_seq_len, D/2, 2) float32. -> logits (B, vocab) float32. `layer` and `head` are
    layer_step and head_step, or their compiled forms."""
    angles = freqs[input_pos]  # (B, D/2, 2)
    cos, sin = angles[:, None, :, 0], angles[:, None, :, 1]
    h = F.embedding(tokens, weights.embedding)  # (B, dim)
    for lw, k_cache, v_cache in zip(weights.layers, k_caches, v_caches):
        h = layer(h, lw, k_cache, v_cache, input_pos, cos, sin, key_pos, dims)
    return head(h, weights.norm, weights.output, dims.eps)


def compiled_step(backend: str = "inductor") -> Any:
    """decode_step with layer_step and head_step each compiled (fullgraph), as the CUDA path runs it.

    Per layer, not the whole step: every layer is the same code on the same shapes, so one compile
    serves them all, where the whole step unrolls every layer into one graph that inductor lowers
    node by node (its compile time grows with the depth; the demo model has 30 layers). The few
    ops between (embedding, RoPE table lookup) run as they are, inside the same CUDA graph.
    coordinate_descent_tuning: inductor lowers a one-row matmul to a fused reduction
    (torch/_inductor/decomposition.py's mm), where the int8 -> bf16 conversion and the scale
    fuse; inductor's own cudagraphs off: GraphedDecoder captures."""
    options = {"coordinate_descent_tuning": True, "triton.cudagraphs": False} if backend == "inductor" else None
    layer = torch.compile(layer_step, fullgraph=True, backend=backend, options=options)
    head = torch.compile(head_step, fullgraph=True, backend=backend, options=options)
    return functools.partial(decode_step, layer=layer, head=head)


def run_static_step(model: Any, tokens: Tensor, input_pos: Tensor, kv_len: int, first_slot: int = 0,
                    step: Any = decode_step) -> Tensor:
    """The static step on `model` eagerly (or `step`, a compiled decode_step), key window bucketed
    from kv_len: tokens, input_pos (B,) -> logits (B, vocab) float32. Raises ValueError where the
    step cannot run this model (see step_weights)."""
    state = step_weights(model)
    if state is None:
        raise ValueError("the static decode step needs prepared float or int8 weights on one model-parallel rank")
    weights, dims = state
    caches = [layer.attention.kv_cache for layer in model.layers]
    key_pos = torch.arange(kv_bucket(kv_len, model.max_seq_len), device=tokens.device)
    torch._dynamo.maybe_mark_dynamic(key_pos, 0)
    return step(weights, dims._replace(first_slot=first_slot), [c.k_cache for c in caches], [c.v_cache for c in caches],
                model.freqs_cis, tokens, input_pos.to(tokens.device), key_pos)


def graphs_enabled() -> bool:
    """LLAMA_CUDA_GRAPHS=0 turns the captured decode step off (the dynamic forward, as before)."""
    return os.environ.get("LLAMA_CUDA_GRAPHS", "1") != "0"


def graphed_decoder(model: Any) -> GraphedDecoder | None:
    """The CUDA decode path for `model` (weights prepared, on its device), or None off CUDA, with
    LLAMA_CUDA_GRAPHS=0, or where the step cannot run the model."""
    if model.tok_embeddings.weight.device.type != "cuda" or not graphs_enabled():
        return None
    state = step_weights(model)
    return GraphedDecoder(model, *state) if state is not None else None


class _Graph(NamedTuple):
    graph: torch.cuda.CUDAGraph
    tokens: Tensor  # (B,) the graph's input buffers: each call copies into them
    positions: Tensor
    key_pos: Tensor  # arange(L)
    logits: Tensor  # (B, vocab) the graph's output buffer


def _reason(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


class GraphedDecoder:
    """The decode step on CUDA, compiled once and captured per (batch size, key bucket).

    Call with tokens, input_pos (B,) for cache rows 0..B-1 and kv_len (the longest row's position
    + 1, or None for the whole cache): logits (B, vocab) float32, or None when graphs are off for
    this model after a failure (the caller runs the dynamic forward)."""

    def __init__(self, model: Any, weights: StepWeights, dims: Dims, compile: bool = True) -> None:
        self.model = model
        self.weights, self.dims = weights, dims
        self.compiled = compile
        self.step: Any = decode_step
        if compile:
            # One code object per function serves every model of the process (each its own
            # compiles): past dynamo's default limit of 8 it would run uncompiled, silently.
            config = torch._dynamo.config
            limit = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # renamed in 2.7
            setattr(config, limit, max(getattr(config, limit), 64))
            self.step = compiled_step()
        self.pool = torch.cuda.graph_pool_handle()
        self.graphs: dict[tuple[int, int], _Graph] = {}
        self.refused: set[tuple[int, int]] = set()  # (batch, bucket) whose capture failed beside working graphs
        self.failed = False

    def warm(self) -> None:
        """Compile and capture the first key bucket now, at load, rather than in the first request:
        for one row, and for two where the batch allows (the compile for several rows, which later
        batch sizes reuse). Dummy tokens at position 0 of slots 0 and 1, which no sequence holds yet
        (a prefill writes that position before any step reads it)."""
        device = self.model.tok_embeddings.weight.device
        for rows in sorted({1, min(2, self.model.max_batch_size)}):
            zeros = torch.zeros(rows, dtype=torch.long, device=device)
            self(zeros, zeros, 1)

    def clear(self) -> None:
        """Drop the graphs: they hold the addresses of caches that setup_caches replaced."""
        self.graphs.clear()
        self.refused.clear()

    def __call__(self, tokens: Tensor, input_pos: Tensor, kv_len: int | None) -> Tensor | None:
        B = tokens.shape[0]
        L = kv_bucket(kv_len if kv_len is not None else self.model.max_seq_len, self.model.max_seq_len)
        if self.failed or (B, L) in self.refused:
            return None
        with torch.inference_mode():
            g = self.graphs.get((B, L))
            if g is None:
                g = self._capture(tokens, input_pos, L)
                if g is None:
                    return None
            g.tokens.copy_(tokens, non_blocking=True)
            g.positions.copy_(input_pos, non_blocking=True)
            g.graph.replay()
            return g.logits.clone()  # the next replay overwrites the buffer

    def _run(self, tokens: Tensor, positions: Tensor, key_pos: Tensor) -> Tensor:
        caches = [layer.attention.kv_cache for layer in self.model.layers]
        return self.step(self.weights, self.dims, [c.k_cache for c in caches], [c.v_cache for c in caches],
                         self.model.freqs_cis, tokens, positions, key_pos)

    def _capture(self, tokens: Tensor, input_pos: Tensor, L: int) -> _Graph | None:
        """Warm up (compile, autotune, load kernels) and capture the step for this batch size and
        key bucket. Warm-up runs on the real inputs: it writes the very keys and values the
        step is about to write (a dummy token would overwrite a live slot's cache)."""
        B = tokens.shape[0]
        device = tokens.device
        buffers = (torch.empty(B, dtype=torch.long, device=device), torch.empty(B, dtype=torch.long, device=device),
                   torch.arange(L, device=device))
        tokens_buf, pos_buf, key_pos = buffers
        torch._dynamo.maybe_mark_dynamic(key_pos, 0)
        tokens_buf.copy_(tokens)
        pos_buf.copy_(input_pos)
        if self.compiled and not self.graphs:
            log.warning("Compiling the CUDA decode step (up to a minute; once more for the first batch of several rows).")
        try:
            self._warm_up(tokens_buf, pos_buf, key_pos)
        except Exception as e:  # inductor could not compile here (no Triton, no C compiler...)
            if not self.compiled:
                return self._fail("The decode step failed", e)
            log.warning("torch.compile of the CUDA decode step failed (%s); capturing it uncompiled.", _reason(e))
            self.step, self.compiled = decode_step, False
            try:
                self._warm_up(tokens_buf, pos_buf, key_pos)
            except Exception as e2:
                return self._fail("The decode step failed", e2)
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.current_stream()
        try:
            with torch.cuda.graph(graph, pool=self.pool):
                logits = self._run(tokens_buf, pos_buf, key_pos)
        except Exception as e:
            # torch.cuda.graph's exit ends the capture before it restores the stream: when ending
            # the capture raises too, this thread would stay on the capture's side stream.
            torch.cuda.set_stream(stream)
            if self.graphs:  # the step captures elsewhere: this shape alone (out of memory, say) goes without
                log.warning("CUDA graph capture of the decode step for %d rows and %d keys failed (%s); those steps run "
                            "without CUDA graphs.", B, L, _reason(e))
                self.refused.add((B, L))
                return None
            return self._fail("CUDA graph capture of the decode step failed", e)
        g = _Graph(graph, tokens_buf, pos_buf, key_pos, logits)
        self.graphs[(B, L)] = g
        return g

    def _warm_up(self, tokens: Tensor, positions: Tensor, key_pos: Tensor) -> None:
        """Run the step twice on a side stream, as capture requires (lazy inits stay out of the graph)."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), warnings.catch_warnings():
            # fp32 stays IEEE float32 on purpose (parity with the CPU): inductor's TF32 advice is noise
            warnings.filterwarnings("ignore", message="TensorFloat32 tensor cores")
            for _ in range(2):
                self._run(tokens, positions, key_pos)
        torch.cuda.current_stream().wait_stream(side)

    def _fail(self, what: str, e: BaseException) -> None:
        log.warning("%s (%s); decoding without CUDA graphs.", what, _reason(e))
        self.failed = True
        self.graphs.clear()
        return None
