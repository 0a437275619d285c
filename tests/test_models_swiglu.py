"""The SwiGLU feed-forward's hand-written backward equals autodiff's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sqjax.models.layers import swiglu


@pytest.mark.parametrize("dtype, tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 3e-2)])
def test_swiglu_backward_equals_autodiff(dtype, tol):
    """The hand-written SwiGLU backward gives autodiff's gradients for x and all three
    weights (bfloat16: its elementwise gradients are computed in float32, so within bf16)."""
    r = np.random.default_rng(0)
    B, L, D, F = 2, 7, 16, 24
    x, gate, up, down, w = (
        jnp.asarray(r.normal(size=s), jnp.float32).astype(dtype)
        for s in ((B, L, D), (D, F), (D, F), (F, D), (B, L, D))
    )

    def autodiff(x, gate, up, down):
        h_BLF = jax.nn.silu(x @ gate) * (x @ up)
        return h_BLF @ down

    def loss(fn):
        return lambda *a: jnp.sum((fn(*a) * w).astype(jnp.float32))

    np.testing.assert_allclose(
        np.asarray(swiglu(x, gate, up, down), np.float32),
        np.asarray(autodiff(x, gate, up, down), np.float32),
        rtol=tol,
        atol=tol,
    )
    want = jax.grad(loss(autodiff), argnums=(0, 1, 2, 3))(x, gate, up, down)
    got = jax.jit(jax.grad(loss(swiglu), argnums=(0, 1, 2, 3)))(x, gate, up, down)
    for name, g, w_ in zip(("x", "gate", "up", "down"), got, want):
        assert g.dtype == w_.dtype, name
        scale = float(jnp.max(jnp.abs(w_.astype(jnp.float32))))
        np.testing.assert_allclose(
            np.asarray(g, np.float32) / scale,
            np.asarray(w_, np.float32) / scale,
            rtol=tol,
            atol=tol,
            err_msg=name,
        )
