"""Tokenize/mask/pack functions on literal lists."""

import numpy as np
import pytest

from sqjax.data.packing import (
    Example,
    PackStats,
    iter_packed_rows,
    next_token_targets,
    pack_examples,
    pad_batch,
    pad_right,
    tokenize_sft,
)
from sqjax.errors import SqjaxError


def _encode(text: str) -> list[int]:
    """A literal byte-level 'tokenizer': one id per character."""
    return [ord(c) for c in text]


def ex(tokens, mask=None):
    tokens = np.array(tokens, np.int32)
    return Example(tokens, np.ones_like(tokens) if mask is None else np.array(mask, np.int32))


def test_tokenize_full_and_completion_modes():
    full = tokenize_sft(_encode, "ab", "cd", "full")
    assert full.tokens_L.tolist() == [97, 98, 99, 100]
    assert full.loss_mask_L.tolist() == [1, 1, 1, 1]
    # Prompt and completion are encoded apart, so a boundary-merging encoder sees two calls.
    calls = []
    tokenize_sft(lambda t: calls.append(t) or [1], "User: ", "q", "full")
    assert calls == ["User: ", "q"]
    comp = tokenize_sft(_encode, "ab", "cd", "completion")
    assert comp.tokens_L.tolist() == [97, 98, 99, 100]
    assert comp.loss_mask_L.tolist() == [0, 0, 1, 1]
    with pytest.raises(SqjaxError, match="mode="):
        tokenize_sft(_encode, "a", "b", "prompt")


def test_greedy_sequential_packing_layout():
    examples = [ex([1, 2, 3]), ex([4, 5], [0, 1]), ex([6, 7, 8, 9]), ex([10])]
    batch, stats = pack_examples(examples, seq_len=6, pad_id=-1)
    assert batch.tokens_BL.tolist() == [[1, 2, 3, 4, 5, -1], [6, 7, 8, 9, 10, -1]]
    assert batch.segment_ids_BL.tolist() == [[1, 1, 1, 2, 2, 0], [1, 1, 1, 1, 2, 0]]
    assert batch.positions_BL.tolist() == [[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 0]]
    assert batch.loss_mask_BL.tolist() == [[1, 1, 1, 0, 1, 0], [1, 1, 1, 1, 1, 0]]
    assert (stats.examples, stats.rows, stats.tokens, stats.truncated) == (4, 2, 10, 0)
    assert stats.fill(6) == pytest.approx(10 / 12)


def test_overlong_examples_truncated_or_dropped_and_counted():
    examples = [ex([1, 2, 3, 4, 5], [0, 0, 1, 1, 1]), ex([6, 7])]
    batch, stats = pack_examples(examples, seq_len=4, overflow="truncate")
    assert batch.tokens_BL.tolist() == [[1, 2, 3, 4], [6, 7, 0, 0]]
    assert batch.loss_mask_BL.tolist() == [[0, 0, 1, 1], [1, 1, 0, 0]]
    assert (stats.truncated, stats.dropped, stats.longest) == (1, 0, 5)
    batch, stats = pack_examples(examples, seq_len=4, overflow="drop")
    assert batch.tokens_BL.tolist() == [[6, 7, 0, 0]]
    assert (stats.truncated, stats.dropped) == (0, 1)


def test_exact_fit_closes_the_row_and_streaming_matches_batch():
    examples = [ex([1, 2]), ex([3, 4]), ex([5])]
    rows = list(iter_packed_rows(examples, seq_len=4, stats=PackStats()))
    assert [r["tokens"].tolist() for r in rows] == [[1, 2, 3, 4], [5, 0, 0, 0]]
    assert rows[0]["segment_ids"].tolist() == [1, 1, 2, 2]


def test_next_token_targets_stay_inside_segments():
    batch, _ = pack_examples([ex([1, 2, 3], [0, 1, 1]), ex([4, 5], [1, 1])], seq_len=6)
    targets, weights = next_token_targets(batch.tokens_BL, batch.segment_ids_BL, batch.loss_mask_BL)
    # Row: tokens 1 2 3 | 4 5 | pad. Position 2 (last of segment 1) must not predict 4.
    assert targets.tolist() == [[2, 3, 0, 5, 0, 0]]
    assert weights.tolist() == [[1, 1, 0, 1, 0, 0]]


def test_completion_mask_weights_response_and_end_token_only():
    # prompt "<u>q" then completion "a" + end, as a chat SFT pair would be.
    e = tokenize_sft(_encode, "Pq", "aE", "completion")
    batch = pad_batch([e], length=6)
    targets, weights = next_token_targets(batch.tokens_BL, batch.segment_ids_BL, batch.loss_mask_BL)
    predicted = [chr(t) for t, w in zip(targets[0], weights[0]) if w]
    assert predicted == ["a", "E"]


def test_pad_helpers():
    assert pad_right([[1, 2], [3]], 3, pad_value=9).tolist() == [[1, 2, 9], [3, 9, 9]]
    with pytest.raises(SqjaxError, match="raise the length"):
        pad_right([[1, 2, 3]], 2)
    batch = pad_batch([ex([5, 6], [0, 1]), ex([7])], length=3, pad_id=-1)
    assert batch.tokens_BL.tolist() == [[5, 6, -1], [7, -1, -1]]
    assert batch.segment_ids_BL.tolist() == [[1, 1, 0], [1, 0, 0]]
    assert batch.positions_BL.tolist() == [[0, 1, 0], [0, 0, 0]]
    assert batch.loss_mask_BL.tolist() == [[0, 1, 0], [1, 0, 0]]
