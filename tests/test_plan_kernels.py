"""sqjax.plan.kernels: the splash attention kernels' analytic FLOPs and bytes (which XLA's
cost analysis does not count), the peak memory a compile reports, and a real v5e compile
whose figures include them."""

from __future__ import annotations

import types

import pytest

from sqjax.plan import kernels
from sqjax.plan.compiled import figures

B, N, K, L, H = 2, 4, 2, 2048, 128
BLOCK_PAIR = 2 * 512 * 512 * 128  # one matmul over a (query block, key block) pair


def _arr(*dims: int, nbytes: int = 2) -> kernels.Array:
    n = 1
    for d in dims:
        n *= d
    return dims, n * nbytes


def _operands(mask: tuple[int, int, int], backward: bool = False) -> list[kernels.Array]:
    out = [_arr(*mask, nbytes=1), _arr(*mask, nbytes=1)]
    out += [_arr(B, N, L, H), _arr(B, K, L, H), _arr(B, K, L, H)]
    out += [_arr(B, L, 128, nbytes=4), _arr(B, 8, L, nbytes=4)]
    if backward:  # logsumexp, dO, di
        out += [_arr(B, N, 1, L, nbytes=4), _arr(B, N, L, H), _arr(B, N, 1, L, nbytes=4)]
    return out


def test_the_backward_kernels_count_their_matmuls():
    """dq: Q K^T recomputed, dO V^T, dS K; dkv: Q K^T, P^T dO, dO V^T, dS^T Q."""
    rows = [_arr(B, L, H, nbytes=4), _arr(B, N, L, H)]
    fwd = kernels.cost("splash_mha_fwd_segmented_residuals.2", "", _operands((1, 4, 4)), rows)
    dq = kernels.cost("splash_mha_dq_segmented_no_residuals", "", _operands((1, 4, 4), True), rows)
    dkv_rows = [_arr(B, L, H, nbytes=4), _arr(B, K, L, H), _arr(B, K, L, H)]
    dkv = kernels.cost("splash_mha_dkv.1", "", _operands((1, 4, 4), True), dkv_rows)
    assert fwd.flops == 2 * BLOCK_PAIR * 10 * B * N  # 10 of the 16 causal block pairs
    assert (dq.kernel, dq.flops / fwd.flops) == ("splash_mha_dq", 1.5)
    assert (dkv.kernel, dkv.flops / fwd.flops) == ("splash_mha_dkv", 2.0)
    fused = kernels.cost("splash_mha_dkv", "", _operands((1, 4, 4), True), [*dkv_rows, rows[1]])
    assert (fused.kernel, fused.flops / fwd.flops) == ("splash_mha_dkv_fused", 2.5)
    # dkv streams the query side: Q, dO and the row statistics 10 / 4 times
    query_side = sum(b for dims, b in _operands((1, 4, 4), True) if len(dims) == 4 and dims[1] == N)
    once = sum(b for _, b in _operands((1, 4, 4), True)) + sum(b for _, b in dkv_rows)
    assert dkv.bytes == once + (10 / 4 - 1) * query_side


def test_a_device_holding_one_row_counts_its_squeezed_kernels():
    """With one row per device (the paper's SFT on v6e-8, FSDP 8) XLA squeezes the vmapped
    row axis away: q, k, v are rank 3 beside the rank-3 int8 mask info, and count as B = 1."""
    one_row = [
        (dims[1:], b // B) if len(dims) == 4 else (dims, b) for dims, b in _operands((1, 4, 4))
    ]
    fwd = kernels.cost("splash_mha_fwd", "", one_row, [_arr(N, L, H)])
    assert fwd.flops == 2 * BLOCK_PAIR * 10 * N
    batched = kernels.cost("splash_mha_fwd", "", _operands((1, 4, 4)), [_arr(B, N, L, H)])
    assert fwd.flops * B == batched.flops


def test_a_window_runs_the_blocks_its_mask_info_is_wide():
    """A 1024-token window over 512-blocks: rows 3 blocks wide (the mask info [1, 4, 3]),
    1 + 2 + 3 + 3 pairs of the 16."""
    rows = [_arr(B, N, L, H)]
    local = kernels.cost("splash_mha_fwd", "", _operands((1, 4, 3)), rows)
    assert local.flops == 2 * BLOCK_PAIR * 9 * B * N
    assert kernels.causal_fraction(L, 512, 1024) == 9 / 16
    assert kernels.causal_fraction(L, 512) == 10 / 16


def test_block_sizes_come_from_the_kernel_metadata():
    attrs = 'frontend_attributes={kernel_metadata={"xprof_metadata":"{\\"block_q\\": 1024, \\"block_kv\\": 1024}"}}'
    got = kernels.cost("splash_mha_fwd", attrs, _operands((1, 2, 2)), [_arr(B, N, L, H)])
    assert got.flops == 2 * (4 * BLOCK_PAIR) * 3 * B * N  # 3 of 2 x 2 pairs of 1024-blocks
    assert kernels.cost("megablox_gmm", attrs, _operands((1, 2, 2)), []) is None
    assert kernels.family("megablox_gmm.3", "") == "megablox_gmm"


class _Compiled:
    """What figures() reads of a compiled program."""

    def __init__(self, peak: int | None):
        stats = {
            "argument_size_in_bytes": 100,
            "output_size_in_bytes": 50,
            "alias_size_in_bytes": 40,
            "temp_size_in_bytes": 200,
            "generated_code_size_in_bytes": 10,
        }
        if peak is not None:
            stats["peak_memory_in_bytes"] = peak
        self.stats = types.SimpleNamespace(**stats)

    def compile(self):
        return self

    def memory_analysis(self):
        return self.stats

    def cost_analysis(self):
        return {"flops": 1.0, "bytes accessed": 1.0}

    def as_text(self) -> str:
        return "ENTRY %main (a: f32[4]) -> f32[4] {\n  ROOT %a = f32[4] parameter(0)\n}\n"


@pytest.mark.parametrize("peak,total", [(1000, 1000.0), (300, 320.0), (None, 320.0)])
def test_memory_is_the_larger_of_the_sum_and_the_peak(peak, total):
    f = figures("p", lambda: _Compiled(peak), capacity_bytes=500)
    assert (f.total_bytes, f.summed_bytes, f.peak_bytes) == (total, 320.0, float(peak or 0))
    assert f.fits == (total <= 500) and f.attention_kernel == "xla"


def _train_figures(attention: str):
    from test_training_support import tiny_config

    from sqjax.plan import programs
    from sqjax.plan.topology import devices
    from sqjax.sharding import make_mesh

    cfg = tiny_config(
        head_dim=128, num_heads=4, num_kv_heads=2, hidden_size=256, attention=attention
    )
    mesh = make_mesh(4, 1, 2, devices=devices("v5e-8"))
    shape = programs.TrainShape("sft", rows=8, seq_len=512, remat="full")
    return figures(attention, lambda: programs.train_step(cfg, mesh, shape), 16 * 2**30)


@pytest.mark.slow  # two v5e compiles: ~20 s on 2 cores
def test_a_v5e_train_step_counts_the_splash_kernels():
    """A 2-layer decoder's SFT step with full remat for v5e:2x4 (rows 8 over data 4, heads
    4 over tensor 2: B 2, n 2 per device; L 512 = one block, which causal does not skip).
    Per layer splash runs the forward twice (remat), dq and dkv: 2 + 2 + 3 + 4 = 11 matmuls
    of 2 L^2 H per row and head; XLA's attention (`_gqa`) 2 + 2 + 4 = 8."""
    pytest.importorskip("libtpu", reason="needs the TPU extra: pip install -e '.[tpu]'")
    splash, xla = _train_figures("splash"), _train_figures("xla")
    assert (splash.attention_kernel, xla.attention_kernel) == ("splash", "xla")
    matmul = 2 * 512**2 * 128 * 2 * 2 * kernels.causal_fraction(512)
    assert splash.kernel_flops == pytest.approx(2 * 11 * matmul, rel=0.01)
    assert xla.kernel_flops == 0
    # the same program otherwise: the difference is splash's 3 recomputed matmuls per layer
    assert splash.flops - xla.flops == pytest.approx(2 * 3 * matmul, rel=0.2)
    assert splash.peak_bytes > 0 and splash.total_bytes >= splash.summed_bytes
