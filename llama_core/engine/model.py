"""The Llama 3 transformer on fairscale model-parallel layers, with a static per-slot KV cache.

Parameter names are Meta's (tok_embeddings, layers.N.attention.wq/wk/wv/wo, feed_forward.w1/w2/w3,
attention_norm, ffn_norm, norm, output), so `consolidated.NN.pth` shards load unchanged.

The KV cache is built for continuous batching: cache row = slot, and every row has its own
position. `forward(tokens, input_pos, first_slot)` runs rows first_slot .. first_slot+B-1 of the
cache, row b's tokens sitting at positions input_pos[b], input_pos[b]+1, ...; a boolean mask lets
each query see only its own row's keys at positions <= its own, so a slot's stale tail (from an
earlier occupant) and the other rows never leak in.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from fairscale.nn.model_parallel.layers import ColumnParallelLinear, RowParallelLinear, VocabParallelEmbedding
from fairscale.nn.model_parallel.mappings import gather_from_model_parallel_region, reduce_from_model_parallel_region

from llama_core.engine.args import ModelArgs
from llama_core.engine import kernels
from llama_core.engine.kernels import BlockWeight, Weight, concat_blocks, linear, quantize_int8, rms_norm, silu_mul
from llama_core.engine.parallel import model_parallel_size

if TYPE_CHECKING:
    from llama_core.engine.cuda_step import GraphedDecoder

Blocks = dict[str, BlockWeight]  # a GGUF file's own quantized weights by Meta name (gguf.read_blocks)


def _keep(x: Tensor) -> Tensor:  # fairscale init_method: weights come from the checkpoint
    return x


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # normalise in float32, cast back, then scale (as the reference does for bf16)
        return rms_norm(x, self.weight, self.eps)


def scale_rope_freqs(freqs: Tensor, args: ModelArgs) -> Tensor:
    """Llama 3.1 RoPE scaling: keep high frequencies, divide low ones by the factor, blend between."""
    factor = args.rope_scale
    low_freq_wavelen = args.rope_original_max_position / args.rope_low_freq_factor
    high_freq_wavelen = args.rope_original_max_position / args.rope_high_freq_factor
    wavelen = 2 * math.pi / freqs
    smooth = (args.rope_original_max_position / wavelen - args.rope_low_freq_factor) / (
        args.rope_high_freq_factor - args.rope_low_freq_factor
    )
    blended = (1 - smooth) * freqs / factor + smooth * freqs
    out = torch.where(wavelen > low_freq_wavelen, freqs / factor, blended)
    return torch.where(wavelen < high_freq_wavelen, freqs, out)


def precompute_freqs_cis(args: ModelArgs, end: int) -> Tensor:
    """(cos, sin) of every position's rotation angles: (end, head_dim/2, 2), float32."""
    hd = args.head_dim
    freqs = 1.0 / (args.rope_theta ** (torch.arange(0, hd, 2)[: hd // 2].float() / hd))
    if args.use_scaled_rope:
        freqs = scale_rope_freqs(freqs, args)
    angles = torch.outer(torch.arange(end, dtype=torch.float32), freqs)
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)


def apply_rotary_emb(x: Tensor, freqs_cis: Tensor) -> Tensor:
    """Rotate adjacent pairs (Meta's interleaved convention). x: (B, T, H, D); freqs_cis: (B, T, D/2, 2).

    Each pair (x0, x1) times (cos, sin) as one complex product: one kernel instead of a dozen (the
    decode step is a chain of small ops, each costing microseconds of dispatch).
    """
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))  # (B, T, H, D/2)
    fc = torch.view_as_complex(freqs_cis).unsqueeze(2)  # (B, T, 1, D/2)
    return torch.view_as_real(xc * fc).flatten(3).type_as(x)


class KVCache(nn.Module):
    """Keys and values of one layer: (max_batch_size, n_local_kv_heads, max_seq_len, head_dim)."""

    def __init__(self, max_batch_size: int, max_seq_len: int, n_kv_heads: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        shape = (max_batch_size, n_kv_heads, max_seq_len, head_dim)
        self.register_buffer("k_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, rows: Tensor, pos: Tensor, k: Tensor, v: Tensor) -> None:
        """Write k, v (B, T, H, D) at cache[rows[b, t], :, pos[b, t]]; rows, pos: (B, T)."""
        self.k_cache[rows, :, pos] = k
        self.v_cache[rows, :, pos] = v


def grouped_decode_attention(q: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None) -> Tensor:
    """One query per row, masked per row: q (B, H, 1, D); keys, values (B, Hkv, L, D); mask (B, 1, 1, L).

    CPU SDPA (flash kernel) spends milliseconds on a single query over a strided cache view; two
    batched matmuls over the query heads that share each kv head (head h reads kv head h // n_rep) do not.
    """
    B, H, _, D = q.shape
    n_kv = keys.shape[1]
    qg = q.reshape(B, n_kv, H // n_kv, D)  # (B, Hkv, n_rep, D)
    scores = torch.matmul(qg, keys.transpose(-1, -2)) * D**-0.5  # (B, Hkv, n_rep, L)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).type_as(q)
    return torch.matmul(probs, values).reshape(B, H, 1, D)


def row_parallel(x: Tensor, w: Weight) -> Tensor:
    """RowParallelLinear's forward on an already split input: local matmul, then sum over ranks."""
    y = linear(x, w)
    return reduce_from_model_parallel_region(y) if model_parallel_size() > 1 else y


def column_parallel_gathered(x: Tensor, w: Weight) -> Tensor:
    """ColumnParallelLinear's forward with gather_output: local matmul, then concatenate ranks."""
    y = linear(x, w)
    return gather_from_model_parallel_region(y) if model_parallel_size() > 1 else y


def _fuse(*layers: nn.Module) -> Tensor:
    """Concatenate the layers' weights along the output rows, and make each weight a view of it."""
    fused = torch.cat([layer.weight.detach() for layer in layers])
    start = 0
    for layer in layers:
        rows = layer.weight.shape[0]
        layer.weight.data = fused[start : start + rows]  # loads still land in the fused tensor
        start += rows
    return fused


def _quantized(names: list[str], fused: Tensor, int8: bool, blocks: Blocks | None) -> Weight:
    """What a (fused) matmul multiplies by: the GGUF blocks of its weights (Meta `names`) where the
    file has them all, of one kind; else int8 of the float weight (with `int8` or `blocks`); else the float."""
    if blocks is not None and all(n in blocks for n in names):
        if (joined := concat_blocks([blocks[n] for n in names])) is not None:
            return joined
    return quantize_int8(fused) if int8 or blocks is not None else fused


def _weights(prefix: str, *names: str) -> list[str]:
    return [f"{prefix}{name}.weight" for name in names]


def _release(*layers: nn.Module) -> None:
    """Free float weights that int8 copies replaced (the shapes stay visible as empty tensors)."""
    for layer in layers:
        layer.weight.data = layer.weight.data.new_empty(0)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        mp = model_parallel_size()
        self.n_local_heads = args.n_heads // mp
        self.n_local_kv_heads = args.n_kv_heads // mp
        self.head_dim = args.head_dim
        hd = args.head_dim
        self.wq = ColumnParallelLinear(args.dim, args.n_heads * hd, bias=False, gather_output=False, init_method=_keep)
        self.wk = ColumnParallelLinear(args.dim, args.n_kv_heads * hd, bias=False, gather_output=False, init_method=_keep)
        self.wv = ColumnParallelLinear(args.dim, args.n_kv_heads * hd, bias=False, gather_output=False, init_method=_keep)
        self.wo = RowParallelLinear(args.n_heads * hd, args.dim, bias=False, input_is_parallel=True, init_method=_keep)
        self.kv_cache: KVCache | None = None
        # set by prepare_weights: wq|wk|wv as one matmul, and wo (either may be int8)
        self.wqkv: Weight | None = None
        self.wo_weight: Weight | None = None

    def prepare_weights(self, int8: bool = False, blocks: Blocks | None = None, prefix: str = "") -> None:
        self.wqkv = _quantized(_weights(prefix, "wq", "wk", "wv"), _fuse(self.wq, self.wk, self.wv), int8, blocks)
        self.wo_weight = _quantized(_weights(prefix, "wo"), self.wo.weight.detach(), int8, blocks)
        if int8 or blocks is not None:
            _release(self.wq, self.wk, self.wv, self.wo)

    def forward(self, x: Tensor, freqs_cis: Tensor, mask: Tensor | None, rows: Tensor, pos: Tensor,
                first_slot: int, kv_len: int) -> Tensor:
        B, T, _ = x.shape
        H, Hkv, D = self.n_local_heads, self.n_local_kv_heads, self.head_dim
        assert self.kv_cache is not None, "call Transformer.setup_caches first"
        if self.wqkv is not None:  # column-parallel without gather: a plain matmul on this rank's rows
            qkv = linear(x, self.wqkv)  # (B, T, (H + 2 Hkv) D)
            if T == 1 and kernels.on_cpu_decode_path(x):  # RoPE, cache write and attention in one op
                y = kernels.decode_attention(qkv.view(B, -1), freqs_cis[:, 0], self.kv_cache.k_cache,
                                             self.kv_cache.v_cache, pos[:, 0], first_slot, H).view(B, 1, -1)
                return self.project_out(y)
            qk = apply_rotary_emb(qkv[..., : (H + Hkv) * D].view(B, T, H + Hkv, D), freqs_cis)  # q, k at once
            q, k = qk.split([H, Hkv], dim=2)
            v = qkv[..., (H + Hkv) * D :].view(B, T, Hkv, D)
        else:
            q = apply_rotary_emb(self.wq(x).view(B, T, H, D), freqs_cis)
            k = apply_rotary_emb(self.wk(x).view(B, T, Hkv, D), freqs_cis)
            v = self.wv(x).view(B, T, Hkv, D)
        self.kv_cache.update(rows, pos, k, v)
        keys = self.kv_cache.k_cache[first_slot : first_slot + B, :, :kv_len]  # (B, Hkv, L, D)
        values = self.kv_cache.v_cache[first_slot : first_slot + B, :, :kv_len]
        if T == 1:
            y = grouped_decode_attention(q.transpose(1, 2), keys, values, mask)
        else:
            y = F.scaled_dot_product_attention(
                q.transpose(1, 2), keys, values, attn_mask=mask, is_causal=mask is None and T > 1,
                enable_gqa=self.n_local_heads != self.n_local_kv_heads,
            )  # (B, H, T, D)
        return self.project_out(y.transpose(1, 2).reshape(B, T, -1))

    def project_out(self, y: Tensor) -> Tensor:
        """wo over the heads' outputs (B, T, H D), summed over model-parallel ranks."""
        return self.wo(y) if self.wo_weight is None else row_parallel(y, self.wo_weight)


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.w1 = ColumnParallelLinear(dim, hidden_dim, bias=False, gather_output=False, init_method=_keep)
        self.w2 = RowParallelLinear(hidden_dim, dim, bias=False, input_is_parallel=True, init_method=_keep)
        self.w3 = ColumnParallelLinear(dim, hidden_dim, bias=False, gather_output=False, init_method=_keep)
        # set by prepare_weights: w1|w3 as one matmul, and w2 (either may be int8)
        self.w13: Weight | None = None
        self.w2_weight: Weight | None = None

    def prepare_weights(self, int8: bool = False, blocks: Blocks | None = None, prefix: str = "") -> None:
        self.w13 = _quantized(_weights(prefix, "w1", "w3"), _fuse(self.w1, self.w3), int8, blocks)
        self.w2_weight = _quantized(_weights(prefix, "w2"), self.w2.weight.detach(), int8, blocks)
        if int8 or blocks is not None:
            _release(self.w1, self.w2, self.w3)

    def forward(self, x: Tensor) -> Tensor:
        if self.w13 is not None and self.w2_weight is not None:
            return row_parallel(silu_mul(linear(x, self.w13)), self.w2_weight)
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args.dim, args.ffn_hidden_dim)
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)

    def forward(self, x: Tensor, freqs_cis: Tensor, mask: Tensor | None, rows: Tensor, pos: Tensor,
                first_slot: int, kv_len: int) -> Tensor:
        h = x + self.attention(self.attention_norm(x), freqs_cis, mask, rows, pos, first_slot, kv_len)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    """Pre-norm decoder. Call `setup_caches(max_batch_size, max_seq_len)` before `forward`."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        mp = model_parallel_size()
        if args.n_heads % mp or args.n_kv_heads % mp or args.vocab_size % mp:
            raise ValueError(f"n_heads, n_kv_heads and vocab_size must divide by model-parallel size {mp}")
        self.args = args
        self.tok_embeddings = VocabParallelEmbedding(args.vocab_size, args.dim, init_method=_keep)
        self.layers = nn.ModuleList(TransformerBlock(args) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        # vocab-split like the embedding, so a tied weight is the same shard on every rank
        self.output = ColumnParallelLinear(args.dim, args.vocab_size, bias=False, init_method=_keep)
        if args.tie_word_embeddings:
            self.tie_weights()
        self.output_weight: Weight | None = None  # set by prepare_weights
        self._step_weights: tuple[list[Tensor], list[Tensor], list[Tensor], list[int]] | None = None  # likewise
        self._graphs: GraphedDecoder | None = None  # the CUDA decode path (cuda_step.py); likewise
        self.register_buffer("freqs_cis", torch.empty(0, 0, 2), persistent=False)  # set by setup_caches
        self.max_batch_size = 0
        self.max_seq_len = 0

    def tie_weights(self) -> None:
        self.output.weight = self.tok_embeddings.weight

    def prepare_weights(self, int8: bool = False, blocks: Blocks | None = None) -> None:
        """The weights the hot path multiplies by: wq|wk|wv and w1|w3 fused into one matmul each
        (the parameters become views; names unchanged); with `int8` every matmul weight quantized
        per output row; with `blocks` (a GGUF file's, by Meta name) those blocks as they are, and
        int8 where the file has none (the float copies freed either way; the embedding stays float).
        Call once, after the model is on its device: `.to()` would copy the views apart."""
        for i, layer in enumerate(self.layers):
            layer.attention.prepare_weights(int8, blocks, f"layers.{i}.attention.")
            layer.feed_forward.prepare_weights(int8, blocks, f"layers.{i}.feed_forward.")
        head = "tok_embeddings" if self.args.tie_word_embeddings else "output"  # a tied head is the embedding's blocks
        self.output_weight = _quantized(_weights("", head), self.output.weight.detach(), int8, blocks)
        if (int8 or blocks is not None) and not self.args.tie_word_embeddings:
            _release(self.output)
        self._step_weights = self._collect_step_weights()
        from llama_core.engine.cuda_step import graphed_decoder

        self._graphs = graphed_decoder(self)

    def warm_up(self) -> None:
        """Build now, at load, what the first decode step would build in a request: the CPU kernels
        (a minute the first time on a machine), or on CUDA the step's compile and first graph."""
        if self.tok_embeddings.weight.device.type == "cpu":
            kernels.cpu_kernels_available()
        elif self._graphs is not None:
            self._graphs.warm()

    def _collect_step_weights(self) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[int]] | None:
        """decode_step's norms, weights, scales and kinds; None where it cannot run this model
        (model parallel, not float32, off the CPU)."""
        weight = self.tok_embeddings.weight
        if model_parallel_size() > 1 or weight.dtype != torch.float32 or weight.device.type != "cpu":
            return None
        norms, parts = [], []
        for layer in self.layers:
            attn, ffn = layer.attention, layer.feed_forward
            norms += [layer.attention_norm.weight.detach(), layer.ffn_norm.weight.detach()]
            parts += [kernels.step_parts(w) for w in (attn.wqkv, attn.wo_weight, ffn.w13, ffn.w2_weight)]
        norms.append(self.norm.weight.detach())
        parts.append(kernels.step_parts(self.output_weight))
        if any(p[0].dtype != torch.float32 and p[2] == 0 for p in parts):
            return None
        data, scales, kinds = (list(x) for x in zip(*parts))
        return norms, data, scales, kinds

    def setup_caches(self, max_batch_size: int, max_seq_len: int) -> None:
        """Allocate each layer's KV cache and the RoPE table; a no-op when the sizes are unchanged."""
        if (max_batch_size, max_seq_len) == (self.max_batch_size, self.max_seq_len):
            return
        weight = self.tok_embeddings.weight
        for layer in self.layers:
            attn = layer.attention
            attn.kv_cache = KVCache(max_batch_size, max_seq_len, attn.n_local_kv_heads, attn.head_dim,
                                    weight.dtype, weight.device)
        self.freqs_cis = precompute_freqs_cis(self.args, max_seq_len).to(weight.device)
        self.max_batch_size, self.max_seq_len = max_batch_size, max_seq_len
        if self._graphs is not None:
            self._graphs.clear()  # captured against the caches just replaced

    def forward(self, tokens: Tensor, input_pos: Tensor, first_slot: int = 0, kv_len: int | None = None,
                last_only: bool = False) -> Tensor:
        """Logits (B, T or 1, vocab) in float32.

        tokens: (B, T) ids for cache rows first_slot .. first_slot+B-1; input_pos: (B,) position of
        each row's first token; kv_len: exactly max(input_pos) + T, if the caller knows it (saves a sync).
        A decode step (T == 1) runs as one native op on CPU (kernels.decode_step), and on CUDA from
        slot 0 as cuda_step's static step replayed from a CUDA graph (LLAMA_CUDA_GRAPHS=0: as below).
        """
        assert self.max_seq_len > 0, "call setup_caches first"
        B, T = tokens.shape
        device = tokens.device
        if T == 1 and self._step_weights is not None and B <= kernels.MAX_KERNEL_ROWS and kernels.cpu_kernels_available():
            return self._decode_step(tokens, input_pos, first_slot)
        if T == 1 and first_slot == 0 and self._graphs is not None:  # CUDA: the captured static step
            logits = self._graphs(tokens[:, 0], input_pos, kv_len)
            if logits is not None:  # None: graphs failed here, said once in the log
                return logits[:, None]
        pos = input_pos.to(device)[:, None] + torch.arange(T, device=device)  # (B, T)
        if kv_len is None:
            kv_len = int(pos.max()) + 1
        rows = torch.arange(first_slot, first_slot + B, device=device)[:, None].expand(B, T)
        mask = None  # a lone decode row sees every cached key; a lone fresh prompt is plain causal
        if B > 1 or (T > 1 and kv_len != T):
            mask = (torch.arange(kv_len, device=device) <= pos[:, :, None])[:, None]  # (B, 1, T, L)
        freqs_cis = self.freqs_cis[pos]  # (B, T, D/2, 2)
        h = self.tok_embeddings(tokens)
        for layer in self.layers:
            h = layer(h, freqs_cis, mask, rows, pos, first_slot, kv_len)
        if last_only:
            h = h[:, -1:]
        h = self.norm(h)
        return (self.output(h) if self.output_weight is None else column_parallel_gathered(h, self.output_weight)).float()

    def _decode_step(self, tokens: Tensor, input_pos: Tensor, first_slot: int) -> Tensor:
        """forward's CPU decode step as one native op (kernels.decode_step): logits (B, 1, vocab)."""
        assert self._step_weights is not None
        norms, weights, scales, kinds = self._step_weights
        caches = [layer.attention.kv_cache for layer in self.layers]
        logits = kernels.decode_step(tokens[:, 0], input_pos, first_slot, self.tok_embeddings.weight, self.freqs_cis,
                                     norms, weights, scales, kinds, [c.k_cache for c in caches],
                                     [c.v_cache for c in caches], self.layers[0].attention.n_local_heads, self.args.norm_eps)
        return logits[:, None]


def build_model(args: ModelArgs, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> Transformer:
    """An uninitialised Transformer (weights are to be loaded) in `dtype` on `device`."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # fairscale allocates with torch.Tensor(...), i.e. the default dtype
    try:
        model = Transformer(args)
    finally:
        torch.set_default_dtype(previous)
    return model.to(device).eval()
