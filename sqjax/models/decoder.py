"""One Flax NNX decoder for Llama, Mistral, Qwen2 and InternLM2 (they differ by flags)."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from sqjax.models import kernels
from sqjax.models.attention import NEG_INF, chunked_gqa
from sqjax.models.cache import (
    SLOT_AXIS,
    Cache,
    attention_mask,
    positions_from_mask,
    read_layer,
    write_layer,
    write_rows,
)
from sqjax.models.config import ModelConfig, attention_settings, parse_dtype
from sqjax.models.layers import RMSNorm, apply_rope, param, rope_tables, swiglu
from sqjax.sharding import constrain_rows

ATTN_CHUNK = 512  # a call attending more queries than this attends block by block
ATTN_BLOCK = 256  # queries (and keys) per block then (CPU: 20% faster than 512 blocks)
NO_WINDOW = kernels.NO_WINDOW  # the window of a full-attention layer in a windowed model


class CacheView(NamedTuple):
    """What an attention layer needs of a stacked cache during a step: the stacked keys and
    values, its layer index, each row's first new slot, and the positions of the slots it
    attends (the first `span` slots of pos_BS)."""

    k_LBKHS: jax.Array
    v_LBKSH: jax.Array
    layer: jax.Array
    start_B: jax.Array
    pos_BS: jax.Array


class Attention(nnx.Module):
    """Grouped-query attention with RoPE; q/k/v kernels are [D, heads, H] per layer (the
    decoder builds them stacked, [layers, D, heads, H])."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs, layers: int | None = None):
        D, N, K, H, pd = (
            cfg.hidden_size,
            cfg.num_heads,
            cfg.num_kv_heads,
            cfg.head_dim,
            parse_dtype(cfg.param_dtype),
        )
        self.cfg = cfg
        self.q = param(rngs, (D, N, H), ("embed", "heads", "head_dim"), pd, layers=layers)
        self.k = param(rngs, (D, K, H), ("embed", "kv_heads", "head_dim"), pd, layers=layers)
        self.v = param(rngs, (D, K, H), ("embed", "kv_heads", "head_dim"), pd, layers=layers)
        self.o = param(rngs, (N, H, D), ("heads", "head_dim", "embed"), pd, layers=layers)
        if cfg.qkv_bias:
            self.q_bias = param(rngs, (N, H), ("heads", "head_dim"), pd, zeros=True, layers=layers)
            self.k_bias = param(
                rngs, (K, H), ("kv_heads", "head_dim"), pd, zeros=True, layers=layers
            )
            self.v_bias = param(
                rngs, (K, H), ("kv_heads", "head_dim"), pd, zeros=True, layers=layers
            )
        if cfg.o_bias:
            self.o_bias = param(rngs, (D,), ("embed",), pd, zeros=True, layers=layers)

    def _project(self, x_BLD, name):
        dt = x_BLD.dtype
        out = jnp.einsum("BLD,DNH->BLNH", x_BLD, getattr(self, name)[...].astype(dt))
        if self.cfg.qkv_bias:
            out = out + getattr(self, f"{name}_bias")[...].astype(dt)
        return out

    def __call__(
        self,
        x_BLD,
        pos_BL,
        cos_BLH,
        sin_BLH,
        window,
        *,
        seg_BL=None,
        cache: CacheView | None = None,
    ):
        """Without a cache: attention over the call's own tokens; returns (out, (k_BKHL,
        v_BKLH)), this call's keys and values in the cache layout. With a cache view: writes
        the new keys and values into its layer, attends the view's slots, and returns (out,
        (k_LBKHS, v_LBKSH)), the updated stacked cache."""
        q_BLNH = apply_rope(self._project(x_BLD, "q"), cos_BLH, sin_BLH)
        k_BLKH = apply_rope(self._project(x_BLD, "k"), cos_BLH, sin_BLH)
        v_BLKH = self._project(x_BLD, "v")
        if cache is None:
            new = (k_BLKH.transpose(0, 2, 3, 1), v_BLKH.transpose(0, 2, 1, 3))  # cache layout
            out_BLNH = _self_attention(self.cfg, q_BLNH, k_BLKH, v_BLKH, pos_BL, seg_BL, window)
        else:
            layer, start_B, span = cache.layer, cache.start_B, cache.pos_BS.shape[1]
            k_LBKHS = write_layer(cache.k_LBKHS, k_BLKH, layer, start_B, SLOT_AXIS["k_LBKHS"])
            v_LBKSH = write_layer(cache.v_LBKSH, v_BLKH, layer, start_B, SLOT_AXIS["v_LBKSH"])
            k_BKHS = read_layer(k_LBKHS, layer, span, SLOT_AXIS["k_LBKHS"])
            v_BKSH = read_layer(v_LBKSH, layer, span, SLOT_AXIS["v_LBKSH"])
            mask_BLS = attention_mask(pos_BL, cache.pos_BS, window)
            new = (k_LBKHS, v_LBKSH)
            dt = x_BLD.dtype
            out_BLNH = _attend(q_BLNH, k_BKHS.astype(dt), v_BKSH.astype(dt), mask_BLS)
        # one [N * H, D] matrix: contracting (N, H) as two axes made XLA CPU transpose the
        # weight at every call (~2% of a decode step; 6% of a 135M per-layer decode step).
        # A stacked decoder's scan already slices it as [N * H, D] (_flat_out_proj).
        B, L, N, H = out_BLNH.shape
        o_MD = self.o[...].astype(x_BLD.dtype).reshape(N * H, -1)
        out_BLD = jnp.einsum("BLM,MD->BLD", out_BLNH.reshape(B, L, N * H), o_MD)
        if self.cfg.o_bias:
            out_BLD = out_BLD + self.o_bias[...].astype(x_BLD.dtype)
        return out_BLD, new


def _self_attention(cfg: ModelConfig, q_BLNH, k_BLKH, v_BLKH, pos_BL, seg_BL, window):
    """A call's tokens attending each other (no cache), by the kernel cfg.attention picks
    for the call (sqjax.models.kernels): per distinct sliding window of the model's layers,
    switched on the layer's traced `window` when the layers differ; `_attend` for xla."""
    L = q_BLNH.shape[1]
    plan = kernels.layer_kernels(cfg, L, seg_BL is not None, q_BLNH.dtype, kernels.platform())

    def xla(w):
        mask_BLS = attention_mask(pos_BL, pos_BL, w, seg_BL, seg_BL)
        return _attend(q_BLNH, k_BLKH.transpose(0, 2, 3, 1), v_BLKH.transpose(0, 2, 1, 3), mask_BLS)

    if all(choice.kernel == "xla" for _, choice in plan.branches):
        return xla(window)
    seg_BL = kernels.segments(pos_BL, seg_BL)

    def branch(w, choice):
        if choice.kernel == "xla":
            return xla(w)
        block = cfg.attention_block
        return kernels.attend(choice.kernel, q_BLNH, k_BLKH, v_BLKH, seg_BL, window=w, block=block)

    if len(plan.branches) == 1:
        return branch(*plan.branches[0])
    fns = [functools.partial(branch, w, choice) for w, choice in plan.branches]
    return jax.lax.switch(plan.index(window), fns)


def _attend(q_BLNH, k_BKHS, v_BKSH, mask_BLS):
    """Attention of L queries: over more than ATTN_CHUNK queries in blocks with an online
    softmax (sqjax.models.attention: no [B, K, G, L, S] float32 logits, which for a 7B model
    at 4,096 tokens are 3.5 GiB per layer), else as two plain matmuls (`_gqa`)."""
    if q_BLNH.shape[1] > ATTN_CHUNK:
        return chunked_gqa(q_BLNH, k_BKHS, v_BKSH, mask_BLS, q_chunk=ATTN_BLOCK, k_chunk=ATTN_BLOCK)
    return _gqa(q_BLNH, k_BKHS, v_BKSH, mask_BLS)


def _gqa(q_BLNH, k_BKHS, v_BKSH, mask_BLS):
    """Grouped-query attention as two plain batched matmuls over (B, K): the G query heads
    of a KV head and the L queries form one M = G * L axis, so neither dot needs a transpose
    of the cache (XLA CPU otherwise copies it, or runs a slow generic dot)."""
    B, L, N, H = q_BLNH.shape
    K = k_BKHS.shape[1]
    G = N // K
    q_BKMH = q_BLNH.reshape(B, L, K, G, H).transpose(0, 2, 3, 1, 4).reshape(B, K, G * L, H)
    logits_BKMS = jnp.einsum("BKMH,BKHS->BKMS", q_BKMH, k_BKHS, preferred_element_type=jnp.float32)
    logits_BKGLS = logits_BKMS.reshape(B, K, G, L, -1) * (H**-0.5)
    logits_BKGLS = jnp.where(mask_BLS[:, None, None], logits_BKGLS, NEG_INF)
    probs_BKMS = jax.nn.softmax(logits_BKGLS, axis=-1).astype(v_BKSH.dtype).reshape(B, K, G * L, -1)
    out_BKMH = jnp.einsum("BKMS,BKSH->BKMH", probs_BKMS, v_BKSH)
    return out_BKMH.reshape(B, K, G, L, H).transpose(0, 3, 1, 2, 4).reshape(B, L, N, H)


class MLP(nnx.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x)) (sqjax.models.layers.swiglu)."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs, layers: int | None = None):
        D, F, pd = cfg.hidden_size, cfg.intermediate_size, parse_dtype(cfg.param_dtype)
        self.gate = param(rngs, (D, F), ("embed", "mlp"), pd, layers=layers)
        self.up = param(rngs, (D, F), ("embed", "mlp"), pd, layers=layers)
        self.down = param(rngs, (F, D), ("mlp", "embed"), pd, layers=layers)

    def __call__(self, x_BLD):
        dt = x_BLD.dtype
        weights = (self.gate[...].astype(dt), self.up[...].astype(dt), self.down[...].astype(dt))
        return swiglu(x_BLD, *weights)


class Block(nnx.Module):
    """One pre-norm decoder layer. The decoder builds all its layers as one Block whose
    parameters carry a leading `layers` axis and runs it with `lax.scan`, one layer's slice
    at a time: one layer compiles whatever the depth."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs, layers: int | None = None):
        pd = parse_dtype(cfg.param_dtype)
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, pd, rngs, layers)
        self.attn = Attention(cfg, rngs, layers)
        self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, pd, rngs, layers)
        self.mlp = MLP(cfg, rngs, layers)

    def __call__(self, x_BLD, pos_BL, cos_BLH, sin_BLH, window, **attn_kw):
        h_BLD, kv = self.attn(self.attn_norm(x_BLD), pos_BL, cos_BLH, sin_BLH, window, **attn_kw)
        x_BLD = x_BLD + h_BLD
        return x_BLD + self.mlp(self.mlp_norm(x_BLD)), kv


class Decoder(nnx.Module):
    """A decoder-only transformer with an LM head or a scalar score head.

    `model(input_ids, attention_mask=mask)` gives float32 logits [B, L, V], as transformers'
    models do; padding may be on either side. Packed rows pass `positions` and `segment_ids`
    instead of a mask. The layers live in `blocks`, stacked on a leading axis.
    """

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.config = cfg
        pd = parse_dtype(cfg.param_dtype)
        self.embed = param(rngs, (cfg.vocab_size, cfg.hidden_size), ("vocab", "embed"), pd)
        self.blocks = Block(cfg, rngs, layers=cfg.num_layers)
        self.final_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, pd, rngs)
        if cfg.head == "score":
            self.score_head = param(rngs, (cfg.hidden_size, cfg.num_labels), ("embed", None), pd)
        elif not cfg.tie_word_embeddings:
            self.lm_head = param(rngs, (cfg.hidden_size, cfg.vocab_size), ("embed", "vocab"), pd)

    @property
    def compute_dtype(self):
        return parse_dtype(self.config.dtype)

    def layer(self, i: int) -> Block:
        """Layer i as a Block of its own (its slice of the stacked weights)."""
        if self.per_layer:
            return self.blocks[i]
        block = nnx.eval_shape(lambda: Block(self.config, nnx.Rngs(0)))
        _, stacked = nnx.split(self.blocks)
        _, state = nnx.split(block)
        nnx.replace_by_pure_dict(state, jax.tree.map(lambda a: a[i], nnx.to_pure_dict(stacked)))
        nnx.update(block, state)
        return block

    def with_attention(self, kernel: str | None, block: int | None = None) -> Decoder:
        """The same model over the same arrays with another self-attention kernel and/or
        block size (None: as it is; sqjax.models.kernels)."""
        changes = attention_settings(kernel, block)
        if not changes:
            return self
        cfg = self.config.replace(**changes)
        model = nnx.merge(*nnx.split(self))
        model.config = cfg
        for _, module in nnx.iter_graph(model):
            if isinstance(module, Attention):
                module.cfg = cfg
        return model

    def unstacked(self) -> Decoder:
        """The same model with one Block per layer instead of the stacked `blocks` (new
        arrays, one layer's slices each; this model is left as it is).

        Every method works on either layout; the per-layer one runs its layers as a Python
        loop. That is what the sampler uses on CPU and GPU: there XLA copies each scanned
        layer's slice of the stacked weights out before its matmuls (a 135M decode step on
        CPU: ~25% more time; a 7B one on an H200 ran at a third of the HBM roofline, see
        bench/RESULTS.md), while a loop reads each layer's arrays in place. Training keeps
        the stacked layout (one compiled layer, remat per layer)."""
        if self.per_layer:
            return self
        graphdef, state = nnx.split(self)
        model = nnx.merge(graphdef, state)  # a new module over the same arrays
        model.blocks = nnx.List([self.layer(i) for i in range(self.config.num_layers)])
        return model

    def _run_blocks(self, body, carry, remat=None):
        """carry, out = body(block, carry, layer, window) for every layer in turn, as one
        `lax.scan` over the stacked weights (or a loop over unstacked ones); returns (carry,
        the outs stacked over layers). `window` is the layer's sliding window (None when no
        layer has one)."""
        if self.per_layer:
            return self._loop_blocks(body, carry, remat)
        graphdef, state = nnx.split(self.blocks)
        xs = (_flat_out_proj(state), jnp.arange(self.config.num_layers), _windows(self.config))

        def step(carry, xs):
            state, layer, window = xs
            return body(nnx.merge(graphdef, state), carry, layer, window)

        if remat is not None:
            step = jax.checkpoint(step, policy=remat)
        return jax.lax.scan(step, carry, xs)

    def _loop_blocks(self, body, carry, remat):
        if remat is not None:
            raise ValueError("remat needs the stacked layout: train the model, not .unstacked()")
        windows, outs = _windows(self.config), []
        for i, block in enumerate(self.blocks):
            carry, out = body(block, carry, i, None if windows is None else windows[i])
            outs.append(out)
        return carry, jax.tree.map(lambda *xs: tuple(xs), *outs)  # per-layer tuples

    def hidden(
        self,
        input_ids_BL,
        attention_mask_BL=None,
        *,
        positions_BL=None,
        segment_ids_BL=None,
        remat=None,
    ):
        """Final-norm hidden states [B, L, D] without a cache.

        `remat` is a jax.checkpoint policy (e.g. jax.checkpoint_policies.nothing_saveable):
        each layer's activations are then recomputed in the backward pass, not stored.
        Traced under a mesh (the train step sets one), each layer's input and output keep
        only their own rows per device (sqjax.sharding.constrain_rows).
        """
        if positions_BL is None:
            if attention_mask_BL is None:
                attention_mask_BL = jnp.ones(input_ids_BL.shape, jnp.int32)
            positions_BL = positions_from_mask(attention_mask_BL)
        elif attention_mask_BL is not None:
            positions_BL = jnp.where(attention_mask_BL > 0, positions_BL, -1)
        self._check_length(input_ids_BL.shape[1])
        x_BLD = constrain_rows(self._embed(input_ids_BL))
        cos, sin = rope_tables(self.config, jnp.maximum(positions_BL, 0))

        def body(block, x_BLD, layer, window):
            x_BLD = block(x_BLD, positions_BL, cos, sin, window, seg_BL=segment_ids_BL)[0]
            return constrain_rows(x_BLD), None

        x_BLD, _ = self._run_blocks(body, x_BLD, remat)
        return self.final_norm(x_BLD)

    def __call__(self, input_ids, attention_mask=None, *, positions=None, segment_ids=None):
        """float32 logits [B, L, V]; the keywords are transformers' (input_ids, attention_mask)."""
        h_BLD = self.hidden(
            input_ids, attention_mask, positions_BL=positions, segment_ids_BL=segment_ids
        )
        return self.logits(h_BLD)

    def step(self, input_ids_BL, positions_BL, cache: Cache, start_B, span: int | None = None):
        """Runs L new tokens per row against the cache (prefill or decode).

        Tokens are written to slots start_B[b] .. start_B[b] + L - 1; a token with position
        -1 is padding and is never attended. Returns (float32 logits [B, L, V], new cache).
        """
        h_BLD, cache = self.step_hidden(input_ids_BL, positions_BL, cache, start_B, span)
        return self.logits(h_BLD), cache

    def step_hidden(
        self, input_ids_BL, positions_BL, cache: Cache, start_B, span: int | None = None
    ):
        """`step` without the LM head: (final-norm hidden states [B, L, D], new cache), so a
        sampler can project only the positions it samples from. Attention reads only the
        first `span` cache slots (default: all); the new tokens must land inside them."""
        if cache.per_layer and not self.per_layer:
            raise ValueError("a per-layer cache needs an unstacked decoder (.unstacked())")
        pos_BS = write_rows(cache.pos_BS, positions_BL, start_B)
        view_BS = pos_BS if span is None else pos_BS[:, :span]
        x_BLD = self._embed(input_ids_BL)
        cos, sin = rope_tables(self.config, jnp.maximum(positions_BL, 0))

        def body(block, carry, layer, window):
            x_BLD, k_LBKHS, v_LBKSH = carry
            if cache.per_layer:  # the loop's own layer as a stack of one, read in place
                view = CacheView(k_LBKHS[layer][None], v_LBKSH[layer][None], 0, start_B, view_BS)
                x_BLD, (k_1BKHS, v_1BKSH) = block(x_BLD, positions_BL, cos, sin, window, cache=view)
                k_LBKHS = _replace(k_LBKHS, layer, k_1BKHS[0])
                v_LBKSH = _replace(v_LBKSH, layer, v_1BKSH[0])
                return (x_BLD, k_LBKHS, v_LBKSH), None
            view = CacheView(k_LBKHS, v_LBKSH, layer, start_B, view_BS)
            x_BLD, (k_LBKHS, v_LBKSH) = block(x_BLD, positions_BL, cos, sin, window, cache=view)
            return (x_BLD, k_LBKHS, v_LBKSH), None

        (x_BLD, k_LBKHS, v_LBKSH), _ = self._run_blocks(body, (x_BLD, cache.k_LBKHS, cache.v_LBKSH))
        return self.final_norm(x_BLD), Cache(k_LBKHS, v_LBKSH, pos_BS)

    def prefill(self, input_ids_BL, positions_BL):
        """Runs L tokens per row with no earlier context: (final-norm hidden states [B, L, D],
        a Cache of size L holding their keys and values, in the decoder's layer layout)."""
        x_BLD = self._embed(input_ids_BL)
        cos, sin = rope_tables(self.config, jnp.maximum(positions_BL, 0))

        def body(block, x_BLD, layer, window):
            return block(x_BLD, positions_BL, cos, sin, window)

        x_BLD, (k_LBKHS, v_LBKSH) = self._run_blocks(body, x_BLD)
        return self.final_norm(x_BLD), Cache(k_LBKHS, v_LBKSH, positions_BL)

    def logits(self, h_BLD):
        """LM logits in float32 from final hidden states."""
        if self.config.head == "score":
            raise ValueError("this is a score model: call model.score(...) instead of model(...)")
        w_DV = self.embed[...].T if self.config.tie_word_embeddings else self.lm_head[...]
        return jnp.einsum(
            "BLD,DV->BLV", h_BLD, w_DV.astype(h_BLD.dtype), preferred_element_type=jnp.float32
        )

    def score(self, input_ids_BL, attention_mask_BL=None, *, remat=None):
        """Score-head output at each row's last real token: [B] (or [B, C] for C > 1 labels).
        `remat` as in `hidden` (a regressor's train step recomputes each layer's activations
        in the backward pass instead of storing them)."""
        if self.config.head != "score":
            raise ValueError("this model has an LM head, not a score head")
        if attention_mask_BL is None:
            attention_mask_BL = jnp.ones(input_ids_BL.shape, jnp.int32)
        h_BLD = self.hidden(input_ids_BL, attention_mask_BL, remat=remat)
        L = input_ids_BL.shape[1]
        last_B = jnp.max(jnp.where(attention_mask_BL > 0, jnp.arange(L), 0), axis=-1)
        h_BD = jnp.take_along_axis(h_BLD, last_B[:, None, None], axis=1)[:, 0]
        out_BC = jnp.einsum(
            "BD,DC->BC",
            h_BD,
            self.score_head[...].astype(h_BD.dtype),
            preferred_element_type=jnp.float32,
        )
        return out_BC[:, 0] if self.config.num_labels == 1 else out_BC

    def init_cache(self, batch: int, size: int, dtype=None) -> Cache:
        from sqjax.models.cache import init_cache

        cfg = self.config
        return init_cache(
            cfg.num_layers,
            batch,
            size,
            cfg.num_kv_heads,
            cfg.head_dim,
            dtype or self.compute_dtype,
            per_layer=self.per_layer,
        )

    @property
    def per_layer(self) -> bool:
        """True once `unstacked`: one Block (and one cache array) per layer."""
        return isinstance(self.blocks, nnx.List)

    def _embed(self, input_ids_BL):
        return jnp.take(self.embed[...], input_ids_BL, axis=0).astype(self.compute_dtype)

    def _check_length(self, length: int) -> None:
        cfg = self.config
        if cfg.rope_scaling.kind == "dynamic" and length > cfg.max_position_embeddings:
            raise ValueError(
                f"sequence length {length} exceeds max_position_embeddings={cfg.max_position_embeddings} "
                "with dynamic RoPE, which sqjax computes only within that range"
            )


def abstract_layers(cfg: ModelConfig) -> nnx.List:
    """Shape-only Blocks, one per layer: the `blocks` of an unstacked model before its
    weights are read (checkpoint loads, plan's compiles)."""
    return nnx.List(
        [nnx.eval_shape(lambda: Block(cfg, nnx.Rngs(0))) for _ in range(cfg.num_layers)]
    )


def _flat_out_proj(state: nnx.State) -> nnx.State:
    """The stacked blocks' state with the attention output kernel [layers, N, H, D] as
    [layers, N * H, D] (a reshape of the whole stack, free in the row-major layout), so the
    scan slices each layer's [N * H, D] matrix. Reshaping the layer's [N, H, D] slice inside
    the scan instead made XLA TPU copy the slice out before the output dot (Qwen2-Math-7B
    decode on v5p-8: 1.4 of 22.1 GB per step, bench/tpu_layout.py); Attention's reshape of
    the flat slice is then a no-op."""
    o = state["attn"]["o"]
    L, N, H, D = o.shape
    state["attn"]["o"] = o.replace(o[...].reshape(L, N * H, D))
    return state


def _replace(layers: tuple, i: int, value) -> tuple:
    return layers[:i] + (value,) + layers[i + 1 :]


def _windows(cfg: ModelConfig) -> jax.Array | None:
    """Each layer's sliding window ([layers] int32; full-attention layers get one longer than
    any sequence), or None when every layer attends fully."""
    windows = [cfg.layer_window(i) for i in range(cfg.num_layers)]
    if all(w is None for w in windows):
        return None
    return jnp.array([NO_WINDOW if w is None else w for w in windows], jnp.int32)


def create_model(cfg: ModelConfig, seed: int = 0) -> Decoder:
    """A randomly initialised model (tests, benchmarks, and the shape source for loading)."""
    return Decoder(cfg, nnx.Rngs(params=seed))
