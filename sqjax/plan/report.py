"""A plan as a text table, a Markdown section and JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from sqjax.plan.api import PlanResult, ProgramPlan
from sqjax.plan.roofline import Device
from sqjax.plan.workload import ASSUMPTIONS

GIB = 1024**3


def _gib(x: float) -> str:
    return "?" if math.isnan(x) else f"{x / GIB:.2f}"


def bound(p: ProgramPlan, d: Device) -> str | None:
    """ "flops" or "bytes": which term of its roofline time the program's (or its fix's)
    figures set (None when it has no time: it does not fit)."""
    if math.isnan(p.seconds_per_call):
        return None
    f = p.fix_figures or p.figures
    return "flops" if f.flops / d.flops >= p.seconds_per_call else "bytes"


def _row(p: ProgramPlan, chips: int, d: Device) -> list[str]:
    """The program as it runs: with its fix when the configured one does not fit."""
    f, j = p.fix_figures or p.figures, p.job
    hours = "-" if math.isnan(p.hours) else f"{p.hours:.2f}"
    chip_hours = "-" if math.isnan(p.hours) else f"{p.hours * chips:.1f}"
    eff = p.efficiency
    ratio = (
        f"{eff['bytes_vs_min']:.2f}x min bytes"
        if "bytes_vs_min" in eff
        else f"{eff['flops_vs_model']:.2f}x model FLOPs"
        if "flops_vs_model" in eff
        else ""
    )
    return [
        j.stage,
        j.kind,
        j.model,
        "x".join(map(str, p.fix_mesh or p.mesh)),
        _gib(f.total_bytes),
        "yes" if p.figures.fits else "with fix" if p.fix_figures else "NO",
        f"{f.flops / 1e12:.2f}",
        f"{f.bytes_accessed / 1e9:.1f}",
        f"{f.compile_seconds:.0f}",
        f"{j.calls:,.0f}",
        hours,
        chip_hours,
        f.attention_kernel,
        bound(p, d) or "-",
        ratio,
    ]


HEADER = [
    "stage",
    "program",
    "model",
    "mesh d.f.t",
    "GiB/dev",
    "fits",
    "TFLOP/call",
    "GB/call",
    "compile s",
    "calls",
    "hours",
    "chip-h",
    "attention",
    "bound",
    "efficiency",
]


def stage_totals(result: PlanResult) -> dict[str, dict[str, Any]]:
    """Per stage: fits (every program), the largest GiB per device, hours and chip-hours."""
    out: dict[str, dict[str, Any]] = {}
    for p in result.programs:
        s = out.setdefault(
            p.job.stage,
            {"fits": True, "fits_with_fixes": True, "max_gib": 0.0, "hours": 0.0, "hours_min": 0.0},
        )
        f = p.fix_figures or p.figures
        s["fits"] &= p.figures.fits
        s["fits_with_fixes"] &= f.fits
        s["max_gib"] = max(s["max_gib"], f.total_bytes / GIB)
        hours = 0.0 if math.isnan(p.hours) else p.hours
        s["hours"] += hours
        s["hours_min"] += p.efficiency.get("hours_at_min_bytes", hours)
    for s in out.values():
        s["chip_hours"] = s["hours"] * result.topology.chips
        s["chip_hours_min"] = s["hours_min"] * result.topology.chips
    return out


def _fit_word(s: dict[str, Any]) -> str:
    return "fits" if s["fits"] else "fits with fixes" if s["fits_with_fixes"] else "DOES NOT FIT"


def text(result: PlanResult) -> str:
    t, d = result.topology, result.device
    lines = [
        f"plan for {t.name} ({t.desc}: {t.chips} chips, {t.num_devices} devices of "
        f"{d.hbm_bytes / GIB:.2f} GiB, {t.view} view; {d.flops / 1e12:.0f} TFLOP/s, "
        f"{d.hbm_bytes_s / 1e9:.0f} GB/s per device; {d.source}); "
        + ", ".join(f"{k} {v}" for k, v in result.versions.items())
    ]
    rows = [HEADER] + [_row(p, t.chips, result.device) for p in result.programs]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    for name, s in stage_totals(result).items():
        lines.append(
            f"{name}: {_fit_word(s)}, "
            f"max {s['max_gib']:.2f} GiB/device, {s['hours']:.1f} h, "
            f"{s['chip_hours']:.0f} chip-hours"
        )
    return "\n".join(lines)


def failure_lines(result: PlanResult) -> list[str]:
    """One line per program that does not fit, with the fix plan compiled (or none)."""
    cap = result.device.hbm_bytes / GIB
    out = []
    for p in result.failures():
        j, f = p.job, p.figures
        head = (
            f"{j.stage}: {j.kind} of {j.model} needs {_gib(f.total_bytes)} GiB/device on "
            f"{result.topology.name} ({cap:.2f})"
        )
        if p.fix is not None:
            out.append(f"{head}: {p.fix} fits at {_gib(p.fix_figures.total_bytes)} GiB")
        else:
            out.append(
                f"{head}: no fix found among the variants tried (more chips, a larger "
                "tensor axis or a smaller batch)"
            )
    return out


def markdown(result: PlanResult) -> str:
    t = result.topology
    rows = [HEADER] + [_row(p, t.chips, result.device) for p in result.programs]
    lines = [f"### Plan: {t.name}", "", text(result).splitlines()[0], ""]
    lines += ["| " + " | ".join(r) + " |" for r in rows[:1]]
    lines += ["|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    lines += ["", *[f"- {x}" for x in failure_lines(result)]]
    return "\n".join(lines)


def to_json(result: PlanResult) -> dict[str, Any]:
    def program(p: ProgramPlan) -> dict[str, Any]:
        out = {
            "stage": p.job.stage,
            "program": p.job.kind,
            "model": p.job.model,
            "shape": dataclasses.asdict(p.job.shape)
            if dataclasses.is_dataclass(p.job.shape)
            else list(p.job.shape),
            "span": p.job.span,
            "calls": p.job.calls,
            "mesh": list(p.mesh),
            "figures": dataclasses.asdict(p.figures),
            "seconds_per_call": p.seconds_per_call,
            "hours": p.hours,
            "efficiency": p.efficiency,
            "fix": p.fix,
            "attention_kernel": (p.fix_figures or p.figures).attention_kernel,
            "bound": bound(p, result.device),
        }
        if p.fix_figures is not None:
            out["fix_figures"] = dataclasses.asdict(p.fix_figures)
        return out

    return {
        "topology": dataclasses.asdict(result.topology),
        "device": dataclasses.asdict(result.device),
        "versions": result.versions,
        "assumptions": ASSUMPTIONS,
        "loop_scaling": "cost_analysis counts a loop body once; FLOPs and bytes are scaled by "
        "the trip counts read from the optimized HLO (sqjax/plan/hlo.py); a conditional counts "
        "its heaviest branch; Pallas attention kernels add analytic FLOPs and bytes "
        "(sqjax/plan/kernels.py)",
        "stages": stage_totals(result),
        "programs": [program(p) for p in result.programs],
        "failures": failure_lines(result),
    }


def dumps(result: PlanResult) -> str:
    return json.dumps(to_json(result), indent=1, default=float, allow_nan=True)


def stage_table(plans: list[dict[str, Any]], paper_hours: dict[str, float]) -> list[str]:
    """Markdown rows: per stage and slice, fits, max GiB per device, hours and chip-hours,
    beside the paper's A100 hours (from the JSON of one or more plans)."""
    head = "| stage | " + " | ".join(p["topology"]["name"] for p in plans) + " | paper A100 h |"
    lines = [head, "|---|" + "---|" * (len(plans) + 1)]
    names = list(dict.fromkeys(s for p in plans for s in p["stages"]))
    for name in names:
        cells = []
        for p in plans:
            s = p["stages"].get(name)
            if s is None:
                cells.append("-")
                continue
            fit = "fits" if s["fits"] else "fits with fixes" if s["fits_with_fixes"] else "**no**"
            hours = f"{s['hours_min']:.1f}-{s['hours']:.1f} h ({s['chip_hours_min']:.0f}-{s['chip_hours']:.0f} chip-h)"
            cells.append(f"{fit}, {s['max_gib']:.1f} GiB, {hours}")
        paper = paper_hours.get(name)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {paper if paper else '-'} |")
    return lines


def run_report_section(run_dir: Any) -> list[str]:
    """`## Plan` for the run report, from the plans `sqjax plan` wrote to RUN/plan/*.json."""
    from sqjax import paths
    from sqjax.pipeline.report import PAPER_HOURS

    folder = paths.as_path(run_dir) / "plan"
    names = sorted(n for n in paths.list_names(folder) if n.endswith(".json"))
    plans = [json.loads((folder / n).read_text()) for n in names]
    if not plans:
        return []
    v = plans[0]["versions"]
    note = (
        f"{v['date']}, jax {v['jax']}, libtpu {v['libtpu']}; fits = every program of the "
        "stage fits one device's HBM; hours = the stage's configured workload."
    )
    lines = ["## Plan (sqjax plan: compiled for each slice, roofline time)", "", note, ""]
    lines += stage_table(plans, PAPER_HOURS)
    for p in plans:
        lines += [f"- {p['topology']['name']}: {x}" for x in p["failures"]]
    return [*lines, ""]
