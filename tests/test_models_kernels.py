"""Fused attention kernels against the decoder's `_gqa` in float32 (splash and Triton in
interpret mode on CPU): values and gradients at every real position, causal, sliding window,
packed segments, GQA, a length that is not a block multiple, a fully padded row; the
decoder and a sharded program running them; the kernel choice and its errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_training_support import tiny_config

from sqjax.errors import SqjaxError
from sqjax.models import gpu_kernels, kernels
from sqjax.models.cache import attention_mask
from sqjax.models.decoder import _gqa, create_model
from sqjax.sharding import make_mesh

B, L, N, K, H = 3, 200, 4, 2, 16  # L: one full 128-block and a partial one


def _rows(kind: str):
    """Positions and segment ids [B, L]: row 0 packed (two segments, then packing's
    padding), row 1 left-padded, row 2 all padding (or all causal rows for `causal`)."""
    pos, seg = np.tile(np.arange(L), (B, 1)), np.ones((B, L), np.int32)
    if kind != "causal":
        pos[0, 90:], seg[0, 90:] = np.arange(L - 90), 2
        pos[0, 180:], seg[0, 180:] = 0, 0
        pos[1, :30], pos[1, 30:] = -1, np.arange(L - 30)
        pos[2] = -1
    return jnp.asarray(pos), jnp.asarray(seg)


def _qkv(seed: int = 0):
    r = np.random.default_rng(seed)
    shapes = ((B, L, N, H), (B, L, K, H), (B, L, K, H))
    return [jnp.asarray(r.normal(size=s), jnp.float32) for s in shapes]


def _against_gqa(kernel: str, kind: str, window: int | None, block: int = 128):
    q, k, v = _qkv()
    pos, seg = _rows(kind)
    mask = attention_mask(pos, pos, window, seg, seg)
    real = ((pos >= 0) & (seg > 0))[:, :, None, None]  # what a model reads of the output
    ids = kernels.segments(pos, seg)
    weights = jnp.asarray(np.random.default_rng(1).normal(size=q.shape), jnp.float32) * real

    def fused(q, k, v):
        return kernels.attend(kernel, q, k, v, ids, window=window, block=block)

    def reference(q, k, v):
        return _gqa(q, k.transpose(0, 2, 3, 1), v.transpose(0, 2, 1, 3), mask)

    got, want = jax.jit(fused)(q, k, v), reference(q, k, v)
    np.testing.assert_allclose(np.where(real, got, 0), np.where(real, want, 0), atol=1e-5)
    grads = [
        jax.jit(jax.grad(lambda *a, f=f: jnp.sum(f(*a) * weights), argnums=(0, 1, 2)))(q, k, v)
        for f in (fused, reference)
    ]
    for name, a, b in zip("qkv", *grads):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=f"d{name}")


@pytest.mark.parametrize(
    "kind,window,block",
    [("causal", None, 128), ("packed", None, 128), ("packed", 37, 128), ("packed", None, 256)],
)
def test_splash_interpret_equals_gqa(kind, window, block):
    """Splash (interpret mode): causal; packed + left padding + a fully padded row; the same
    with a 37-token sliding window; one 256-block over the 200 tokens."""
    _against_gqa("splash", kind, window, block)


@pytest.mark.parametrize("kind", ["causal", "packed"])
def test_triton_interpret_equals_gqa(kind):
    _against_gqa("triton", kind, None)


def _hidden_and_grads(cfg, ids, pos, seg, per_layer: bool = False):
    model = create_model(cfg, seed=3)
    if per_layer:
        model = model.unstacked()
    from flax import nnx

    graphdef, params = nnx.split(model)
    real = ((pos >= 0) & (seg > 0))[:, :, None]

    def loss(params):
        h = nnx.merge(graphdef, params).hidden(ids, positions_BL=pos, segment_ids_BL=seg)
        return jnp.sum(jnp.where(real, h, 0.0) ** 2), h

    (_, h), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    return np.where(real, h, 0.0), grads


@pytest.mark.parametrize("per_layer", [False, True])
def test_decoder_with_splash_equals_xla(per_layer):
    """A Qwen2-style decoder whose first layer attends fully and whose second has a
    50-token window (the switch between two splash kernels), stacked and per layer."""
    cfg = tiny_config(family="qwen2", qkv_bias=True, head_dim=16, sliding_window=50)
    cfg = cfg.replace(max_window_layers=1)
    pos, seg = _rows("packed")
    ids = jnp.asarray(np.random.default_rng(2).integers(0, 100, (B, L)), jnp.int32)
    h_x, g_x = _hidden_and_grads(cfg.replace(attention="xla"), ids, pos, seg, per_layer)
    h_s, g_s = _hidden_and_grads(cfg.replace(attention="splash"), ids, pos, seg, per_layer)
    np.testing.assert_allclose(h_s, h_x, atol=2e-5)
    for a, b in zip(jax.tree.leaves(g_s), jax.tree.leaves(g_x)):
        np.testing.assert_allclose(a, b, atol=2e-4, rtol=1e-4)


def test_splash_under_an_8_device_mesh_equals_one_device():
    """Traced under a (data 2, fsdp 2, tensor 2) mesh, as the train step is: the kernel runs
    under shard_map on each device's rows and heads, with the same result."""
    cfg = tiny_config(head_dim=16, attention="splash")
    B8 = 4
    pos = jnp.tile(jnp.arange(L), (B8, 1))
    seg = jnp.ones((B8, L), jnp.int32)
    ids = jnp.asarray(np.random.default_rng(4).integers(0, 100, (B8, L)), jnp.int32)
    model = create_model(cfg, seed=3)
    want = jax.jit(lambda: model.hidden(ids, positions_BL=pos, segment_ids_BL=seg))()
    mesh = make_mesh(2, 2, 2)

    def traced(ids):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return model.hidden(ids, positions_BL=pos, segment_ids_BL=seg)

    rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp")))
    lowered = jax.jit(traced).lower(jax.device_put(ids, rows))
    assert "shard_map" in lowered.as_text() or "sdy.manual_computation" in lowered.as_text()
    got = lowered.compile()(jax.device_put(ids, rows))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-5)


@pytest.mark.slow
def test_train_step_compiled_for_v5e_runs_splash():
    """An ahead-of-time compile of a small decoder's SFT step for v5e:2x4 (sqjax plan's
    path) holds the splash kernels as TPU custom calls: the default `auto` picks splash."""
    from sqjax.plan import programs
    from sqjax.plan.topology import devices

    cfg = tiny_config(head_dim=128, num_heads=4, num_kv_heads=2, hidden_size=256)
    mesh = make_mesh(4, 1, 2, devices=devices("v5e-8"))
    shape = programs.TrainShape("sft", rows=8, seq_len=512, remat="full")
    with jax.default_matmul_precision("default"):  # conftest's "highest": no bf16 Mosaic dot
        text = programs.train_step(cfg, mesh, shape).compile().as_text()
    assert "tpu_custom_call" in text
    assert "splash_mha_fwd" in text and "splash_mha_dkv" in text


def test_choice_by_platform():
    def pick(requested, where, packed=False, window=None, dtype=jnp.bfloat16, length=1024):
        return kernels.choose(
            requested, where, packed=packed, window=window, dtype=dtype, length=length
        )

    with jax.default_matmul_precision("default"):  # as on a TPU run
        assert pick("auto", "tpu").kernel == "splash"
    assert pick("auto", "cpu").kernel == "xla"
    assert pick("splash", "tpu", length=64).kernel == "xla"  # below a kernel's smallest block
    assert pick("splash", "cpu").kernel == "splash"  # interpret mode
    got = pick("triton", "cpu", window=64)
    assert got.kernel == "xla" and "sliding window" in got.fallback


def test_splash_on_tpu_at_float32_precision_falls_back_to_xla():
    """Mosaic has no bf16 dot at "highest" (conftest's setting): splash for 16-bit inputs
    gives way to XLA with the reason; float32 inputs, or the default precision, keep it."""

    def pick(requested, dtype=jnp.bfloat16):
        return kernels.choose(requested, "tpu", packed=False, window=None, dtype=dtype, length=1024)

    for requested in ("auto", "splash"):
        got = pick(requested)
        assert got.kernel == "xla" and "jax_default_matmul_precision=highest" in got.fallback
        assert pick(requested, jnp.float32) == kernels.Choice("splash")
        with jax.default_matmul_precision("default"):
            assert pick(requested) == kernels.Choice("splash")
    assert pick("splash", jnp.float16).kernel == "xla"


def test_gpu_fallbacks_are_stated(monkeypatch):
    """On a GPU: cuDNN for unpacked rows, Triton for packed ones; a kernel whose probe fails
    gives way to the next, with the reason as the fallback note."""
    probes = {"cudnn": None, "triton": None}
    monkeypatch.setattr(gpu_kernels, "probe", lambda kernel, dtype, window: probes[kernel])

    def pick(requested, packed):
        return kernels.choose(
            requested, "gpu", packed=packed, window=None, dtype=jnp.bfloat16, length=2048
        )

    assert pick("auto", False) == kernels.Choice("cudnn")
    assert pick("auto", True) == kernels.Choice("triton")
    got = pick("cudnn", True)
    assert got.kernel == "triton" and "segment ids" in got.fallback
    probes["cudnn"] = "cuDNN 8.6 is too old"
    got = pick("auto", False)
    assert got.kernel == "triton" and "too old" in got.fallback
    probes["triton"] = "no Triton lowering"
    assert pick("auto", False).kernel == "xla"


def test_a_window_no_shorter_than_the_call_is_full_attention():
    cfg = tiny_config(family="mistral", sliding_window=4096, attention="splash")
    plan = kernels.layer_kernels(cfg, 4096, True, jnp.float32, "tpu")
    assert plan.branches == ((None, kernels.Choice("splash")),) and plan.name == "splash"
    plan = kernels.layer_kernels(cfg, 8192, True, jnp.float32, "tpu")
    assert plan.branches == ((4096, kernels.Choice("splash")),)


def test_attention_option_errors_are_one_clear_line():
    with pytest.raises(SqjaxError, match=r"attention='flash' is not a known attention kernel; use"):
        tiny_config(attention="flash")
    with pytest.raises(SqjaxError, match="attention_block=100 must be a positive multiple of 128"):
        tiny_config(attention_block=100)
    model = create_model(tiny_config(attention="cudnn"))
    ids = jnp.zeros((1, 256), jnp.int32)
    with pytest.raises(SqjaxError) as err:
        model(ids)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        "attention=cudnn needs a gpu device, but this program compiles for cpu"
    )
    with pytest.raises(SqjaxError, match="attention=splash needs a tpu or cpu device"):
        kernels.choose("splash", "gpu", packed=False, window=None, dtype=jnp.float32, length=512)


def test_with_attention_reaches_every_layer_over_the_same_arrays():
    """`attention:` of a run config reaches a loaded model through Decoder.with_attention
    (LLM(..., attention=) and TrainConfig.attention): every layer's config, same weights."""
    from flax import nnx

    from sqjax.models.decoder import Attention
    from sqjax.sampling.llm import LLM

    model = create_model(tiny_config(head_dim=16), seed=5)
    twin = model.with_attention("splash", 256)
    layers = [m.cfg for _, m in nnx.iter_graph(twin) if isinstance(m, Attention)]
    assert layers and all(c.attention == "splash" and c.attention_block == 256 for c in layers)
    assert model.config.attention == "auto" and twin.config.attention_block == 256
    assert twin.embed[...] is model.embed[...]
    assert model.with_attention(None) is model
    pos, seg = _rows("packed")
    ids = jnp.asarray(np.random.default_rng(6).integers(0, 100, (B, L)), jnp.int32)
    want = model.hidden(ids, positions_BL=pos, segment_ids_BL=seg)
    got = twin.hidden(ids, positions_BL=pos, segment_ids_BL=seg)
    real = ((pos >= 0) & (seg > 0))[:, :, None]
    np.testing.assert_allclose(np.where(real, got, 0), np.where(real, want, 0), atol=2e-5)
    assert LLM(model, attention="xla", layout="stacked").config.attention == "xla"
