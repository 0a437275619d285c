"""The filter stage's global steps, as pure functions over question rows: difficulty cut per
generator, exact + near dedup, n-gram decontamination. Each returns (kept, dropped) with every
dropped row carrying `dropped_by` (the filter) and `drop_reason` (why, in words)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from sqjax import assets
from sqjax.data.decontam import EvalIndex, decontaminate
from sqjax.data.dedup import exact_dedup, near_dedup
from sqjax.data.jsonl import read_jsonl
from sqjax.errors import SqjaxError

TEXT_FIELDS = ("question", "problem", "query", "prompt")


def _dropped(row: dict, by: str, reason: str) -> dict:
    return {**row, "dropped_by": by, "drop_reason": reason}


def difficulty_cut(
    rows: Sequence[dict], share: float, apply_to: Sequence[str] | None
) -> tuple[list[dict], list[dict]]:
    """Drops floor(share * n) of each generator's rows with the lowest predicted fail rate
    (`scores.fail_rate`; ties broken by id). Generators outside `apply_to` are untouched."""
    drop_ids: dict[str, str] = {}
    generators = sorted({r["generator"] for r in rows})
    for g in generators:
        if apply_to is not None and g not in apply_to:
            continue
        mine = sorted(
            (r for r in rows if r["generator"] == g),
            key=lambda r: (r["scores"]["fail_rate"], r["id"]),
        )
        n_drop = math.floor(share * len(mine))
        if n_drop == 0:
            continue
        cut = mine[n_drop - 1]["scores"]["fail_rate"]
        for r in mine[:n_drop]:
            drop_ids[r["id"]] = (
                f"predicted fail rate {r['scores']['fail_rate']:.4f} among the easiest "
                f"{share:.0%} of {g} (cut at {cut:.4f})"
            )
    kept = [r for r in rows if r["id"] not in drop_ids]
    return kept, [_dropped(r, "difficulty", drop_ids[r["id"]]) for r in rows if r["id"] in drop_ids]


def _exact_raw(rows: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    first: dict[str, str] = {}
    kept, dropped = [], []
    for r in rows:
        if r["question"] in first:
            dropped.append({**r, "duplicate_of": first[r["question"]], "similarity": 1.0})
        else:
            first[r["question"]] = r["id"]
            kept.append(r)
    return kept, dropped


def dedup(
    rows: Sequence[dict], normalize: bool, near_threshold: float = 0.7
) -> tuple[list[dict], list[dict]]:
    """Exact duplicates (case/space/punctuation-folded when `normalize`), then near duplicates
    (word-3-gram Jaccard >= near_threshold, MinHash LSH); the first occurrence is kept."""
    kept, exact = exact_dedup(rows) if normalize else _exact_raw(rows)
    kept, near = near_dedup(kept, threshold=near_threshold)
    dropped = [_dropped(r, "dedup", f"exact duplicate of {r['duplicate_of']}") for r in exact]
    dropped += [
        _dropped(
            r, "dedup", f"near duplicate of {r['duplicate_of']} (Jaccard {r['similarity']:.2f})"
        )
        for r in near
    ]
    return kept, dropped


def _text_field(record: dict, where: str) -> str:
    for f in TEXT_FIELDS:
        if f in record:
            return f
    raise SqjaxError(f"{where}: no question field (looked for {TEXT_FIELDS}); has {sorted(record)}")


def eval_index(benchmarks: Mapping[str, str], n: int) -> tuple[EvalIndex, dict[str, int]]:
    """An n-gram index of every evaluation question, ids `<name>-<k:05d>` (k from 1), and the
    number of questions per benchmark."""
    index, sizes = EvalIndex(n=n), {}
    for name, path in benchmarks.items():
        resolved = assets.resolve(path)
        rows = []
        for k, rec in enumerate(read_jsonl(resolved), start=1):
            field = _text_field(rec, f"{resolved}:{k}")
            rows.append({"id": f"{name}-{k:05d}", "question": str(rec[field])})
        index.add(rows)
        sizes[name] = len(rows)
    return index, sizes


def decontam(rows: Sequence[dict], index: EvalIndex) -> tuple[list[dict], list[dict]]:
    """Rows sharing a word n-gram with an evaluation question are dropped, naming the match."""
    kept, hit = decontaminate(rows, index)
    dropped = [
        _dropped(
            r,
            "decontam",
            f"{index.n}-gram overlap with {r['contaminated_by']}: {r['matched_ngram']!r}",
        )
        for r in hit
    ]
    return kept, dropped


MAX_MATCHES = 20  # contaminated rows listed per evaluation set in a clean-ratio metric


def _first_match(row: dict, fields: Sequence[str], index: EvalIndex) -> dict | None:
    """Where `row` first overlaps the index: {id, field, eval_id, ngram}, or None."""
    for f in fields:
        if f not in row:
            raise SqjaxError(f"row {row.get('id', '?')!r} has no field {f!r}; has {sorted(row)}")
        found = index.match(str(row[f]))
        if found is not None:
            return {"id": row.get("id"), "field": f, "eval_id": found[0], "ngram": found[1]}
    return None


def clean_ratios(
    rows: Sequence[dict],
    benchmarks: Mapping[str, str],
    n: int,
    fields: Sequence[str] = ("question",),
) -> dict[str, dict]:
    """Per evaluation set, the share of rows none of whose `fields` shares a word n-gram with
    any of its questions (the paper's Table 6): {name: {eval_questions, contaminated,
    clean_ratio, matches}}, `matches` being the first MAX_MATCHES contaminated rows."""
    out = {}
    for name, path in benchmarks.items():
        index, sizes = eval_index({name: path}, n)
        hits = [m for m in (_first_match(r, fields, index) for r in rows) if m is not None]
        out[name] = {
            "eval_questions": sizes[name],
            "contaminated": len(hits),
            "clean_ratio": 1.0 - len(hits) / len(rows) if rows else 1.0,
            "matches": hits[:MAX_MATCHES],
        }
    return out
