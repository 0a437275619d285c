"""Row provenance and the final dataset export.

Rows carry where they came from so every kept (query, response) pair can be traced back and
every drop explained:
  question row: id, question, generator (model name), plus scores/verdicts from filters
  response row: id, question_id, question, response, solver, scores (e.g. reward)
Scores are floats in `row["scores"][name]`; verdicts are strings in `row["verdicts"][name]`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable

from sqjax.data.jsonl import atomic_write_jsonl
from sqjax.errors import SqjaxError

LINEAGE = ("id", "question_id", "generator", "solver")


def record_id(kind: str, *parts: object) -> str:
    """A stable id `<kind>-<16 hex>` from the parts (e.g. stage, shard, position)."""
    digest = hashlib.sha256(json.dumps([kind, *parts], default=str).encode()).hexdigest()
    return f"{kind}-{digest[:16]}"


def question_row(question: str, generator: str, qid: str, **extra: object) -> dict:
    """A question with its id and the model (or source file) that wrote it."""
    return {"id": qid, "question": question, "generator": generator, **extra}


def response_row(question: dict, response: str, solver: str, index: int, **extra: object) -> dict:
    """The `index`-th response to a question row, linked to it by question_id."""
    return {
        "id": record_id("r", question["id"], index),
        "question_id": question["id"],
        "question": question["question"],
        "generator": question.get("generator"),
        "response": response,
        "solver": solver,
        "scores": dict(question.get("scores", {})),
        "verdicts": dict(question.get("verdicts", {})),
        **extra,
    }


def with_score(row: dict, name: str, value: float) -> dict:
    """A copy of row with scores[name] = value."""
    return {**row, "scores": {**row.get("scores", {}), name: float(value)}}


def with_verdict(row: dict, name: str, value: str) -> dict:
    """A copy of row with verdicts[name] = value."""
    return {**row, "verdicts": {**row.get("verdicts", {}), name: str(value)}}


def export_row(row: dict, score_names: Iterable[str], verdict_names: Iterable[str]) -> dict:
    """`query`, `response`, then flat provenance columns (same columns on every row, so
    `datasets` infers one schema): id, question_id, generator, solver, score_*, verdict_*."""
    missing = [k for k in ("question", "response") if k not in row]
    if missing:
        raise SqjaxError(f"row {row.get('id', '?')!r} has no {missing[0]!r}; cannot export it")
    out = {"query": row["question"], "response": row["response"]}
    out.update({k: row.get(k) for k in LINEAGE})
    out.update({f"score_{n}": row.get("scores", {}).get(n) for n in score_names})
    out.update({f"verdict_{n}": row.get("verdicts", {}).get(n) for n in verdict_names})
    return out


def export_dataset(rows: Iterable[dict], path: str | os.PathLike) -> int:
    """Writes the final data set as JSONL (atomically); returns the row count.

    Loadable with `datasets.load_dataset("json", data_files=path)`.
    """
    rows = list(rows)
    scores = sorted({n for r in rows for n in r.get("scores", {})})
    verdicts = sorted({n for r in rows for n in r.get("verdicts", {})})
    return atomic_write_jsonl(path, (export_row(r, scores, verdicts) for r in rows))
