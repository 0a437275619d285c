"""Report sections for the paper's data-quality measurements: the question-quality table
(Figures 4, 5, 9: solvable ratio and difficulty distribution per source, from the
rate-questions stage) and the clean ratio against each evaluation set (Table 6: of the final
data set, from the reward stage, and of the filter stage's questions; measured whether or not
decontamination filtered)."""

from __future__ import annotations

import numbers

from sqjax.question.quality import LEVELS


def _pct(value: object) -> str:
    return f"{100 * value:.1f}" if isinstance(value, numbers.Real) else "-"


def quality_section(manifests: dict[str, dict]) -> list[str]:
    """The rate-questions stage's table; [] when it has not run or rated nothing."""
    metric = manifests.get("rate-questions", {}).get("metrics", {}).get("question_quality", {})
    sources = metric.get("sources", {})
    if not sources:
        return []
    head = " | ".join(LEVELS)
    lines = [
        f"## Question quality (the paper's Fig. 4/5/9; judge {metric.get('judge', '-')}, %)",
        "",
        "Solvable: Figure 12 prompt, strict final verdict (lax: 'yes' anywhere). Difficulty:",
        "Figure 13 prompt; the level shares do not sum to 100 when some replies had no level.",
        "",
        (
            f"| source | what | n | solvable | solvable (lax) | {head} | verdicts parsed | "
            "levels parsed |"
        ),
        "|---" * (len(LEVELS) + 7) + "|",
    ]
    for label, q in sources.items():
        levels = " | ".join(_pct(q.get("difficulty", {}).get(level)) for level in LEVELS)
        lines.append(
            f"| {label} | {q.get('kind', '-')} | {q.get('n', 0)} | "
            f"{_pct(q.get('solvable_share'))} | {_pct(q.get('solvable_share_lax'))} | "
            f"{levels} | {_pct(q.get('solvable_parse_rate'))} | "
            f"{_pct(q.get('difficulty_parse_rate'))} |"
        )
    return lines + [""]


def _clean_table(metric: dict, what: str) -> list[str]:
    lines = [
        (
            f"{what} ({metric.get('rows', 0):,} rows; {metric.get('ngram', 13)}-gram overlap of "
            f"{', '.join(metric.get('fields', ['question']))}; decontamination "
            f"{'filtered the questions' if metric.get('filtered') else 'measured, did not filter'})."
        ),
        "",
        "| eval set | eval questions | contaminated rows | clean ratio |",
        "|---|---|---|---|",
    ]
    for name, b in metric.get("benchmarks", {}).items():
        lines.append(
            f"| {name} | {b.get('eval_questions', 0):,} | {b.get('contaminated', 0):,} | "
            f"{_pct(b.get('clean_ratio'))} |"
        )
    return lines + [""]


CLEAN_RATIO_SOURCES = (
    ("reward", "The final data set, RUN/reward/dataset.jsonl"),
    ("filter", "The filter stage's kept questions"),
)


def clean_ratio_section(manifests: dict[str, dict]) -> list[str]:
    """The clean ratio per evaluation set of the final data set (the reward stage's, the
    paper's Table 6) and of the filter stage's kept questions; [] when neither measured."""
    tables = []
    for stage, what in CLEAN_RATIO_SOURCES:
        metric = manifests.get(stage, {}).get("metrics", {}).get("clean_ratio", {})
        if metric.get("benchmarks"):
            tables += _clean_table(metric, what)
    if not tables:
        return []
    return ["## Clean ratio against each evaluation set (the paper's Table 6, %)", ""] + tables
