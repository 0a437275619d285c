"""PNG plots for the run report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sqjax import paths
from sqjax.paths import AnyPath


def _save(fig, path: AnyPath) -> AnyPath:
    """The figure as a PNG at `path` (local or gs://), closed."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    paths.write_bytes(path, buffer.getvalue())
    return path


def rows_and_drops(manifests: dict[str, dict], path: AnyPath) -> AnyPath:
    """Bars of rows out per stage, and horizontal bars of rows dropped by (stage, reason)."""
    names = list(manifests)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7))
    top.bar(names, [manifests[n].get("rows_out", 0) for n in names], color="tab:blue")
    top.set_ylabel("rows out")
    top.set_title("rows per stage")
    top.tick_params(axis="x", rotation=30)
    labels, counts = [], []
    for n in names:
        for reason, count in manifests[n].get("drops", {}).items():
            labels.append(f"{n}: {reason}")
            counts.append(count)
    if labels:
        bottom.barh(labels, counts, color="tab:red")
        bottom.set_xlabel("rows dropped")
        bottom.set_title("drops by reason")
    else:
        bottom.text(0.5, 0.5, "no rows dropped", ha="center", va="center")
        bottom.set_axis_off()
    return _save(fig, path)


def histogram(values: list[float], title: str, path: AnyPath) -> AnyPath:
    """A histogram of one numeric per-row stat."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(values, bins=min(50, max(5, len(set(values)))), color="tab:green")
    ax.set_title(f"{title} (n={len(values):,})")
    ax.set_ylabel("rows")
    return _save(fig, path)
