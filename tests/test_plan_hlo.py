"""sqjax.plan.hlo on HLO forms XLA TPU emits that XLA CPU does not (written out by hand,
in the shapes a v6e-8 FSDP train step of Qwen2-Math-7B compiled to)."""

from __future__ import annotations

import pytest

from sqjax.plan.hlo import _dot_flops, loop_scale

# a windowed-einsum style loop: a u32 counter that the body advances by 2, bound 8
STEP_TWO = """
%cond (p: (f32[4,8], u32[])) -> pred[] {
  %p = (f32[4,8], u32[]) parameter(0)
  %i = u32[] get-tuple-element(%p), index=1
  %n = u32[]{:T(128)} constant(8)
  ROOT %lt = pred[] compare(%i, %n), direction=LT
}

%body (q: (f32[4,8], u32[])) -> (f32[4,8], u32[]) {
  %q = (f32[4,8], u32[]) parameter(0)
  %x = f32[4,8] get-tuple-element(%q), index=0
  %w = f32[8,8] constant({...})
  %y = f32[4,8] dot(%x, %w), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  %j = u32[] get-tuple-element(%q), index=1
  %two = u32[]{:T(128)} constant(2)
  %k = u32[] add(%j, %two)
  ROOT %t = (f32[4,8], u32[]) tuple(%y, %k)
}

ENTRY %main (a: f32[4,8]) -> f32[4,8] {
  %a = f32[4,8] parameter(0)
  %z = u32[] constant(0)
  %init = (f32[4,8], u32[]) tuple(%a, %z)
  %loop = (f32[4,8], u32[]) while(%init), condition=%cond, body=%body
  ROOT %r = f32[4,8] get-tuple-element(%loop), index=0
}
"""


def test_a_loop_counting_by_two_runs_half_its_bound():
    scale = loop_scale(STEP_TWO)
    assert scale.trip_counts == (4,)
    assert scale.flops == pytest.approx(4.0)
    # the same loop counting by one runs 8 times
    by_one = loop_scale(STEP_TWO.replace("constant(2)", "constant(1)"))
    assert by_one.trip_counts == (8,)


def conv_flops(out: str, lhs: str, rhs: str, attrs: str) -> float:
    return _dot_flops(out, "%a, %b", attrs, {"a": lhs, "b": rhs}, "convolution")


def test_a_dot_written_as_a_padded_convolution_counts_as_the_dot():
    # [4096 x (2 x 448)] @ [(2 x 448) x (28 x 128)]: the heads as a window of 28 with 27
    # padding on each side (one real tap per output position), the contraction 2 x 448
    got = conv_flops(
        "bf16[4096,28,128,1]",
        "bf16[4096,2,448,1]",
        "bf16[2,448,28,128]",
        ", window={size=28x2 pad=27_27x0_0 rhs_reversal=1x0}, dim_labels=b1f0_1i0o->b0f1",
    )
    assert got == 2 * 4096 * (2 * 448) * (28 * 128)


def test_a_plain_convolution_counts_every_tap():
    # length 10, window 3, stride 1, no padding: 8 outputs x 3 taps x 3 in x 5 out features
    got = conv_flops(
        "f32[1,8,5]", "f32[1,10,3]", "f32[3,3,5]", ", window={size=3}, dim_labels=b0f_0io->b0f"
    )
    assert got == 2 * 8 * 3 * 3 * 5
    # padded by 1 on each side: 10 outputs; the two edge ones have 2 real taps
    got = conv_flops(
        "f32[1,10,5]",
        "f32[1,10,3]",
        "f32[3,3,5]",
        ", window={size=3 pad=1_1}, dim_labels=b0f_0io->b0f",
    )
    assert got == 2 * (8 * 3 + 2 * 2) * 3 * 5


def test_a_dilated_convolution_counts_only_taps_on_input_elements():
    # XLA TPU's batched-dot-as-convolution: 4 inputs dilated by 4 (3 holes between), window
    # 4, stride 3: each of the 4 outputs has exactly one real tap
    got = conv_flops(
        "f32[4,256,1792]",
        "f32[4,64,256]",
        "f32[4,64,1792]",
        ", window={size=4 stride=3 lhs_dilate=4}, dim_labels=0fb_0io->0bf",
    )
    assert got == 2 * 4 * 256 * 1792 * 64


def test_a_kernel_dilated_convolution_counts_its_spread_taps():
    # length 10 padded by 2 on each side, window 3 with rhs_dilate 2 (taps at 0, 2, 4 of a
    # span of 5): 10 outputs; the two at each edge have one tap on padding
    got = conv_flops(
        "f32[1,10,5]",
        "f32[1,10,3]",
        "f32[3,3,5]",
        ", window={size=3 pad=2_2 rhs_dilate=2}, dim_labels=b0f_0io->b0f",
    )
    assert got == 2 * (6 * 3 + 4 * 2) * 3 * 5
