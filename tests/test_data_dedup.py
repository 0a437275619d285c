"""Exact/near dedup and 13-gram decontamination on real GSM8K/MATH questions."""

import random

import pytest

from sqjax.data import math_datasets as bm
from sqjax.data.decontam import EvalIndex, decontaminate
from sqjax.data.dedup import (
    MinHasher,
    exact_dedup,
    jaccard,
    near_dedup,
    normalize_text,
    shingles,
)


def light_edit(text: str, rng: random.Random) -> str:
    """A near-duplicate: case change, punctuation/whitespace noise and one word changed."""
    words = text.split()
    i = rng.randrange(len(words))
    words[i] = words[i] + "s"
    return ("  " + " ".join(words).upper().replace(",", " ,") + "!!").replace(" the ", "  the ")


@pytest.fixture(scope="module")
def pool():
    return bm.gsm8k("train")[:1500]


def test_normalize_text():
    assert normalize_text("  Hello,  WORLD!\n$x+y$ = 3. ") == "hello world x y 3"


def test_exact_dedup_after_normalisation(pool):
    rows = pool[:50] + [
        {"id": "copy-1", "question": pool[3]["question"].upper() + "  "},
        {"id": "copy-2", "question": pool[7]["question"].replace(" ", "\n  ").replace(".", " .")},
    ]
    kept, dropped = exact_dedup(rows)
    assert kept == pool[:50]
    assert [(d["id"], d["duplicate_of"]) for d in dropped] == [
        ("copy-1", pool[3]["id"]),
        ("copy-2", pool[7]["id"]),
    ]


def test_near_dedup_catches_planted_edits_and_agrees_with_brute_force(pool):
    pool = pool[:800]  # the brute-force reference is quadratic
    rng = random.Random(0)
    sources = rng.sample(range(len(pool)), 25)
    planted = [
        {"id": f"near-{k}", "question": light_edit(pool[j]["question"], rng)}
        for k, j in enumerate(sources)
    ]
    rows = pool + planted
    kept, dropped = near_dedup(rows, threshold=0.7)
    # Reference: greedy in order, exact Jaccard against every kept row (no LSH).
    sets = [shingles(r["question"], 3) for r in rows]
    ref_kept: list[int] = []
    ref_dropped = []
    for i, s in enumerate(sets):
        if any(jaccard(s, sets[j]) >= 0.7 for j in ref_kept):
            ref_dropped.append(rows[i]["id"])
        else:
            ref_kept.append(i)
    assert [d["id"] for d in dropped] == ref_dropped
    by_id = {d["id"]: d for d in dropped}
    for k, j in enumerate(sources):
        assert by_id[f"near-{k}"]["duplicate_of"] == pool[j]["id"]
    assert len(kept) == len(rows) - len(dropped)


def test_decontamination_catches_planted_test_questions_only(pool):
    evals = bm.gsm8k("test") + bm.math("test")
    index = EvalIndex(n=13).add(evals)
    rng = random.Random(1)
    long_evals = [e for e in evals if len(normalize_text(e["question"]).split()) >= 30]
    targets = rng.sample(long_evals, 12)
    planted = [
        {"id": f"leak-{k}", "question": "Solve this: " + light_edit(e["question"], rng)}
        for k, e in enumerate(targets)
    ]
    short = min(evals, key=lambda e: len(e["question"].split()))
    planted.append({"id": "leak-short", "question": short["question"].upper()})
    kept, dropped = decontaminate(pool + planted, index)
    hit = {d["id"]: d for d in dropped}
    for k, e in enumerate(targets):
        assert hit[f"leak-{k}"]["contaminated_by"] in {x["id"] for x in evals}
        gram = hit[f"leak-{k}"]["matched_ngram"]
        assert gram in normalize_text(e["question"]) and len(gram.split()) == 13
    assert hit["leak-short"]["contaminated_by"] == short["id"]
    # Every other drop is a real 13-word overlap with the eval item it names (checked as a
    # substring of that item's normalised text), and no kept row overlaps any eval item.
    eval_text = {e["id"]: " " + normalize_text(e["question"]) + " " for e in evals}
    for d in dropped:
        assert " " + d["matched_ngram"] + " " in eval_text[d["contaminated_by"]]
        assert " " + d["matched_ngram"] + " " in " " + normalize_text(d["question"]) + " "
    assert len(dropped) - len(planted) <= 5
    corpus = "\n".join(eval_text.values())
    for row in random.Random(2).sample(kept, 150):
        words = normalize_text(row["question"]).split()
        for i in range(len(words) - 12):
            assert " " + " ".join(words[i : i + 13]) + " " not in corpus


def test_minhash_agreement_estimates_jaccard(pool):
    hasher = MinHasher(num_perm=256)
    rng = random.Random(3)
    errors = []
    for j in rng.sample(range(len(pool)), 40):
        a = shingles(pool[j]["question"], 3)
        b = shingles(light_edit(pool[j]["question"], rng), 3)
        estimate = float((hasher.signature(a) == hasher.signature(b)).mean())
        errors.append(abs(estimate - jaccard(a, b)))
    # Standard error of the estimate is sqrt(J(1-J)/256) <= 0.031.
    assert max(errors) < 0.12 and sum(errors) / len(errors) < 0.04
