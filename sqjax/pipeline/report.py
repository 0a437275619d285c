"""`RUN/report.md`: rows and drops per stage, per-row stat histograms, examples, evaluation
scores and a cost table shaped like the paper's Table 4. Plots go to RUN/report_files/."""

from __future__ import annotations

import itertools
import json
import numbers
from collections.abc import Sequence
from pathlib import Path

from sqjax import paths
from sqjax.data.jsonl import atomic_write_text
from sqjax.errors import SqjaxError
from sqjax.paths import AnyPath
from sqjax.pipeline import shards as sh
from sqjax.pipeline.manifest import read_manifest
from sqjax.pipeline.quality_report import clean_ratio_section, quality_section

# Table 4 of the paper, A100-40G hours per stage (QFT is the sum of its two models;
# the paper reports solvability + difficulty filtering together).
PAPER_HOURS = {
    "qft": 3.9,
    "qpo-sample": 0.4,
    "qpo": 6.6,
    "gen-questions": 38.4,
    "filter": 110.6,
    "gen-responses": 251.0,
    "reward": 112.0,
}
MAX_STAT_ROWS = 100_000


def build_report(
    run_dir: str | Path, order: Sequence[str] | None = None, examples: int = 2
) -> AnyPath:
    """Writes RUN/report.md (and its PNGs) from the manifests and outputs in RUN (local or
    gs://), stages in `order` (the pipeline order; None: every stage directory of RUN, in the
    order the stages started)."""
    run_dir = paths.as_path(run_dir)
    manifests = _manifests(run_dir, order)
    if not manifests:
        raise SqjaxError(f"{run_dir}: no stage output found; run a stage first")
    from sqjax.pipeline import plots

    files = run_dir / "report_files"
    paths.makedirs(files)
    lines = [f"# sqjax run report: {run_dir}", ""]
    plots.rows_and_drops(manifests, files / "rows.png")
    lines += [
        "## Rows per stage",
        "",
        _rows_table(manifests),
        "",
        "![rows](report_files/rows.png)",
        "",
    ]
    lines += _failed_rows_section(manifests)
    lines += _stat_sections(run_dir, manifests, files)
    lines += _probe_section(manifests)
    lines += quality_section(manifests) + clean_ratio_section(manifests)
    lines += _score_section(manifests.get("eval", {}))
    lines += _metric_sections(manifests)
    lines += ["## Cost (shape of the paper's Table 4)", "", _cost_table(manifests), ""]
    lines += _plan_section(run_dir)
    lines += _example_sections(run_dir, manifests, examples)
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _plan_section(run_dir: AnyPath) -> list[str]:
    """What `sqjax plan` estimated for this config on each slice (RUN/plan/*.json)."""
    from sqjax.plan.report import run_report_section

    return run_report_section(run_dir)


def _manifests(run_dir: AnyPath, order: Sequence[str] | None) -> dict[str, dict]:
    """Manifests by stage; without an order, of each directory holding its own stage's
    manifest (not a `<stage>.old-<time>` set aside by --restart), by start time."""
    names = paths.list_names(run_dir) if order is None else order
    found = {n: m for n in names if (m := read_manifest(run_dir / n)) and m.get("stage") == n}
    if order is None:
        found = dict(sorted(found.items(), key=lambda kv: kv[1].get("started_at", "")))
    return found


def _rows_table(manifests: dict[str, dict]) -> str:
    rows = [
        "| stage | finished | rows in | rows out | dropped (by reason) |",
        "|---|---|---|---|---|",
    ]
    for name, m in manifests.items():
        drops = ", ".join(f"{r}: {c:,}" for r, c in m.get("drops", {}).items()) or "-"
        rows.append(
            f"| {name} | {'yes' if m.get('finished') else 'NO'} | "
            f"{m.get('rows_in', 0):,} | {m.get('rows_out', 0):,} | {drops} |"
        )
    return "\n".join(rows)


def _failed_rows_section(manifests: dict[str, dict], shown: int = 10) -> list[str]:
    """Rows a stage could not process (ctx.map_rows / info.fail): id, reason and detail."""
    lines: list[str] = []
    for name, m in manifests.items():
        failed = m.get("failed_rows") or {}
        if not failed.get("count"):
            continue
        lines += [f"### {name}: {failed['count']:,} failed rows", "", "| id | reason | detail |"]
        lines.append("|---|---|---|")
        for f in failed.get("first", [])[:shown]:
            detail = str(f.get("detail", "")).replace("|", "\\|").replace("\n", " ")[:200]
            lines.append(f"| {f.get('id')} | {f.get('reason')} | {detail} |")
        lines.append("")
    return (["## Failed rows", ""] + lines) if lines else []


def _stat_sections(run_dir: AnyPath, manifests: dict[str, dict], files: AnyPath) -> list[str]:
    from sqjax.pipeline import plots

    lines: list[str] = []
    for name, m in manifests.items():
        fields = m.get("row_stats", [])
        if not fields or not m.get("finished"):
            continue
        rows = list(itertools.islice(sh.iter_rows(run_dir / name), MAX_STAT_ROWS))
        for f in fields:
            values = [_lookup(r, f) for r in rows]
            values = [float(v) for v in values if isinstance(v, numbers.Real)]
            if values:
                png = plots.histogram(values, f"{name}: {f}", files / f"{name}-{f}.png")
                lines += [f"### {name}: {f}", "", f"![{f}](report_files/{png.name})", ""]
    return (["## Per-row statistics", ""] + lines) if lines else []


def _lookup(row: dict, dotted: str) -> object:
    for part in dotted.split("."):
        row = row.get(part) if isinstance(row, dict) else None
    return row


PROBE_COLUMNS = (
    ("math_cues_share", "math (cues)"),
    ("math_share", "math (judge, strict)"),
    ("math_share_lax", "math (judge, lax)"),
    ("p_math_share", "math (judge P(Yes)>0.5)"),
    ("solvable_share", "solvable (strict)"),
    ("solvable_share_lax", "solvable (lax)"),
)


def _probe_section(manifests: dict[str, dict]) -> list[str]:
    """The method's first effect: what the models write from the bare pre-query prefix."""
    probes: dict[str, dict] = {}
    for m in manifests.values():
        probes.update(m.get("metrics", {}).get("question_probe", {}))
    if not probes:
        return []
    head = " | ".join(title for _, title in PROBE_COLUMNS)
    lines = [
        "## Questions from the bare prefix: untuned vs QFT vs QPO (share of samples)",
        "",
        f"| model | n | judge | {head} |",
        "|---" * (len(PROBE_COLUMNS) + 3) + "|",
    ]
    for ref, p in probes.items():
        cells = [_pct(p.get(key)) for key, _ in PROBE_COLUMNS]
        lines.append(
            f"| {ref} | {p.get('n', '-')} | {p.get('judge', '-')} | " + " | ".join(cells) + " |"
        )
    return lines + [""]


def _pct(value: object) -> str:
    return f"{100 * value:.1f}" if isinstance(value, numbers.Real) else "-"


def _metric_sections(manifests: dict[str, dict]) -> list[str]:
    """Every other metric a stage recorded, as JSON (difficulty Spearman, filter counts...)."""
    lines: list[str] = []
    for name, m in manifests.items():
        rest = {
            k: v for k, v in m.get("metrics", {}).items() if k not in ("question_probe", "scores")
        }
        if rest:
            text = json.dumps(rest, indent=1, ensure_ascii=False, default=str)
            if len(text) > 4000:
                text = text[:4000] + "\n... (see the manifest)"
            lines += [f"### {name}", "", "```json", text, "```", ""]
    return (["## Stage metrics", ""] + lines) if lines else []


def _score_section(eval_manifest: dict) -> list[str]:
    scores = eval_manifest.get("metrics", {}).get("scores")
    if not isinstance(scores, dict) or not scores:
        return []
    benches = sorted({b for per in scores.values() for b in per})
    lines = [
        "## Evaluation (accuracy, %)",
        "",
        "| model | " + " | ".join(benches) + " | average |",
        "|---" * (len(benches) + 2) + "|",
    ]
    for model, per in scores.items():
        vals = [per.get(b) for b in benches]
        got = [v for v in vals if isinstance(v, numbers.Real)]
        avg = f"{100 * sum(got) / len(got):.1f}" if got else "-"
        cells = [f"{100 * v:.1f}" if isinstance(v, numbers.Real) else "-" for v in vals]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {avg} |")
    return lines + [""]


def _cost_table(manifests: dict[str, dict]) -> str:
    rows = [
        (
            "| stage | device | devices | wall h | device-hours | tokens | programs compiled "
            "(cache hits) | compile s | paper A100-40G h |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    total_h = total_tok = total_c = total_s = 0.0
    for name, m in manifests.items():
        dh, tok = m.get("device_hours", 0.0), m.get("tokens", 0)
        c = m.get("compile", {})
        total_h, total_tok = total_h + dh, total_tok + tok
        total_c, total_s = total_c + c.get("programs", 0), total_s + c.get("seconds", 0.0)
        paper = PAPER_HOURS.get(name)
        rows.append(
            f"| {name} | {m.get('device_kind', '-')} | {m.get('device_count', 0)} | "
            f"{m.get('wall_s', 0) / 3600:.3f} | {dh:.3f} | {tok:,} | "
            f"{c.get('programs', 0)} ({c.get('cache_hits', 0)}) | {c.get('seconds', 0.0):.1f} | "
            f"{paper if paper is not None else '-'} |"
        )
    rows.append(
        f"| total | | | | {total_h:.3f} | {int(total_tok):,} | {int(total_c)} | {total_s:.1f} "
        "| 522.9 |"
    )
    return "\n".join(rows)


def _example_sections(run_dir: AnyPath, manifests: dict[str, dict], n: int) -> list[str]:
    lines = ["## Example rows", ""]
    for name, m in manifests.items():
        if not m.get("finished") or not m.get("rows_out"):
            continue
        rows = list(itertools.islice(sh.iter_rows(run_dir / name), n))
        lines += [f"### {name}", ""]
        for row in rows:
            lines += ["```json", json.dumps(_shorten(row), indent=1, ensure_ascii=False), "```", ""]
    return lines


def _shorten(row: dict, limit: int = 400) -> dict:
    return {
        k: (v[:limit] + " ...") if isinstance(v, str) and len(v) > limit else v
        for k, v in row.items()
    }
