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


# a layer scan of 3 running splash's forward kernel, as XLA TPU prints it: q [B, n, L, H] =
# [2, 2, 2048, 128], k and v [2, 1, 2048, 128], block 512 (in the frontend attributes, on a
# line of their own), causal: the mask info [1, 4, 4] (4 query blocks, 4 key blocks wide)
SPLASH_LOOP = """
%cond (p: (s32[], bf16[2,2,2048,128])) -> pred[] {
  %p = (s32[], bf16[2,2,2048,128]) parameter(0)
  %i = s32[] get-tuple-element(%p), index=0
  %n = s32[] constant(3)
  ROOT %lt = pred[] compare(%i, %n), direction=LT
}

%body (q: (s32[], bf16[2,2,2048,128])) -> (s32[], bf16[2,2,2048,128]) {
  %q = (s32[], bf16[2,2,2048,128]) parameter(0)
  %j = s32[] get-tuple-element(%q), index=0
  %x = bf16[2,2,2048,128]{3,2,1,0:T(8,128)(2,1)} get-tuple-element(%q), index=1
  %mask = s8[1,4,4]{2,1,0} constant({...})
  %next = s8[1,4,4]{2,1,0} constant({...})
  %k = bf16[2,1,2048,128]{3,2,1,0} constant({...})
  %v = bf16[2,1,2048,128]{3,2,1,0} constant({...})
  %qseg = s32[2,2048,128]{2,1,0} constant({...})
  %kvseg = s32[2,8,2048]{2,1,0} constant({...})
  %iota = s32[2048,128]{1,0} constant({...})
  %splash_mha_fwd_segmented_residuals.3 = (f32[2,512,128]{2,1,0:T(8,128)}, bf16[2,2,2048,128]{3,2,1,0:T(8,128)(2,1)}, f32[2,2,2048,128]{3,2,1,0:T(8,128)}) custom-call(%mask, %next, %x, %k, %v, /*index=5*/%qseg, %kvseg, %iota), custom_call_target="tpu_custom_call", frontend_attributes={kernel_metadata={
"xprof_metadata":"{\\"block_q\\": 512, \\"block_kv\\": 512, \\"block_kv_compute\\": 512}"
}}, metadata={op_name="jit(step)/while/body/splash_mha_fwd_segmented_residuals/pallas_call"}, backend_config={"custom_call_config":{"body":"TUzvUgFN"}}
  %o = bf16[2,2,2048,128]{3,2,1,0} get-tuple-element(%splash_mha_fwd_segmented_residuals.3), index=1
  %one = s32[] constant(1)
  %k1 = s32[] add(%j, %one)
  ROOT %t = (s32[], bf16[2,2,2048,128]) tuple(%k1, %o)
}

ENTRY %main (a: bf16[2,2,2048,128]) -> bf16[2,2,2048,128] {
  %a = bf16[2,2,2048,128] parameter(0)
  %z = s32[] constant(0)
  %init = (s32[], bf16[2,2,2048,128]) tuple(%z, %a)
  %loop = (s32[], bf16[2,2,2048,128]) while(%init), condition=%cond, body=%body
  ROOT %r = bf16[2,2,2048,128] get-tuple-element(%loop), index=1
}
"""


def test_a_splash_call_in_a_loop_gets_analytic_figures_times_its_trips():
    scale = loop_scale(SPLASH_LOOP)
    assert scale.trip_counts == (3,) and scale.kernels == ("splash",)
    pairs = 1 + 2 + 3 + 4  # causal: query block i runs i + 1 key blocks
    flops = 2 * (2 * 512 * 512 * 128) * pairs * 2 * 2  # Q K^T and P V, per row and head
    assert scale.kernel_flops == 3 * flops
    q = kv = 2 * 2 * 2048 * 128 * 2  # q; k and v together (one kv head each)
    operands = 2 * 16 + q + kv + 2 * 2048 * 128 * 4 + 2 * 8 * 2048 * 4 + 2048 * 128 * 4
    results = 2 * 512 * 128 * 4 + q + 2 * 2 * 2048 * 128 * 4
    # k and v: again for each of the 2 query heads and its 10 of 4 x 4 blocks: 5 reads in all
    kernel = operands + results + (2 * pairs / 4 - 1) * kv
    assert scale.hlo_bytes == 3 * (kernel + 3 * 4)  # + the counter's add


def test_an_unknown_pallas_kernel_keeps_its_name_and_operand_bytes():
    text = SPLASH_LOOP.replace("splash_mha_fwd_segmented_residuals", "megablox_gmm")
    scale = loop_scale(text)
    assert scale.kernels == ("megablox_gmm",) and scale.kernel_flops == 0
    assert scale.hlo_bytes < loop_scale(SPLASH_LOOP).hlo_bytes


# a loop of 4 with one dot, then a conditional whose branches run two dots or one
CONDITIONAL = """
%cond (p: (f32[4,8], u32[])) -> pred[] {
  %p = (f32[4,8], u32[]) parameter(0)
  %i = u32[] get-tuple-element(%p), index=1
  %n = u32[] constant(4)
  ROOT %lt = pred[] compare(%i, %n), direction=LT
}

%body (q: (f32[4,8], u32[])) -> (f32[4,8], u32[]) {
  %q = (f32[4,8], u32[]) parameter(0)
  %x = f32[4,8] get-tuple-element(%q), index=0
  %w = f32[8,8] constant({...})
  %y = f32[4,8] dot(%x, %w), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  %j = u32[] get-tuple-element(%q), index=1
  %one = u32[] constant(1)
  %k = u32[] add(%j, %one)
  ROOT %t = (f32[4,8], u32[]) tuple(%y, %k)
}

%heavy (h: f32[4,8]) -> f32[4,8] {
  %h = f32[4,8] parameter(0)
  %w1 = f32[8,8] constant({...})
  %d1 = f32[4,8] dot(%h, %w1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  ROOT %d2 = f32[4,8] dot(%d1, %w1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%light (l: f32[4,8]) -> f32[4,8] {
  %l = f32[4,8] parameter(0)
  %w2 = f32[8,8] constant({...})
  ROOT %d3 = f32[4,8] dot(%l, %w2), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

ENTRY %main (a: f32[4,8], b: s32[]) -> f32[4,8] {
  %a = f32[4,8] parameter(0)
  %b = s32[] parameter(1)
  %z = u32[] constant(0)
  %init = (f32[4,8], u32[]) tuple(%a, %z)
  %loop = (f32[4,8], u32[]) while(%init), condition=%cond, body=%body
  %r = f32[4,8] get-tuple-element(%loop), index=0
  ROOT %c = f32[4,8] conditional(%b, %r, %r), branch_computations={%heavy, %light}
}
"""


def test_a_conditional_counts_only_its_heaviest_branch():
    """As XLA's cost analysis counts a conditional (the largest branch's FLOPs: checked on a
    v5e compile of lax.cond), once: 1 loop dot + 2 branch dots; trip-scaled: 4 + 2."""
    scale = loop_scale(CONDITIONAL)
    assert scale.flops == pytest.approx(6 / 3)
    heavy_only = loop_scale(CONDITIONAL.replace("{%heavy, %light}", "{%heavy}"))
    assert scale.hlo_bytes == heavy_only.hlo_bytes
    light_only = loop_scale(CONDITIONAL.replace("{%heavy, %light}", "{%light}"))
    assert light_only.hlo_bytes < scale.hlo_bytes
