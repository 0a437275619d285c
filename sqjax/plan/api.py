"""`plan(run, topology)`: every stage's programs compiled for a TPU slice, whether each fits
its devices' HBM, a fix checked by compiling it for each one that does not, and a roofline
estimate of each stage's time on the slice."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from sqjax.models.config import ModelConfig
from sqjax.pipeline.config import RunSettings, stage_mesh
from sqjax.plan import programs as P
from sqjax.plan.abstract import abstract_model, model_config, param_count
from sqjax.plan.compiled import Figures, figures
from sqjax.plan.roofline import Device, device, seconds
from sqjax.plan.topology import Topology, devices, topology
from sqjax.plan.workload import Job, jobs

GIB = 1024**3
MAX_FIX_TRIES = 4  # compiles tried per program that does not fit


@dataclasses.dataclass
class ProgramPlan:
    job: Job
    mesh: tuple[int, int, int]
    figures: Figures
    seconds_per_call: float
    hours: float
    efficiency: dict[str, float]
    fix: str | None = None  # a variant that fits, checked by compiling it (fix_text)
    fix_changes: dict[str, Any] | None = None  # the same as config key path -> value
    fix_figures: Figures | None = None
    fix_mesh: tuple[int, int, int] | None = None


@dataclasses.dataclass
class PlanResult:
    topology: Topology
    device: Device
    programs: list[ProgramPlan]
    versions: dict[str, str]

    def failures(self) -> list[ProgramPlan]:
        return [p for p in self.programs if not p.figures.fits]


class Planner:
    """Compiles jobs on one topology, each distinct program once."""

    def __init__(self, run: RunSettings, topo: Topology, log: Callable[[str], None] = print):
        self.run, self.topo, self.log = run, topo, log
        self.device = device(topo)
        self.devices = devices(topo.name)
        self.cache: dict[tuple, Figures] = {}

    def mesh(self, sizes: tuple[int, int, int]):
        from sqjax.sharding import make_mesh

        return make_mesh(*sizes, devices=self.devices)

    def rows_multiple(self, sizes: tuple[int, int, int]) -> int:
        m = self.mesh(sizes)
        return m.shape["data"] * m.shape["fsdp"]

    def argument_bytes(self, job: Job, sizes: tuple[int, int, int]) -> float:
        """What the program's arguments take per device (weights, train state or slots),
        from their shapes and shardings: no compile."""
        cfg = model_config(self.run, job.model)
        dtype = self.run.models[job.model.rpartition(":")[2]].dtype
        return P.argument_bytes(job.kind, cfg, self.mesh(sizes), job.shape, dtype)

    def compile(self, job: Job, sizes: tuple[int, int, int]) -> Figures:
        key = (job.key, sizes)
        if key not in self.cache:
            cfg = model_config(self.run, job.model)
            name = f"{job.stage}/{job.kind} {job.model}"
            mesh, cap = self.mesh(sizes), self.device.hbm_bytes
            args = self.argument_bytes(job, sizes)
            if args > cap:  # cannot fit: no need to spend minutes compiling it
                self.log(f"{name} on {self.topo.name} mesh {sizes}: arguments alone exceed HBM")
                note = f"arguments alone need {args / GIB:.2f} GiB per device (not compiled)"
                self.cache[key] = Figures(name, False, cap, args, argument_bytes=args, error=note)
                return self.cache[key]
            self.log(f"compiling {name} on {self.topo.name} mesh {sizes} ...")
            self.cache[key] = figures(name, _lowerer(job, cfg, mesh, self.run), cap)
            f = self.cache[key]
            self.log(f"  {f.total_gib:.2f} GiB/device, fits={f.fits}, {f.compile_seconds:.0f} s")
        return self.cache[key]


def _lowerer(job: Job, cfg: ModelConfig, mesh, run: RunSettings) -> Callable[[], Any]:
    dtype = run.models[job.model.rpartition(":")[2]].dtype
    if job.kind == "train":
        shape = dataclasses.replace(job.shape, compute_dtype=dtype)
        return lambda: P.train_step(cfg, mesh, shape)
    if job.kind == "reference":
        shape = dataclasses.replace(job.shape, compute_dtype=dtype)
        return lambda: P.reference_pass(cfg, mesh, shape)
    if job.kind == "regressor":
        shape = dataclasses.replace(job.shape, compute_dtype=dtype)
        return lambda: P.regressor_step(cfg, mesh, shape)
    if job.kind == "insert":
        return lambda: P.insert(cfg, mesh, job.shape)
    if job.kind == "decode":
        return lambda: P.decode(cfg, mesh, job.shape, job.span)
    rows, seq_len, kind = job.shape
    return lambda: P.score(cfg, mesh, rows, seq_len, kind, dtype)


def _efficiency(job: Job, f: Figures, cfg: ModelConfig, sizes, planner: Planner) -> dict:
    """Compiled figures against their minimum: decode bytes per step vs. the weights a step
    reads (all but an untied model's embedding table) + KV, once; training FLOPs vs.
    6 x params x tokens (8 x with full remat: one more forward)."""
    n = planner.topo.num_devices
    if job.kind == "decode" and f.fits:
        mesh, dtype = planner.mesh(sizes), job.shape.dtype
        held = P.weight_bytes_per_device(cfg, mesh, dtype)
        weights = P.weight_bytes_per_device(cfg, mesh, dtype, read_per_step=True)
        kv = f.argument_bytes - held  # the slots: KV cache + small per-row arrays
        step = f.bytes_accessed / job.shape.chunk
        return {
            "bytes_per_step": step,
            "weight_bytes": weights,
            "kv_bytes": kv,
            "min_bytes_per_step": weights + kv,
            "bytes_vs_min": step / (weights + kv),
        }
    if job.kind in ("train", "regressor") and f.fits:
        params = param_count(abstract_model(cfg, "bfloat16", "bfloat16"))
        per = 8 if getattr(job.shape, "remat", "none") == "full" else 6
        model = per * params * job.tokens / n
        return {
            "flops_per_step": f.flops,
            "model_flops_per_step": model,
            "flops_vs_model": f.flops / model,
        }
    return {}


def _seconds(job: Job, f: Figures, eff: dict, d: Device) -> float:
    """Roofline seconds per call; a decode call at the workload's mean span reads that
    share of the cache (the compiled program attends the full one)."""
    nbytes = f.bytes_accessed
    if job.kind == "decode" and "kv_bytes" in eff and job.span:
        nbytes -= job.shape.chunk * eff["kv_bytes"] * (1 - job.mean_span / job.span)
    return seconds(f.flops, nbytes, d)


def mesh_change(stage: str, data: int, fsdp: int, tensor: int) -> dict[str, Any]:
    return {f"stage_mesh.{stage}": {"data": data, "fsdp": fsdp, "tensor": tensor}}


def section_key(stage: str, setting: str) -> str:
    """The config key of a stage's setting (`gen-questions` -> `gen_questions.batch_size`)."""
    return f"{stage.replace('-', '_')}.{setting}"


def fix_text(changes: dict[str, Any]) -> str:
    """`stage_mesh.sft: {data: 1, fsdp: -1, tensor: 1} and sft.remat: full`."""

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {x}" for k, x in v.items()) + "}"
        return str(v)

    return " and ".join(f"{k}: {value(v)}" for k, v in changes.items())


def _variants(job: Job, sizes: tuple[int, int, int], n: int) -> list[tuple[dict, Job, tuple]]:
    """Changes that shrink a program's memory, cheapest first, as (config changes: key path
    -> value, job, mesh). Mesh changes are the stage's own (`stage_mesh.<stage>`)."""
    out = []
    if job.kind in ("train", "reference", "regressor"):
        t = job.shape
        fsdp = mesh_change(job.stage, 1, -1, 1)
        if sizes != (1, n, 1):
            out.append((fsdp, job, (1, n, 1)))
        if t.remat != "full" and job.kind in ("train", "regressor"):
            changes = fsdp | {section_key(job.stage, "remat"): "full"}
            shape = dataclasses.replace(t, remat="full")
            out.append((changes, dataclasses.replace(job, shape=shape), (1, n, 1)))
        for a in (2, 4, 8, 16):
            accum = t.accum * a
            if t.rows % accum == 0 and t.rows // accum >= n:
                shape = dataclasses.replace(t, accum=accum, remat="full")
                changes = fsdp | {
                    section_key(job.stage, "accum_steps"): accum,
                    section_key(job.stage, "remat"): "full",
                }
                out.append((changes, dataclasses.replace(job, shape=shape), (1, n, 1)))
        if n >= 4:
            out.append((mesh_change(job.stage, 1, -1, 2), job, (1, n // 2, 2)))
    elif job.kind in ("insert", "decode", "score"):
        out += _sampling_variants(job, sizes, n)
    return out


def _sampling_variants(job: Job, sizes: tuple[int, int, int], n: int) -> list[tuple]:
    """A sampling or scoring job with its weights split over a wider tensor axis (2, 4, 8
    above the current one, dividing the n devices) and/or its batch cut to 1/2 or 1/4 (at
    least one row per device): every combination but the job as it is."""
    tensors = [sizes[2]] + [t for t in (2, 4, 8) if sizes[2] < t <= n and n % t == 0]
    rows = _rows(job)
    out = []
    for tensor in tensors:
        for div in (1, 2, 4):
            if (tensor, div) == (sizes[2], 1) or rows // div < n:
                continue
            changes, variant = {}, job
            if tensor != sizes[2]:
                changes |= mesh_change(job.stage, -1, 1, tensor)
            if div > 1:
                changes[section_key(job.stage, "batch_size")] = rows // div
                variant = _with_rows(job, rows // div)
            mesh = (n // tensor, 1, tensor) if tensor != sizes[2] else sizes
            out.append((changes, variant, mesh))
    return out


def _with_rows(job: Job, rows: int) -> Job:
    if job.kind == "score":
        return dataclasses.replace(job, shape=(rows,) + tuple(job.shape[1:]))
    s = job.shape
    ratio = s.slots // rows
    shape = dataclasses.replace(s, slots=rows, unique=max(1, s.unique // ratio))
    return dataclasses.replace(job, shape=shape)


def _rows(job: Job) -> int:
    return job.shape[0] if job.kind == "score" else job.shape.slots


def _temps_per_row(planner: Planner, job: Job, sizes, f: Figures) -> float:
    """Temporaries per row of a compiled program (0 when it was not compiled: its
    arguments alone exceeded HBM, so its total is only those)."""
    if f.compile_seconds <= 0 or not math.isfinite(f.total_bytes):
        return 0.0
    return max(f.total_bytes - planner.argument_bytes(job, sizes), 0.0) / _rows(job)


def _ranked(planner: Planner, temps_per_row: float, variants: list) -> list:
    """Sampling and scoring variants in the order to compile them: first those estimated to
    fit, fastest first, then the others, smallest estimate first.

    Estimate: the variant's argument bytes (weights and slots per device, from shapes, no
    compile) plus temps_per_row x its rows. Speed: a decode step reads about its arguments
    once (the roofline plan estimates time with), so the bytes per device per row,
    arguments / rows, rank the variants; a wider tensor axis splits the weights (fewer bytes
    per row), a smaller batch keeps them (more)."""
    scored = []
    for text, variant, mesh in variants:
        args = planner.argument_bytes(variant, mesh)
        estimate = args + temps_per_row * _rows(variant)
        fits = estimate <= planner.device.hbm_bytes
        rank = (not fits, args / _rows(variant) if fits else estimate)
        scored.append((rank, text, variant, mesh))
    scored.sort(key=lambda x: x[0])
    return [x[1:] for x in scored]


def _fix(planner: Planner, job: Job, sizes, tries: int, base: Figures):
    """(config change, figures, job, mesh) of the first variant that fits, compiling at most
    `tries` of them (a variant whose arguments alone exceed HBM costs no compile and no try),
    or None. Training variants go cheapest change first (_variants). Sampling and scoring
    ones go by estimated fit and speed (_ranked), re-ranked after each variant that does not
    fit with the largest temporaries per row compiled so far (so a wider tensor axis that
    does not fit sends the search to a smaller batch)."""
    variants = _variants(job, sizes, planner.topo.num_devices)
    sampling = job.kind in ("insert", "decode", "score")
    temps = _temps_per_row(planner, job, sizes, base) if sampling else 0.0
    while variants:
        if sampling:
            variants = _ranked(planner, temps, variants)
        text, variant, mesh = variants.pop(0)
        f = planner.compile(variant, mesh)
        if f.fits:
            return text, f, variant, mesh
        if sampling:
            temps = max(temps, _temps_per_row(planner, variant, mesh, f))
        tries -= f.compile_seconds > 0
        if tries <= 0:
            break
    return None


def plan(
    run: RunSettings,
    topology_name: str,
    stages: Sequence[str] | None = None,
    *,
    fix_tries: int = MAX_FIX_TRIES,
    log: Callable[[str], None] = print,
) -> PlanResult:
    """Compiles every program of `stages` (default: all) of `run` for the slice."""
    topo = topology(topology_name)
    planner = Planner(run, topo, log)
    out = []
    for stage in stages or [n for n in run.stages.names() if n not in run.skip_stages]:
        mesh = planner.mesh(stage_mesh(run, stage))
        sizes = tuple(mesh.shape[a] for a in ("data", "fsdp", "tensor"))
        rows = planner.rows_multiple(sizes)
        for job in jobs(run, stage, rows):
            cfg = model_config(run, job.model)
            f = planner.compile(job, sizes)
            fix = _fix(planner, job, sizes, fix_tries, f) if not f.fits and fix_tries else None
            # a program that fits only with a fix is estimated as fixed
            run_job, run_f, run_sizes = (job, f, sizes) if fix is None else (fix[2], fix[1], fix[3])
            eff = _efficiency(run_job, run_f, cfg, run_sizes, planner)
            per_call = _seconds(run_job, run_f, eff, planner.device) if run_f.fits else math.nan
            p = ProgramPlan(job, sizes, f, per_call, per_call * job.calls / 3600, eff)
            if fix is not None:
                p.fix, p.fix_changes = fix_text(fix[0]), fix[0]
                p.fix_figures, p.fix_mesh = fix[1], fix[3]
            if "kv_bytes" in eff:  # the bandwidth bound: weights and live KV read once a step
                live = eff["weight_bytes"] + eff["kv_bytes"] * job.mean_span / job.span
                steps = job.calls * job.shape.chunk
                eff["hours_at_min_bytes"] = steps * live / planner.device.hbm_bytes_s / 3600
            out.append(p)
    return PlanResult(topo, planner.device, out, versions())


def versions() -> dict[str, str]:
    import datetime
    from importlib import metadata

    import jax

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "date": datetime.date.today().isoformat(),
        "jax": jax.__version__,
        "libtpu": version("libtpu"),
    }
