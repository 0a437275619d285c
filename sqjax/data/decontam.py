"""13-gram decontamination against evaluation sets, recording which eval item each drop hit.

A row is contaminated when its normalised text (`dedup.normalize_text`) shares a word n-gram
(default 13, the usual test-set overlap check) with an evaluation item. Evaluation items with
fewer than n words have no n-gram; for them a row matches when its whole normalised text
equals theirs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqjax.data.dedup import normalize_text
from sqjax.errors import SqjaxError


def word_ngrams(text: str, n: int) -> list[str]:
    """Word n-grams of the normalised text, in order (none when it has fewer than n words)."""
    words = normalize_text(text).split()
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


@dataclass
class EvalIndex:
    """n-gram -> id of the first evaluation item that has it (plus short items' full texts)."""

    n: int = 13
    grams: dict[str, str] = field(default_factory=dict)
    short: dict[str, str] = field(default_factory=dict)

    def add(self, rows: Iterable[dict], key: str = "question") -> EvalIndex:
        """Indexes evaluation rows (each needs `id` and `key`)."""
        for i, row in enumerate(rows):
            if "id" not in row or key not in row:
                raise SqjaxError(f"eval row {i} needs fields 'id' and {key!r}; has {sorted(row)}")
            grams = word_ngrams(row[key], self.n)
            if not grams:
                self.short.setdefault(normalize_text(row[key]), row["id"])
            for g in grams:
                self.grams.setdefault(g, row["id"])
        return self

    def match(self, text: str) -> tuple[str, str] | None:
        """(eval id, matched n-gram or text) of the first overlap found, else None."""
        norm = normalize_text(text)
        if norm in self.short:
            return self.short[norm], norm
        for g in word_ngrams(text, self.n):
            if g in self.grams:
                return self.grams[g], g
        return None


def decontaminate(
    rows: Sequence[dict], index: EvalIndex, key: str = "question"
) -> tuple[list[dict], list[dict]]:
    """(kept, dropped): dropped rows carry `contaminated_by` (eval id) and `matched_ngram`."""
    kept, dropped = [], []
    for i, row in enumerate(rows):
        if key not in row:
            raise SqjaxError(
                f"row {i} (id {row.get('id')!r}) has no field {key!r}; set the text key"
            )
        hit = index.match(row[key])
        if hit is None:
            kept.append(row)
        else:
            dropped.append({**row, "contaminated_by": hit[0], "matched_ngram": hit[1]})
    return kept, dropped
