"""The filter stage's language, dedup and decontamination steps on constructed rows: every
planted evaluation question and every constructed duplicate is dropped with a reason naming
what it matched; nothing else is dropped. (No model: the judge and scorer steps are off.)"""

from __future__ import annotations

import json

import pytest

from sqjax import assets
from sqjax.data.jsonl import read_jsonl
from sqjax.pipeline.runner import run_stage
from sqjax.pipeline.stage import Stage
from sqjax.registry import parse_config
from sqjax.stages import STAGES
from sqjax.stages.qpo_pairs import cap_per_model, pair_reason

QUESTIONS = [  # eight unrelated questions, none from an evaluation set
    (
        "A gardener plants 12 rows of tulips with eleven bulbs in each row and later gives away a "
        "third of all the bulbs to her neighbour who lives across the quiet street. How many remain?"
    ),
    (
        "Marco rides his bicycle 9 kilometres every weekday morning and twice that distance on each "
        "weekend day before breakfast at the small cafe near the river. How far does he ride weekly?"
    ),
    (
        "A library buys 48 new atlases and shelves them equally on four wooden carts that the "
        "volunteers push slowly through the reading rooms each afternoon. How many atlases per cart?"
    ),
    (
        "The sum of two consecutive odd integers chosen by a curious student in the robotics club "
        "equals 64. Find the larger integer."
    ),
    (
        "Find all real x such that the cube of x minus seven times x plus six equals zero, and give "
        "the product of the solutions."
    ),
    (
        "A tank holds 250 litres of water, loses 4% of its contents to evaporation each sunny day, and "
        "is refilled by 6 litres of rain on every cloudy day. After one sunny and one cloudy day, how "
        "much water is in the tank?"
    ),
    (
        "Priya knits scarves for a charity fair; each scarf takes 3 balls of wool costing $4.50 each. "
        "What does the wool for 14 scarves cost?"
    ),
    "How many positive divisors does the number 360 have that are also perfect squares?",
]


def constructed() -> tuple[list[dict], dict[str, str], dict[str, str]]:
    """(rows, near/exact duplicate id -> original id, planted id -> eval id)."""
    rows = [{"id": f"q{i}", "question": q, "generator": "g"} for i, q in enumerate(QUESTIONS)]
    dups = {
        "d-case": ("q0", QUESTIONS[0].upper().replace(" ", "  ")),  # exact after normalising
        "d-word": ("q1", QUESTIONS[1].replace("morning", "evening")),  # near: one word changed
        "d-punct": ("q5", QUESTIONS[5].replace(",", ";").replace("sunny day", "sunny day!")),
    }
    rows += [{"id": k, "question": v[1], "generator": "g"} for k, v in dups.items()]
    gsm = list(read_jsonl(assets.resolve(assets.GSM8K_TEST)))
    math = list(read_jsonl(assets.resolve(assets.MATH_TEST)))
    planted = {
        "p-gsm-verbatim": ("gsm8k-00002", gsm[1]["question"]),
        "p-gsm-embedded": ("gsm8k-00100", "Here is a puzzle. " + gsm[99]["question"] + " Explain."),
        "p-math": ("math-00007", math[6]["problem"]),
    }
    rows += [{"id": k, "question": v[1], "generator": "h"} for k, v in planted.items()]
    rows += [
        {"id": "l-empty", "question": "   ", "generator": "h"},
        {"id": "l-nonascii", "question": "Combien font 3 × 4 ?", "generator": "h"},
        {
            "id": "l-spanish",  # ASCII: only the language-ID check catches it
            "question": (
                "Un granjero tiene doce vacas y compra ocho vacas mas en el mercado del pueblo. "
                "Cuantas vacas tiene ahora el granjero en total?"
            ),
            "generator": "h",
        },
    ]
    return rows, {k: v[0] for k, v in dups.items()}, {k: v[0] for k, v in planted.items()}


CONFIG = """
run_dir: unused
filter:
  language: {language_id: true}
  solvability: {enabled: false}
  difficulty: {enabled: false}
  dedup: {enabled: true}  # off in the paper's configs (the paper ran neither), on here
  decontam: {enabled: true}
  shard_size: 5
"""


@pytest.fixture
def fake_generation():
    rows, dups, planted = constructed()

    def write(ctx):
        ctx.map_shards(rows, lambda chunk, info: chunk, 6)

    original = STAGES.get("gen-questions")
    STAGES.register(Stage("gen-questions", "constructed rows", run=write))
    yield rows, dups, planted
    STAGES.register(original)


def test_filter_catches_every_planted_row_and_nothing_else(fake_generation, tmp_path):
    _, dups, planted = fake_generation
    cfg = parse_config(CONFIG, "filter-test.yaml")
    run_stage(cfg, "gen-questions", run_dir=tmp_path)
    m = run_stage(cfg, "filter", run_dir=tmp_path)
    kept = [
        json.loads(ln)
        for p in sorted((tmp_path / "filter").glob("part-*.jsonl"))
        for ln in p.read_text().splitlines()
    ]
    dropped_dir = tmp_path / "filter" / "steps" / "dropped"
    dropped = {
        r["id"]: r
        for p in sorted(dropped_dir.glob("part-*.jsonl"))
        for r in map(json.loads, p.read_text().splitlines())
    }
    assert sorted(r["id"] for r in kept) == sorted(f"q{i}" for i in range(len(QUESTIONS)))
    assert set(dropped) == set(dups) | set(planted) | {"l-empty", "l-nonascii", "l-spanish"}
    for rid, original in dups.items():
        assert dropped[rid]["dropped_by"] == "dedup" and dropped[rid]["duplicate_of"] == original
        assert original in dropped[rid]["drop_reason"]
    assert (
        "exact" in dropped["d-case"]["drop_reason"] and "near" in dropped["d-word"]["drop_reason"]
    )
    for rid, eval_id in planted.items():
        assert (
            dropped[rid]["dropped_by"] == "decontam" and dropped[rid]["contaminated_by"] == eval_id
        )
    assert (
        dropped["l-empty"]["drop_reason"] == "empty"
        and dropped["l-nonascii"]["drop_reason"] == "non_ascii"
        and dropped["l-spanish"]["drop_reason"] == "lang_es"
    )
    assert m["drops"] == {
        "dedup": 3,
        "decontam": 3,
        "language:empty": 1,
        "language:non_ascii": 1,
        "language:lang_es": 1,
    }
    matches = m["metrics"]["decontam"]["matches"]
    assert sorted((x["id"], x["eval_id"]) for x in matches) == sorted(planted.items())
    assert m["metrics"]["decontam"]["benchmarks"] == {"gsm8k": 1319, "math": 5000}
    assert m["metrics"]["removed"]["dedup"]["rows"] == 3
    assert all(r["verdicts"]["language"] == "ok" for r in kept)


def test_pair_rules():
    row = {
        "question": "What is 2 + 2?",
        "rewrite": "what is 2+2",
        "generator": "qft:m",
        "id": "x",
        "goal": "difficulty",
    }
    assert pair_reason(row, True, True) == "identical"
    assert pair_reason({**row, "rewrite": "Quanto fa 2 × 2?"}, True, True) == "chosen_non_ascii"
    assert pair_reason({**row, "rewrite": "What is 2 + 3?"}, True, True) is None
    pairs = [{"model": m} for m in "aabab"]
    assert cap_per_model(pairs, 1) == ([{"model": "a"}, {"model": "b"}], 3)
    assert cap_per_model(pairs, None) == (pairs, 0)
