"""The jitted train step: 8 fake devices (fsdp=4, tensor=2) equal 1 device (LM head in chunks);
remat is exact."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
from flax import nnx
from test_losses_sft import random_examples
from test_training_support import tiny_config

from sqjax.data.packing import pack_examples
from sqjax.models.decoder import create_model
from sqjax.sharding import make_mesh
from sqjax.training.api import with_precision
from sqjax.training.inputs import local_rows, row_arrays
from sqjax.training.sft import sft_objective
from sqjax.training.step import init_state, make_train_step, state_sharding


def two_steps(mesh, remat="none", logits_chunk=0, accum=2):
    model = create_model(tiny_config(vocab_size=96), seed=7)
    examples = random_examples([9, 17, 5, 12, 20, 7, 11, 6, 14, 3, 8, 15, 30, 4, 9, 22], 96, seed=8)
    packed, _ = pack_examples(examples, 32)
    assert packed.tokens_BL.shape[0] >= 8  # 8 rows: 2 micro-batches of 4 rows, one per fsdp shard
    batch = local_rows({k: v[:8] for k, v in row_arrays(packed, 0).items()}, accum, 0, 1)
    graphdef, params = nnx.split(model, nnx.Param)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2, weight_decay=0.1))
    sharding = state_sharding(params, optimizer, mesh)
    state = init_state(params, optimizer, sharding)
    step = make_train_step(graphdef, sft_objective(remat, logits_chunk), optimizer, lambda s: 1e-2, sharding,
                           {k: v.shape for k, v in batch.items()}, mesh)
    history = []
    for _ in range(2):
        state, metrics = step(state, batch)
        history.append(jax.device_get(metrics))
    return history, state


def max_param_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.slow
def test_sharded_step_on_8_devices_equals_one_device():
    # the LM head in chunks of 8 positions (rows are 32): the chunked head is sharded too
    one, s1 = two_steps(make_mesh(1, 1, 1, devices=jax.devices()[:1]), logits_chunk=8)
    mesh8 = make_mesh(data=1, fsdp=4, tensor=2)
    eight, s8 = two_steps(mesh8, logits_chunk=8)
    q = s8.params["blocks"]["attn"]["q"][...]
    assert tuple(q.sharding.spec) == (None, "fsdp", "tensor", None)  # really sharded: FSDP x tensor
    mu = s8.opt_state[1][0].mu["blocks"]["attn"]["q"][...]
    assert tuple(mu.sharding.spec) == (None, "fsdp", "tensor", None)  # moments follow their params
    diff = max_param_diff(s1.params, s8.params)
    print(f"1 device losses {[float(m['loss']) for m in one]}, 8 devices {[float(m['loss']) for m in eight]}, "
          f"max |dparam| after 2 steps {diff:.2e}")
    for a, b in zip(one, eight):  # float32 sums in another order: a few ulps of a ~4.6 loss
        assert abs(a["loss"] - b["loss"]) < 4e-6 and abs(a["grad_norm"] - b["grad_norm"]) < 1e-5
    # AdamW divides by sqrt(v): where a gradient is ~0, float reordering noise in it moves the
    # update; 1e-5 is 0.1% of one step of lr 1e-2.
    assert diff < 1e-5


def test_remat_gives_the_same_step():
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    plain, sp = two_steps(mesh)
    remat, sr = two_steps(mesh, remat="full")
    diff = max_param_diff(sp.params, sr.params)
    print(f"remat: losses {[float(m['loss']) for m in remat]}, max |dparam| {diff:.2e}")
    assert abs(plain[1]["loss"] - remat[1]["loss"]) < 1e-6 and diff < 1e-5  # see above


def test_one_micro_batch_equals_accumulation():
    # token-normalised accumulation: two micro-batches of 4 rows step like one of 8
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    whole, sw = two_steps(mesh, accum=1)
    halves, sh = two_steps(mesh, accum=2)
    diff = max_param_diff(sw.params, sh.params)
    losses = [[float(m["loss"]) for m in run] for run in (whole, halves)]
    print(f"accum 1 losses {losses[0]}, accum 2 {losses[1]}, max |dparam| {diff:.2e}")
    for a, b in zip(whole, halves):
        assert abs(a["loss"] - b["loss"]) < 1e-6 and a["denominator"] == b["denominator"]
    assert diff < 1e-5  # see above


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_master_weights():
    model = create_model(tiny_config(vocab_size=96), seed=9)
    mixed = with_precision(model, "bfloat16")
    assert {x.dtype for x in jax.tree.leaves(nnx.state(mixed, nnx.Param))} == {np.dtype("float32")}
    tokens = np.arange(1, 17, dtype=np.int32)[None]
    full, half = np.asarray(model(tokens)), np.asarray(mixed(tokens))
    assert mixed.compute_dtype == jax.numpy.bfloat16 and not np.array_equal(full, half)
    assert np.max(np.abs(full - half)) < 0.05  # bf16 activations, same weights
