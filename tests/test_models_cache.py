"""KV cache == no cache, and causality, on tiny models with random O(1) weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers_hf import hf_model, max_diff_real, padded_batch, sqjax_twin

from sqjax.checkpoints.convert import export_tensors, load_from_tensors
from sqjax.models.cache import positions_from_mask

TOL = 1e-5
STEP = nnx.jit(lambda model, *args: model.step(*args))
LENGTHS, WIDTH, PREFILL = [24, 17, 9], 24, 12  # row 2 has no real token in the prefill


def cached_logits(model, ids_BL, mask_BL, prefill: int, cache_size: int):
    """Logits from one prefill of `prefill` slots, then one `step` per remaining token."""
    B, L = ids_BL.shape
    pos_BL = positions_from_mask(jnp.asarray(mask_BL))
    ids_BL = jnp.asarray(ids_BL)
    cache = model.init_cache(B, cache_size)
    logits_BLV, cache = STEP(
        model, ids_BL[:, :prefill], pos_BL[:, :prefill], cache, jnp.zeros(B, jnp.int32)
    )
    chunks = [logits_BLV]
    for t in range(prefill, L):
        start_B = jnp.full(B, t, jnp.int32)
        logits_B1V, cache = STEP(model, ids_BL[:, t : t + 1], pos_BL[:, t : t + 1], cache, start_B)
        chunks.append(logits_B1V)
    assert np.array_equal(np.asarray(cache.pos_BS[:, :L]), np.asarray(pos_BL))
    return np.asarray(jnp.concatenate(chunks, axis=1))


@pytest.mark.parametrize("layout", ["stacked", "layers"])
@pytest.mark.parametrize(
    "arch, overrides",
    [("LlamaForCausalLM", {}), ("MistralForCausalLM", {"sliding_window": 8})],
    ids=["llama-gqa", "mistral-window-8"],
)
def test_prefill_then_decode_equals_full_forward(arch, overrides, layout):
    model = sqjax_twin(hf_model(arch, **overrides))
    ids_BL, mask_BL = padded_batch(LENGTHS, WIDTH, "left", seed=5)
    full_BLV = np.asarray(model(jnp.asarray(ids_BL), jnp.asarray(mask_BL)))
    if layout == "layers":  # one Block and one cache array per layer, run as a loop
        model = model.unstacked()
        assert model.per_layer and model.init_cache(1, 4).per_layer
    # A cache larger than needed: its empty slots (position -1) must be ignored.
    step_BLV = cached_logits(model, ids_BL, mask_BL, PREFILL, cache_size=WIDTH + 5)
    diff = max_diff_real(full_BLV, step_BLV, mask_BL)
    print(f"{arch} {overrides}: cache vs no cache max |dlogit| = {diff:.2e}")
    assert diff <= TOL
    if "sliding_window" in overrides:  # the window acts: without it the logits differ
        tensors = dict(export_tensors(model))  # either layout exports the same tensors
        wide = load_from_tensors(
            model.config.replace(sliding_window=None), tensors, tensors.__getitem__
        )
        assert max_diff_real(full_BLV, np.asarray(wide(ids_BL, mask_BL)), mask_BL) > 1e-2


def test_future_tokens_do_not_change_earlier_logits():
    model = sqjax_twin(hf_model("LlamaForCausalLM"))
    ids_BL, mask_BL = padded_batch(LENGTHS, WIDTH, "left", seed=6)
    changed_BL = ids_BL.copy()
    t = 15
    changed_BL[:, t] = ids_BL[:, t] % 400 + 1  # another real token (never PAD_ID)
    assert (changed_BL[:, t] != ids_BL[:, t]).all()
    before = np.asarray(model(jnp.asarray(ids_BL), jnp.asarray(mask_BL)))
    after = np.asarray(model(jnp.asarray(changed_BL), jnp.asarray(mask_BL)))
    past = max_diff_real(before[:, :t], after[:, :t], mask_BL[:, :t])
    print(f"causality: max |dlogit| before the change {past:.2e}")
    assert past <= 1e-6
    # every real position from t on sees the change
    assert np.abs(before[:, t:] - after[:, t:]).max(axis=-1)[mask_BL[:, t:] > 0].min() > 1e-3


@pytest.mark.parametrize("window_layers", [None, 1], ids=["uniform", "mixed-windows"])
def test_prefill_equals_step_into_an_empty_cache(window_layers):
    model = sqjax_twin(hf_model("LlamaForCausalLM"))
    if window_layers is not None:  # layer 0 full attention, layer 1 a window of 8: blocks differ
        tensors = dict(export_tensors(model))
        cfg = model.config.replace(sliding_window=8, max_window_layers=window_layers)
        model = load_from_tensors(cfg, tensors, tensors.__getitem__)
    ids_BL, mask_BL = padded_batch(LENGTHS, WIDTH, "right", seed=7)
    ids_BL, pos_BL = jnp.asarray(ids_BL), positions_from_mask(jnp.asarray(mask_BL))
    B = ids_BL.shape[0]
    prefill = nnx.jit(lambda m, ids, pos: m.prefill(ids, pos))
    h_BLD, cache = prefill(model, ids_BL, pos_BL)
    ref = nnx.jit(lambda m, *args: m.step_hidden(*args))
    ref_BLD, ref_cache = ref(
        model, ids_BL, pos_BL, model.init_cache(B, WIDTH), jnp.zeros(B, jnp.int32)
    )
    assert np.abs(np.asarray(h_BLD) - np.asarray(ref_BLD)).max() <= TOL
    assert np.array_equal(np.asarray(cache.pos_BS), np.asarray(ref_cache.pos_BS))
    for field in ("k_LBKHS", "v_LBKSH"):
        got, want = np.asarray(getattr(cache, field)), np.asarray(getattr(ref_cache, field))
        assert got.shape[0] == model.config.num_layers
        assert np.abs(got - want).max() <= TOL
    # the layers run as one scan over the stacked weights, sliding windows or not, and no
    # weight is stacked (concatenated) inside the program; the one other op with a stacked
    # result is the reshape of the output kernel to [layers, N * H, D] (_flat_out_proj)
    jaxpr = jax.make_jaxpr(lambda ids, pos: model.prefill(ids, pos))(ids_BL, pos_BL).jaxpr
    assert [e.primitive.name for e in jaxpr.eqns].count("scan") == 1
    layers = model.config.num_layers
    assert layers not in {B, WIDTH}  # so a stacked array is recognisable by its leading axis
    stacked = [
        e
        for e in jaxpr.eqns
        for v in e.outvars
        if v.aval.shape[:1] == (layers,) and v.aval.ndim > 1
    ]
    assert sorted({e.primitive.name for e in stacked}) == ["reshape", "scan"]


def test_decode_over_a_span_equals_the_whole_cache():
    """Attending only the first `span` slots (all a row has written) gives the same logits
    and the same cache as attending every slot."""
    model = sqjax_twin(hf_model("LlamaForCausalLM"))
    ids_BL, mask_BL = padded_batch(LENGTHS, WIDTH, "left", seed=8)
    B = ids_BL.shape[0]
    pos_BL = positions_from_mask(jnp.asarray(mask_BL))
    cache = model.init_cache(B, 64)
    _, cache = STEP(
        model, jnp.asarray(ids_BL[:, :-1]), pos_BL[:, :-1], cache, jnp.zeros(B, jnp.int32)
    )
    last = (jnp.asarray(ids_BL[:, -1:]), pos_BL[:, -1:], cache, jnp.full(B, WIDTH - 1, jnp.int32))
    span = nnx.jit(lambda m, *a: m.step(*a, span=32))
    want_B1V, want = STEP(model, *last)
    got_B1V, got = span(model, *last)
    assert np.abs(np.asarray(got_B1V) - np.asarray(want_B1V)).max() <= TOL
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
