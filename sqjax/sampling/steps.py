"""The jitted device programs of the sampler: insert (prefill into free slots) and decode.

Both are pure functions of (graphdef, weights, slots, ...) with the slots donated, so the KV
cache is updated in place. Every array that varies per request (sampling parameters, limits,
stop ids, seeds) is a runtime array: only shapes (batch, cache length, prompt bucket, rows
inserted) select a program. TRACES counts how many times each program was traced, i.e.
compiled.
"""

from __future__ import annotations

import collections
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from sqjax.models.cache import Cache, map_kv
from sqjax.models.head import token_logprobs
from sqjax.sampling.filters import RowSampling, sample

TRACES: collections.Counter = collections.Counter()


class Limits(NamedTuple):
    """Per-row stopping rules and randomness (runtime arrays, one row per slot)."""

    min_tokens_B: jax.Array  # int32: stop ids are suppressed before this many tokens
    max_tokens_B: jax.Array  # int32
    stop_BE: jax.Array  # int32 stop token ids, -1 = unused
    key_B2: jax.Array  # uint32 raw PRNG key of the sample (seed, request, sample index)


class Slots(NamedTuple):
    """Device state of the decode batch: one row per slot. Row b's next input is token_B[b]
    at position pos_B[b], written to cache slot pos_B[b] (a row's slots hold positions
    0, 1, ... of its prompt and completion; -1 marks empty slots)."""

    cache: Cache
    token_B: jax.Array
    pos_B: jax.Array
    count_B: jax.Array  # tokens generated so far
    done_B: jax.Array
    rows: RowSampling
    limits: Limits


def forward(model, ids_BL, pos_BL, cache: Cache, start_B, span: int | None = None):
    """`model.step` without the LM head: (final hidden states [B, L, D], new cache)."""
    return model.step_hidden(ids_BL, pos_BL, cache, start_B, span)


def choose(logits_BV, rows: RowSampling, limits: Limits, count_B, with_logprobs: bool):
    """(token, raw log-prob, hit a stop id) per row, for the count_B-th generated token."""
    B, V = logits_BV.shape
    suppress_B1 = (count_B < limits.min_tokens_B)[:, None]
    ids_BE = jnp.where(suppress_B1 & (limits.stop_BE >= 0), limits.stop_BE, V)
    rows_BE = jnp.broadcast_to(jnp.arange(B)[:, None], ids_BE.shape)
    masked_BV = logits_BV.at[rows_BE, ids_BE].set(-jnp.inf, mode="drop")
    keys_B2 = jax.vmap(jax.random.fold_in)(limits.key_B2, count_B.astype(jnp.uint32))
    u_B = jax.vmap(lambda k: jax.random.uniform(k, (), jnp.float32))(keys_B2)
    token_B = sample(masked_BV, rows, u_B)
    logprob_B = (
        token_logprobs(logits_BV, token_B) if with_logprobs else jnp.zeros((B,), jnp.float32)
    )
    hit_B = jnp.any(token_B[:, None] == limits.stop_BE, axis=-1)
    return token_B, logprob_B, hit_B


def sample_key(seed, request, index):
    """Raw key of one sample: depends only on (seed, request index, sample index)."""
    key = jax.random.PRNGKey(seed)
    return jax.random.fold_in(jax.random.fold_in(key, request), index)


def decode(graphdef, weights, slots: Slots, kill_B, *, steps: int, span: int, with_logprobs: bool):
    """Up to `steps` decode steps for every live row (stops early when all rows are done).

    Attention reads only the first `span` cache slots (the caller makes sure every live row
    stays within them): a short answer in a cache sized for the longest one does not read
    the whole cache at every step. A stacked cache is read through a slice (XLA fuses it
    into the attention dots on TPU); a per-layer cache's first `span` slots are cut out once
    per call and written back after it, so the steps read whole arrays in place.
    Returns (slots, tokens [B, steps] (-1 where a row did not run), log-probs [B, steps]).
    """
    TRACES["decode"] += 1
    model = nnx.merge(graphdef, weights)
    B = slots.token_B.shape[0]
    slots = slots._replace(done_B=slots.done_B | kill_B)
    full, step_span = slots.cache, span
    if full.per_layer and span < full.size:
        slots = slots._replace(cache=_first_slots(full, span))
        step_span = None

    def body(carry):
        i, s, tokens_BT, logprobs_BT = carry
        live_B = ~s.done_B
        pos_B1 = jnp.where(live_B, s.pos_B, -1)[:, None]
        h_B1D, cache = forward(model, s.token_B[:, None], pos_B1, s.cache, s.pos_B, step_span)
        logits_BV = model.logits(h_B1D)[:, 0]
        token_B, logprob_B, hit_B = choose(logits_BV, s.rows, s.limits, s.count_B, with_logprobs)
        count_B = s.count_B + live_B
        done_B = s.done_B | (live_B & (hit_B | (count_B >= s.limits.max_tokens_B)))
        s = s._replace(
            cache=cache,
            token_B=jnp.where(live_B, token_B, s.token_B),
            pos_B=s.pos_B + live_B,
            count_B=count_B,
            done_B=done_B,
        )
        tokens_BT = tokens_BT.at[:, i].set(jnp.where(live_B, token_B, -1))
        logprobs_BT = logprobs_BT.at[:, i].set(logprob_B)
        return i + 1, s, tokens_BT, logprobs_BT

    def cond(carry):
        return (carry[0] < steps) & jnp.any(~carry[1].done_B)

    init = (0, slots, jnp.full((B, steps), -1, jnp.int32), jnp.zeros((B, steps), jnp.float32))
    _, slots, tokens_BT, logprobs_BT = jax.lax.while_loop(cond, body, init)
    if slots.cache.size < full.size:
        slots = slots._replace(cache=_put_first_slots(full, slots.cache))
    return slots, tokens_BT, logprobs_BT


def _first_slots(cache: Cache, span: int) -> Cache:
    def cut(a, axis):
        return jax.lax.slice_in_dim(a, 0, span, axis=axis)

    return map_kv(cut, cache, pos_BS=cut(cache.pos_BS, 1))


def _put_first_slots(full: Cache, head: Cache) -> Cache:
    """`full` with its first slots replaced by `head` (in place: `full` is donated)."""

    def put(a, new, axis):
        return jax.lax.dynamic_update_slice_in_dim(a, new, 0, axis=axis)

    return map_kv(put, full, head, pos_BS=put(full.pos_BS, head.pos_BS, 1))


def take_rows(slots: Slots, rows_R) -> Slots:
    """The slots of rows rows_R, in that order: the smaller batch the drain decodes once no
    request waits (the cache keeps its slots)."""
    TRACES["take_rows"] += 1
    cache = map_kv(lambda a_L, axis: a_L[:, rows_R], slots.cache, pos_BS=slots.cache.pos_BS[rows_R])
    rest = jax.tree.map(lambda a: a[rows_R], slots._replace(cache=None))
    return rest._replace(cache=cache)


class NewRows(NamedTuple):
    """Rows to start: which prompt each copies (src_M: a prefilled prompt for `insert`, a
    slot for `clone`), which slot it fills (slot_M; the slot count B drops the row), its
    sampling parameters and limits, and its key parts."""

    src_M: jax.Array
    slot_M: jax.Array
    rows: RowSampling
    min_tokens_M: jax.Array
    max_tokens_M: jax.Array
    stop_ME: jax.Array
    seed_M: jax.Array
    request_M: jax.Array
    index_M: jax.Array


def _put_slots(cache_LBX, new_LMX, slot_M, axis: int):
    """Stacked keys or values with rows slot_M (out of range: dropped) holding new_LMX in
    their first slots (`axis`: the slot axis)."""
    index = (slice(None), slot_M) + tuple(slice(None, n) for n in new_LMX.shape[2 : axis + 1])
    return cache_LBX.at[index].set(new_LMX.astype(cache_LBX.dtype), mode="drop")


def insert(graphdef, weights, slots: Slots, ids_UL, ctx_U, last_U, new: NewRows):
    """Prefills U unique prompts once and copies their cache rows into the M new slots that
    sample from them. ids_UL holds each prompt but its last token (ctx_U tokens, right-padded);
    last_U is the last token.

    The last prompt token becomes each row's next input, so the first generated token is
    drawn by `decode` like every other one (only decode holds the sampler).
    """
    TRACES["insert"] += 1
    model = nnx.merge(graphdef, weights)
    L = ids_UL.shape[1]
    S = slots.cache.size
    pos_UL = jnp.where(jnp.arange(L) < ctx_U[:, None], jnp.arange(L), -1)
    _, cache_U = model.prefill(ids_UL, pos_UL)
    src_M, slot_M = new.src_M, new.slot_M
    pos_MS = jnp.pad(pos_UL[src_M], ((0, 0), (0, S - L)), constant_values=-1)
    pos_BS = slots.cache.pos_BS.at[slot_M].set(pos_MS, mode="drop")
    cache = map_kv(
        lambda old, new, axis: _put_slots(old, new[:, src_M], slot_M, axis),
        slots.cache,
        cache_U,
        pos_BS=pos_BS,
    )
    return _start_rows(slots, cache, last_U[src_M], ctx_U[src_M], new)


def clone(slots: Slots, ctx_M, last_M, new: NewRows, *, length: int) -> Slots:
    """Starts new rows from prompts already in the cache: row slot_M copies the first ctx_M
    slots of row src_M (a slot index here), which holds the same prompt (the first `length`
    slots are copied; the positions past ctx_M are marked empty). No model call: a prompt's
    later samples reuse its one prefill."""
    TRACES["clone"] += 1
    src_M, slot_M = new.src_M, new.slot_M

    def copy(a_LBX, axis):
        head = (slice(None), src_M) + (slice(None),) * (axis - 2) + (slice(None, length),)
        return _put_slots(a_LBX, a_LBX[head], slot_M, axis)

    S = slots.cache.size
    pos_MS = jnp.where(jnp.arange(S) < ctx_M[:, None], jnp.arange(S), -1)
    pos_BS = slots.cache.pos_BS.at[slot_M].set(pos_MS, mode="drop")
    cache = map_kv(copy, slots.cache, pos_BS=pos_BS)
    return _start_rows(slots, cache, last_M, ctx_M, new)


def _start_rows(slots: Slots, cache: Cache, token_M, pos_M, new: NewRows) -> Slots:
    """Slots whose rows slot_M start a sample: next input token_M at position pos_M."""
    slot_M = new.slot_M
    key_M2 = jax.vmap(sample_key)(new.seed_M, new.request_M, new.index_M)
    limits = Limits(new.min_tokens_M, new.max_tokens_M, new.stop_ME, key_M2)

    def put(old, value):
        return old.at[slot_M].set(value, mode="drop")

    return Slots(
        cache=cache,
        token_B=put(slots.token_B, token_M),
        pos_B=put(slots.pos_B, pos_M),
        count_B=put(slots.count_B, jnp.zeros_like(slot_M)),
        done_B=put(slots.done_B, jnp.zeros(slot_M.shape, bool)),
        rows=RowSampling(*(put(o, n) for o, n in zip(slots.rows, new.rows))),
        limits=Limits(*(put(o, n) for o, n in zip(slots.limits, limits))),
    )
