"""SFT loss: parity with transformers' own loss, packing invariance, exact accumulation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx
from helpers_hf import hf_model, sqjax_twin
from test_training_support import tiny_config

from sqjax.data.packing import Example, pack_examples, pad_batch
from sqjax.models.decoder import create_model
from sqjax.sharding import make_mesh
from sqjax.training.inputs import local_rows, row_arrays
from sqjax.training.sft import sft_objective
from sqjax.training.step import init_state, make_train_step, state_sharding


def random_examples(lengths, vocab, seed=0, completion_from=None):
    """Examples of random tokens; with completion_from, the mask starts at that token."""
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        tokens = rng.integers(3, vocab, n).astype(np.int32)
        mask = np.ones(n, np.int32)
        if completion_from is not None:
            mask[: min(completion_from, n - 1)] = 0
        out.append(Example(tokens, mask))
    return out


def loss_and_grads(model):
    """A function batch -> (mean loss, grads) jitted once for the model."""
    graphdef, params = nnx.split(model, nnx.Param)
    objective = sft_objective()

    def f(params, batch):
        total, (count, _) = objective(nnx.merge(graphdef, params), batch)
        return total / count

    vg = jax.jit(jax.value_and_grad(f))
    return lambda batch: vg(params, batch)


@pytest.mark.parametrize("completion_from", [None, 4])
def test_sft_loss_equals_transformers_loss(completion_from):
    hf = hf_model("LlamaForCausalLM")
    ours = sqjax_twin(hf)
    examples = random_examples([9, 14, 6], hf.config.vocab_size, completion_from=completion_from)
    batch = pad_batch(examples, 16, pad_id=0)
    arrays = row_arrays(batch, pad_id=0)
    loss, _ = loss_and_grads(ours)({k: jnp.asarray(v) for k, v in arrays.items()})
    labels = np.where(batch.loss_mask_BL > 0, batch.tokens_BL, -100)
    with torch.no_grad():
        ref = hf(
            input_ids=torch.from_numpy(batch.tokens_BL.astype(np.int64)),
            attention_mask=torch.from_numpy((batch.segment_ids_BL > 0).astype(np.int64)),
            labels=torch.from_numpy(labels.astype(np.int64)),
        ).loss.item()
    print(f"sft loss ours={float(loss):.7f} transformers={ref:.7f}")
    assert abs(float(loss) - ref) < 2e-5


def test_packed_and_padded_batches_give_same_loss_and_grads():
    model = create_model(tiny_config(), seed=1)
    examples = random_examples([5, 11, 7, 3, 9, 6], 100, seed=2, completion_from=2)
    packed, stats = pack_examples(examples, 24, pad_id=0)
    assert stats.rows < len(examples)  # some rows really hold several examples
    padded = pad_batch(examples, 24, pad_id=0)
    # Empty rows (all padding) give both batches one shape, hence one compilation.
    extra = len(examples) - stats.rows
    packed_arrays = {k: np.pad(v, ((0, extra), (0, 0))) for k, v in row_arrays(packed, 0).items()}
    vg = loss_and_grads(model)
    lp, gp = vg({k: jnp.asarray(v) for k, v in packed_arrays.items()})
    lu, gu = vg({k: jnp.asarray(v) for k, v in row_arrays(padded, 0).items()})
    gdiff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(gp), jax.tree.leaves(gu)))
    print(f"packed {float(lp):.7f} padded {float(lu):.7f} max|dgrad| {gdiff:.2e}")
    assert abs(float(lp) - float(lu)) < 1e-6
    assert gdiff < 1e-6


def sgd_step(model, arrays, accum, mesh):
    """One train step with SGD(lr=1): returns (metrics, parameter change = -grads)."""
    graphdef, params = nnx.split(model, nnx.Param)
    optimizer = optax.sgd(1.0)
    sharding = state_sharding(params, optimizer, mesh)
    state = init_state(params, optimizer, sharding)
    before = jax.tree.map(np.asarray, state.params)
    batch = local_rows(arrays, accum, 0, 1)
    step = make_train_step(graphdef, sft_objective(), optimizer, lambda s: 1.0, sharding,
                           {k: v.shape for k, v in batch.items()}, mesh)
    new, metrics = step(state, batch)
    delta = jax.tree.map(lambda a, b: np.asarray(a) - b, new.params, before)
    return jax.device_get(metrics), delta


def test_accumulation_4x2_equals_one_batch_of_8():
    model = create_model(tiny_config(), seed=3)
    # O(1) weights, so per-token losses vary (at the 0.02 init every token costs ~log V)
    nnx.update(model, jax.tree.map(lambda a: 2 * a, nnx.state(model, nnx.Param)))
    # Very unequal target counts per micro-batch: a mean of micro-batch means would differ.
    examples = random_examples([30, 29, 3, 4, 16, 2, 25, 5], 100, seed=4, completion_from=1)
    arrays = row_arrays(pad_batch(examples, 32, pad_id=0), 0)
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    m1, d1 = sgd_step(model, arrays, 1, mesh)
    m4, d4 = sgd_step(model, arrays, 4, mesh)
    gdiff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(d1), jax.tree.leaves(d4)))
    print(f"loss 1x8 {m1['loss']:.7f} 4x2 {m4['loss']:.7f} max|dgrad| {gdiff:.2e}")
    assert m1["denominator"] == m4["denominator"] == sum(len(e.tokens_L) - 1 for e in examples)
    assert abs(m1["loss"] - m4["loss"]) < 1e-6
    assert gdiff < 1e-6
    # The wrong normalisation (mean of per-micro-batch means) is measurably different.
    graphdef, params = nnx.split(model, nnx.Param)
    @jax.jit
    def micro_mean(b):
        total, (count, _) = sft_objective()(nnx.merge(graphdef, params), b)
        return total / count

    per_micro = [float(micro_mean({k: v[2 * a : 2 * a + 2] for k, v in arrays.items()})) for a in range(4)]
    print(f"mean of micro-batch means {np.mean(per_micro):.7f}")
    assert abs(np.mean(per_micro) - m1["loss"]) > 1e-2
