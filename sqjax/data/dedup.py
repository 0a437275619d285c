"""Exact and near-duplicate removal for question sets, with a record of what was dropped.

- Exact: rows whose normalised text (`normalize_text`) is equal; the first one is kept.
- Near: MinHash signatures of word n-gram shingles, LSH banding to find candidate pairs, and
  the exact Jaccard similarity of the shingle sets to confirm them (so LSH only decides which
  pairs get checked). Processed in order: a row is dropped when it is similar to a row kept
  before it. Written in numpy rather than taken from `datasketch`: ~100 lines, no dependency,
  deterministic given the seed, and the confirmation step makes its output exact for every
  pair that LSH proposes.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sqjax.errors import SqjaxError

_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Lowercase, punctuation and symbols (Unicode P* and S*) to spaces, whitespace collapsed."""
    chars = [" " if unicodedata.category(c)[0] in "PS" else c for c in text.lower()]
    return _SPACES.sub(" ", "".join(chars)).strip()


def _texts(rows: Sequence[dict], key: str) -> list[str]:
    for i, row in enumerate(rows):
        if key not in row:
            raise SqjaxError(
                f"row {i} (id {row.get('id')!r}) has no field {key!r}; set the text key"
            )
    return [str(r[key]) for r in rows]


def exact_dedup(rows: Sequence[dict], key: str = "question") -> tuple[list[dict], list[dict]]:
    """(kept, dropped): a row is dropped when its normalised text equals an earlier row's.
    Dropped rows carry `duplicate_of` (the kept row's `id`, or its index when rows have no id)."""
    first: dict[str, int] = {}
    kept, dropped = [], []
    for i, text in enumerate(_texts(rows, key)):
        norm = normalize_text(text)
        if norm in first:
            j = first[norm]
            dropped.append({**rows[i], "duplicate_of": rows[j].get("id", j), "similarity": 1.0})
        else:
            first[norm] = i
            kept.append(rows[i])
    return kept, dropped


def shingles(text: str, n: int) -> set[str]:
    """Word n-grams of the normalised text (the whole text when it has fewer than n words)."""
    words = normalize_text(text).split()
    if len(words) <= n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class MinHasher:
    """`num_perm` multiply-shift hashes h(x) = ((a x + b) mod 2^64) >> 32 (a odd, a and b
    random 64-bit) of 32-bit shingle hashes: a 2-independent family, computed with numpy's
    wrapping uint64 arithmetic."""

    num_perm: int = 128
    seed: int = 0

    def _coeffs(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        a = rng.integers(0, 1 << 64, self.num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
        b = rng.integers(0, 1 << 64, self.num_perm, dtype=np.uint64, endpoint=False)
        return a, b

    def signature(self, items: set[str]) -> np.ndarray:
        """[num_perm] uint64 MinHash signature (all-max for an empty set)."""
        if not items:
            return np.full(self.num_perm, np.iinfo(np.uint64).max, np.uint64)
        x = np.array([zlib.crc32(s.encode("utf-8")) for s in items], dtype=np.uint64)
        a, b = self._coeffs()
        return ((a[:, None] * x[None, :] + b[:, None]) >> np.uint64(32)).min(axis=1)


def jaccard(a: set[str], b: set[str]) -> float:
    """|a & b| / |a | b| (0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def near_dedup(
    rows: Sequence[dict],
    key: str = "question",
    threshold: float = 0.7,
    ngram: int = 3,
    num_perm: int = 128,
    bands: int = 32,
    seed: int = 0,
) -> tuple[list[dict], list[dict]]:
    """(kept, dropped): a row is dropped when the Jaccard similarity of its word-`ngram`
    shingles with a kept earlier row is >= threshold. Dropped rows carry `duplicate_of` and
    `similarity`. With 32 bands of 4 rows a pair at Jaccard 0.7 is proposed with probability
    1 - (1 - 0.7^4)^32 > 0.9999."""
    if num_perm % bands:
        raise SqjaxError(f"num_perm={num_perm} is not divisible by bands={bands}")
    hasher, rows_per_band = MinHasher(num_perm, seed), num_perm // bands
    buckets: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
    sets: dict[int, set[str]] = {}
    kept, dropped = [], []
    for i, text in enumerate(_texts(rows, key)):
        items = shingles(text, ngram)
        sig = hasher.signature(items)
        keys = [sig[k * rows_per_band : (k + 1) * rows_per_band].tobytes() for k in range(bands)]
        candidates = sorted({j for k, bk in enumerate(keys) for j in buckets[k].get(bk, ())})
        best = max(((jaccard(items, sets[j]), j) for j in candidates), default=(0.0, -1))
        if best[0] >= threshold:
            j = best[1]
            dropped.append({**rows[i], "duplicate_of": rows[j].get("id", j), "similarity": best[0]})
            continue
        sets[i] = items
        kept.append(rows[i])
        for k, bk in enumerate(keys):
            buckets[k].setdefault(bk, []).append(i)
    return kept, dropped
