"""Tokenize, mask and pack SFT examples: pure numpy functions the Grain pipelines wrap.

Conventions (every trainer in sqjax relies on them):

- An example is `Example(tokens, loss_mask)`, 1-D int32 arrays of equal length. `loss_mask[t]`
  is 1 when token t is a training *target* (its log-probability given tokens[:t] is in the
  loss), 0 otherwise.
  Prompt and completion are encoded separately (the prompt exactly as the sampler sees it)
  and concatenated.
  * full-sequence mode (QFT, the authors' recipe): every token is a target.
  * completion-only mode (final SFT, QPO): only completion tokens, its end token included,
    are targets.
- A batch (`Batch`) holds [B, L] int32 arrays, all *right*-padded:
  * `tokens_BL`: token ids; padding is `pad_id`.
  * `segment_ids_BL`: 1..k numbering the examples packed in a row, 0 on padding. Attention
    must stay within a segment (same nonzero id) and be causal.
  * `positions_BL`: 0, 1, ... restarting at each segment (the RoPE positions); 0 on padding.
  * `loss_mask_BL`: the examples' loss masks; 0 on padding.
- Next-token targets (`next_token_targets`): `targets[t] = tokens[t+1]` when t+1 is in the same
  segment, and the weight of position t is `loss_mask[t+1]` there; at a segment's last token
  and on padding the target is `pad_id` and the weight 0. The first token of a segment is never
  a target (it has no context), whatever its mask says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sqjax.errors import SqjaxError

Encode = Callable[[str], Sequence[int]]


@dataclass(frozen=True)
class Example:
    """One tokenized example: `tokens_L` and `loss_mask_L` (1 = token is a target)."""

    tokens_L: np.ndarray
    loss_mask_L: np.ndarray


@dataclass(frozen=True)
class Batch:
    """[B, L] right-padded arrays; see the module docstring for every field's meaning."""

    tokens_BL: np.ndarray
    segment_ids_BL: np.ndarray
    positions_BL: np.ndarray
    loss_mask_BL: np.ndarray


@dataclass
class PackStats:
    """Counts kept while packing (reported by the training stage)."""

    examples: int = 0
    truncated: int = 0
    dropped: int = 0
    rows: int = 0
    tokens: int = 0
    longest: int = 0  # longest example seen, before truncation

    def fill(self, seq_len: int) -> float:
        """Fraction of packed positions holding a token."""
        return self.tokens / max(1, self.rows * seq_len)


def tokenize_sft(
    encode: Encode, prompt: str, completion: str, mode: Literal["full", "completion"]
) -> Example:
    """Tokenizes one (prompt, completion) pair with the loss mask of `mode`.

    Both modes encode `encode(prompt) + encode(completion)`, so the prompt's tokens are exactly
    those a sampler is given (joint encoding can merge across the boundary: DeepSeek's prefix
    "User: " ends in a space that joins the question's first word). full: loss on every token
    (QFT: prompt = pre-query prefix, completion = question + end-of-turn); completion: loss on
    the completion tokens only.
    """
    if mode not in ("full", "completion"):
        raise SqjaxError(f"sft mode={mode!r} is not one of 'full', 'completion'")
    p = np.asarray(encode(prompt), dtype=np.int32)
    c = np.asarray(encode(completion), dtype=np.int32)
    prompt_mask = np.ones_like(p) if mode == "full" else np.zeros_like(p)
    return Example(np.concatenate([p, c]), np.concatenate([prompt_mask, np.ones_like(c)]))


def _fit(ex: Example, seq_len: int, overflow: str, stats: PackStats) -> Example | None:
    n = len(ex.tokens_L)
    stats.longest = max(stats.longest, n)
    if n <= seq_len:
        return ex
    if overflow == "drop":
        stats.dropped += 1
        return None
    if overflow == "truncate":
        stats.truncated += 1
        return Example(ex.tokens_L[:seq_len], ex.loss_mask_L[:seq_len])
    raise SqjaxError(f"overflow={overflow!r} is not one of 'truncate', 'drop'")


def _row(parts: list[Example], seq_len: int, pad_id: int) -> dict[str, np.ndarray]:
    tokens = np.full(seq_len, pad_id, np.int32)
    segment_ids = np.zeros(seq_len, np.int32)
    positions = np.zeros(seq_len, np.int32)
    loss_mask = np.zeros(seq_len, np.int32)
    start = 0
    for seg, ex in enumerate(parts, start=1):
        end = start + len(ex.tokens_L)
        tokens[start:end] = ex.tokens_L
        segment_ids[start:end] = seg
        positions[start:end] = np.arange(end - start)
        loss_mask[start:end] = ex.loss_mask_L
        start = end
    return {
        "tokens": tokens,
        "segment_ids": segment_ids,
        "positions": positions,
        "loss_mask": loss_mask,
    }


def iter_packed_rows(
    examples: Iterable[Example],
    seq_len: int,
    pad_id: int = 0,
    overflow: Literal["truncate", "drop"] = "truncate",
    stats: PackStats | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Greedy sequential packing: each example goes into the current row if it fits, else a
    new row is started. Yields one row at a time as a dict of [seq_len] arrays (`tokens`,
    `segment_ids`, `positions`, `loss_mask`), so a Grain pipeline can stream it.

    Examples longer than seq_len are truncated or dropped (`overflow`) and counted in `stats`;
    empty examples are skipped.
    """
    if seq_len < 1:
        raise SqjaxError(f"seq_len={seq_len} must be at least 1")
    stats = stats if stats is not None else PackStats()
    parts: list[Example] = []
    used = 0
    for ex in examples:
        stats.examples += 1
        fitted = _fit(ex, seq_len, overflow, stats)
        if fitted is None or len(fitted.tokens_L) == 0:
            continue
        if used + len(fitted.tokens_L) > seq_len:
            stats.rows += 1
            yield _row(parts, seq_len, pad_id)
            parts, used = [], 0
        parts.append(fitted)
        used += len(fitted.tokens_L)
        stats.tokens += len(fitted.tokens_L)
    if parts:
        stats.rows += 1
        yield _row(parts, seq_len, pad_id)


def stack_rows(rows: Sequence[dict[str, np.ndarray]]) -> Batch:
    """Stacks packed rows (from iter_packed_rows) into a Batch."""
    if not rows:
        raise SqjaxError("no rows to stack: the data set is empty after packing")
    return Batch(
        tokens_BL=np.stack([r["tokens"] for r in rows]),
        segment_ids_BL=np.stack([r["segment_ids"] for r in rows]),
        positions_BL=np.stack([r["positions"] for r in rows]),
        loss_mask_BL=np.stack([r["loss_mask"] for r in rows]),
    )


def pack_examples(
    examples: Iterable[Example],
    seq_len: int,
    pad_id: int = 0,
    overflow: Literal["truncate", "drop"] = "truncate",
) -> tuple[Batch, PackStats]:
    """Packs all examples (see iter_packed_rows) into one Batch and returns the counts."""
    stats = PackStats()
    rows = list(iter_packed_rows(examples, seq_len, pad_id, overflow, stats))
    return stack_rows(rows), stats


def pad_right(seqs: Sequence[Sequence[int]], length: int, pad_value: int = 0) -> np.ndarray:
    """[B, length] int32 array of `seqs` right-padded with pad_value (error if one is longer)."""
    out = np.full((len(seqs), length), pad_value, np.int32)
    for i, s in enumerate(seqs):
        if len(s) > length:
            raise SqjaxError(
                f"sequence {i} has {len(s)} tokens > length={length}; raise the length"
            )
        out[i, : len(s)] = np.asarray(s, dtype=np.int32)
    return out


def pad_batch(examples: Sequence[Example], length: int, pad_id: int = 0) -> Batch:
    """Unpacked batch: one example per row, right-padded (segment id 1 on tokens, 0 on pad)."""
    lengths = [len(e.tokens_L) for e in examples]
    return Batch(
        tokens_BL=pad_right([e.tokens_L for e in examples], length, pad_id),
        segment_ids_BL=pad_right([[1] * n for n in lengths], length, 0),
        positions_BL=pad_right([range(n) for n in lengths], length, 0),
        loss_mask_BL=pad_right([e.loss_mask_L for e in examples], length, 0),
    )


def next_token_targets(
    tokens_BL: np.ndarray, segment_ids_BL: np.ndarray, loss_mask_BL: np.ndarray, pad_id: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(targets_BL, weights_BL): `targets[t] = tokens[t+1]` within a segment, weight
    `loss_mask[t+1]`; at a segment's last token and on padding, target pad_id and weight 0."""
    same_BL = np.zeros_like(segment_ids_BL, dtype=bool)
    same_BL[:, :-1] = (segment_ids_BL[:, 1:] == segment_ids_BL[:, :-1]) & (
        segment_ids_BL[:, :-1] > 0
    )
    targets_BL = np.full_like(tokens_BL, pad_id)
    targets_BL[:, :-1] = np.where(same_BL[:, :-1], tokens_BL[:, 1:], pad_id)
    weights_BL = np.zeros(tokens_BL.shape, np.float32)
    weights_BL[:, :-1] = np.where(same_BL[:, :-1], loss_mask_BL[:, 1:], 0)
    return targets_BL, weights_BL
