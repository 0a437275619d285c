"""Grain input pipelines from JSONL: tokenize with the chat template, mask, pack or pad,
shuffle with a seed, batch, and keep a checkpointable position.

The pure pieces live in sqjax/data (chat.py: template texts; packing.py: tokenize/mask/pack
and next-token targets); this module only orders and batches them. Every process builds the
same *global* batch (cheap next to a train step) and keeps its own rows (`local_rows`), so a
run gives the same batches whatever the process count.

SFT batch keys ([B, L] int32 unless noted, right-padded): tokens, positions, segment_ids,
targets, weights (float32). DPO batches hold the same keys prefixed `chosen_` and
`rejected_` (one example per row) plus `ref_chosen`, `ref_rejected` ([B] float32).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import grain
import numpy as np

from sqjax.data.chat import ChatFormat, chat_format, encoder
from sqjax.data.jsonl import read_jsonl
from sqjax.data.packing import (
    Batch,
    Example,
    iter_packed_rows,
    next_token_targets,
    pad_batch,
    stack_rows,
    tokenize_sft,
)
from sqjax.errors import SqjaxError

FIELDS = {"qft": ("question",), "chat": ("query", "response"), "dpo": ("chosen", "rejected")}


def load_rows(paths: Sequence[str], data_format: str) -> list[dict]:
    """All rows of the JSONL files, checked for the fields of `data_format`."""
    rows = [row for path in paths for row in read_jsonl(path, FIELDS[data_format])]
    if not rows:
        raise SqjaxError(f"{', '.join(paths)}: no rows; point `data` at non-empty JSONL files")
    return rows


def sft_examples(rows: Iterable[dict], tokenizer: Any, data_format: str, mode: str) -> list[Example]:
    """Tokenized SFT examples. qft: prefix + question + end-of-turn; chat: the answering
    prompt then the reply. `mode` is packing.tokenize_sft's (full or completion)."""
    fmt, encode = chat_format(tokenizer), encoder(tokenizer)
    out = []
    for row in rows:
        if data_format == "qft":
            prompt, completion = fmt.prefix, row["question"].strip() + fmt.end_of_turn
        else:
            prompt, completion = fmt.chat_prompt(row["query"]), fmt.completion_text(row["response"])
        out.append(tokenize_sft(encode, prompt, completion, mode))
    return out


def question_completion(fmt: ChatFormat, question: str) -> str:
    """A QPO completion: the question and its end-of-turn (what follows the prefix)."""
    return question.strip() + fmt.end_of_turn


def dpo_examples(rows: Sequence[dict], tokenizer: Any, seq_len: int) -> tuple[list[tuple[Example, Example]], list[int]]:
    """(chosen, rejected) examples with the loss on question + end-of-turn tokens, cut to
    seq_len, and the indices of the rows kept: pairs whose prompt leaves no completion
    token within seq_len are dropped."""
    fmt, encode = chat_format(tokenizer), encoder(tokenizer)
    pairs, kept = [], []
    for i, row in enumerate(rows):
        chosen, rejected = (
            _cut(tokenize_sft(encode, fmt.prefix, question_completion(fmt, row[k]), "completion"), seq_len)
            for k in ("chosen", "rejected")
        )
        if chosen.loss_mask_L[1:].sum() == 0 or rejected.loss_mask_L[1:].sum() == 0:
            continue
        pairs.append((chosen, rejected))
        kept.append(i)
    return pairs, kept


def _cut(ex: Example, seq_len: int) -> Example:
    return Example(ex.tokens_L[:seq_len], ex.loss_mask_L[:seq_len])


def row_arrays(batch: Batch, pad_id: int, prefix: str = "") -> dict[str, np.ndarray]:
    """A packing.Batch as train-step arrays, with next-token targets and weights."""
    targets_BL, weights_BL = next_token_targets(batch.tokens_BL, batch.segment_ids_BL, batch.loss_mask_BL, pad_id)
    arrays = {
        "tokens": batch.tokens_BL,
        "positions": batch.positions_BL,
        "segment_ids": batch.segment_ids_BL,
        "targets": targets_BL,
        "weights": weights_BL,
    }
    return {prefix + k: v for k, v in arrays.items()}


def example_order(n: int, seed: int, epochs: int) -> grain.MapDataset:
    """Indices 0..n-1, shuffled with `seed`, reshuffled for each of `epochs` epochs."""
    return grain.MapDataset.range(n).shuffle(seed).repeat(epochs)


class SFTBatchIterator(grain.DatasetIterator):
    """Global SFT batches of `batch_size` rows, packed (or one example per row) from the
    examples in `order`. The state is the position in `order` of the next row's first
    example plus the batch count, so a restored iterator continues exactly."""

    def __init__(self, examples: Sequence[Example], order: grain.MapDataset, seq_len: int,
                 batch_size: int, num_batches: int, pack: bool, pad_id: int):
        super().__init__()
        self._examples, self._order = examples, order
        self._seq_len, self._batch_size, self._num_batches = seq_len, batch_size, num_batches
        self._pack, self._pad_id = pack, pad_id
        self._cursor = self._batches = 0

    def _stream(self):
        for i in range(self._cursor, len(self._order)):
            yield self._examples[self._order[i]]

    def _next_row(self) -> dict[str, np.ndarray]:
        source = self._stream() if self._pack else iter([self._examples[self._order[self._cursor]]])
        row = next(iter_packed_rows(source, self._seq_len, self._pad_id, "truncate"))
        self._cursor += int(row["segment_ids"].max())  # examples in the row (none are empty)
        return row

    def __next__(self) -> dict[str, np.ndarray]:
        if self._batches >= self._num_batches:
            raise StopIteration
        rows = [self._next_row() for _ in range(self._batch_size)]
        self._batches += 1
        return row_arrays(stack_rows(rows), self._pad_id)

    def get_state(self) -> dict[str, Any]:
        return {"cursor": self._cursor, "batches": self._batches}

    def set_state(self, state: dict[str, Any]) -> None:
        self._cursor, self._batches = int(state["cursor"]), int(state["batches"])


def count_rows(examples: Sequence[Example], order: grain.MapDataset, seq_len: int, pack: bool) -> int:
    """Rows the examples fill in `order` (one packing pass)."""
    if not pack:
        return len(order)
    return sum(1 for _ in iter_packed_rows((examples[order[i]] for i in range(len(order))), seq_len))


def sft_iterator(examples: Sequence[Example], seq_len: int, batch_size: int, *, pack: bool,
                 seed: int, epochs: int, pad_id: int) -> tuple[SFTBatchIterator, int]:
    """(iterator of global SFT batches, number of full batches it yields)."""
    examples = [e for e in examples if len(e.tokens_L)]
    if not examples:
        raise SqjaxError("every SFT example is empty after tokenization; check the data fields")
    order = example_order(len(examples), seed, epochs)
    num_batches = count_rows(examples, order, seq_len, pack) // batch_size
    if num_batches == 0:
        raise SqjaxError(
            f"the data fill fewer than batch_size={batch_size} rows of seq_len={seq_len}; "
            "lower batch_size or add data"
        )
    it = SFTBatchIterator(examples, order, seq_len, batch_size, num_batches, pack, pad_id)
    return it, num_batches


def dpo_collate(items: Sequence[tuple], seq_len: int, pad_id: int) -> dict[str, np.ndarray]:
    """Pads (chosen, rejected, ref_chosen, ref_rejected) items into one DPO batch."""
    out = row_arrays(pad_batch([it[0] for it in items], seq_len, pad_id), pad_id, "chosen_")
    out |= row_arrays(pad_batch([it[1] for it in items], seq_len, pad_id), pad_id, "rejected_")
    out["ref_chosen"] = np.asarray([it[2] for it in items], np.float32)
    out["ref_rejected"] = np.asarray([it[3] for it in items], np.float32)
    return out


def dpo_iterator(pairs: Sequence[tuple[Example, Example]], ref_C: np.ndarray, ref_R: np.ndarray,
                 seq_len: int, batch_size: int, *, seed: int, epochs: int,
                 pad_id: int) -> tuple[grain.DatasetIterator, int]:
    """(Grain iterator of global DPO batches, number of batches); ref_C/ref_R are the
    reference log-probabilities of each pair's chosen and rejected sequence."""
    items = [(c, r, float(rc), float(rr)) for (c, r), rc, rr in zip(pairs, ref_C, ref_R)]
    num_batches = len(items) * epochs // batch_size
    if num_batches == 0:
        raise SqjaxError(f"{len(items)} pairs x {epochs} epochs fill no batch of {batch_size}; lower batch_size")
    ds = grain.MapDataset.source(items).shuffle(seed).repeat(epochs)
    ds = ds.batch(batch_size, drop_remainder=True, batch_fn=lambda xs: dpo_collate(xs, seq_len, pad_id))
    return iter(ds.to_iter_dataset()), num_batches


def reference_batches(pairs: Sequence[tuple[Example, Example]], seq_len: int, batch_size: int,
                      pad_id: int) -> Iterable[dict[str, np.ndarray]]:
    """The pairs in data order, in batches (the last one padded by repeating pairs)."""
    for start in range(0, len(pairs), batch_size):
        chunk = list(pairs[start : start + batch_size])
        chunk += [chunk[-1]] * (batch_size - len(chunk))
        yield dpo_collate([(c, r, 0.0, 0.0) for c, r in chunk], seq_len, pad_id)


def local_rows(batch: dict[str, np.ndarray], accum_steps: int, process: int, processes: int) -> dict[str, np.ndarray]:
    """This process's share of a global batch, shaped [accum_steps, rows per micro-batch, ...]."""
    out = {}
    for key, array in batch.items():
        micro = array.reshape(accum_steps, array.shape[0] // accum_steps, *array.shape[1:])
        per = micro.shape[1] // processes
        out[key] = micro[:, process * per : (process + 1) * per]
    return out
