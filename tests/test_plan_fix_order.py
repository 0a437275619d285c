"""The order in which `sqjax plan` compiles the variants of a sampling program that does not
fit: variants estimated to fit first, fastest first, re-ranked after each one that does not
fit (no compile here: a stub planner gives each variant's argument bytes, and its "compile"
adds the temporaries the real program had)."""

from types import SimpleNamespace

import pytest

from sqjax.plan.api import _fix, _ranked, _temps_per_row, _variants, fix_text
from sqjax.plan.compiled import Figures
from sqjax.plan.programs import SampleShape
from sqjax.plan.workload import Job

GIB = 1024**3
CAPACITY = 31.25 * GIB  # a v6e chip
WEIGHTS, CACHE = 13.8 * GIB, 16.2 * GIB  # per device at tensor 1 and the configured batch
# The shape of v6e-8's DeepSeekMath-7B question decode before 0edc040: 128 rows over data 8
# needed 43.8 GiB, 13.8 GiB of it temporaries; a wider tensor axis alone never fits.
JOB = Job("gen-questions", "qpo:deepseek-math-rl", "decode", SampleShape(128, 2048, 100, 16), 1.0)
BASE = Figures("decode", False, CAPACITY, 43.8 * GIB, compile_seconds=1.0)
TEMPS_PER_ROW = (43.8 * GIB - WEIGHTS - CACHE) / 128


class StubPlanner:
    """Argument bytes per device: the weights split over the tensor axis plus the slots'
    cache (the same per device whatever the tensor axis: more rows, fewer kv heads)."""

    device = SimpleNamespace(hbm_bytes=CAPACITY)
    topo = SimpleNamespace(num_devices=8)

    def __init__(self):
        self.compiled = []

    def argument_bytes(self, job, sizes):
        return WEIGHTS / sizes[2] + CACHE * job.shape.slots / 128

    def compile(self, job, sizes):
        self.compiled.append((job.shape.slots, sizes))
        total = self.argument_bytes(job, sizes) + TEMPS_PER_ROW * job.shape.slots
        return Figures("decode", total <= CAPACITY, CAPACITY, total, compile_seconds=1.0)


def test_sampling_variants_are_every_tensor_and_batch_combination():
    texts = [fix_text(changes) for changes, _, _ in _variants(JOB, (8, 1, 1), 8)]
    assert len(texts) == 4 * 3 - 1  # tensor 1, 2, 4, 8 x batch 128, 64, 32, less the job itself
    assert "stage_mesh.gen-questions: {data: -1, fsdp: 1, tensor: 2}" in texts
    assert "gen_questions.batch_size: 64" in texts
    assert (
        "stage_mesh.gen-questions: {data: -1, fsdp: 1, tensor: 2} and gen_questions.batch_size: 32"
        in texts
    )


def test_variants_estimated_to_fit_come_first_fastest_first():
    planner = StubPlanner()
    temps = _temps_per_row(planner, JOB, (8, 1, 1), BASE)
    assert temps == pytest.approx(TEMPS_PER_ROW)
    ranked = _ranked(planner, temps, _variants(JOB, (8, 1, 1), 8))

    def estimate(variant, mesh):
        return planner.argument_bytes(variant, mesh) + temps * variant.shape.slots

    fits = [estimate(v, m) <= CAPACITY for _, v, m in ranked]
    assert fits == sorted(fits, reverse=True) and any(fits) and not all(fits)
    per_row = [
        planner.argument_bytes(v, m) / v.shape.slots for (_, v, m), f in zip(ranked, fits) if f
    ]
    assert per_row == sorted(per_row)
    # the tensor-only variants (all 128 rows) are estimated not to fit: they go last
    assert {v.shape.slots for _, v, _ in ranked[-3:]} == {128}
    changes, variant, mesh = ranked[0]
    assert mesh == (1, 1, 8) and variant.shape.slots == 64
    assert changes == {
        "stage_mesh.gen-questions": {"data": -1, "fsdp": 1, "tensor": 8},
        "gen_questions.batch_size": 64,
    }


def test_one_compile_finds_the_fix_that_two_tensor_variants_missed():
    planner = StubPlanner()
    _, figures, variant, mesh = _fix(planner, JOB, (8, 1, 1), 1, BASE)
    assert figures.fits and planner.compiled == [(variant.shape.slots, mesh)]
    assert variant.shape.slots < JOB.shape.slots


def test_a_variant_that_does_not_fit_sends_the_search_to_a_smaller_batch():
    # arguments alone over HBM: the configured program was not compiled, its temporaries are
    # unknown, and the first guess (tensor 8, all rows) does not fit; the second compile is
    # re-ranked with that program's temporaries and cuts the batch
    planner = StubPlanner()
    base = Figures("decode", False, CAPACITY, 30.0 * GIB)  # not compiled: compile_seconds 0
    assert _temps_per_row(planner, JOB, (8, 1, 1), base) == 0.0
    _, figures, variant, mesh = _fix(planner, JOB, (8, 1, 1), 2, base)
    assert planner.compiled == [(128, (1, 1, 8)), (variant.shape.slots, mesh)]
    assert figures.fits and variant.shape.slots == 64 and mesh == (1, 1, 8)
