"""Stage sft's training setup: the loss covers exactly the response tokens and the end-of-turn
token (`loss: response`), every token with `loss: all`, and rows are packed."""

from __future__ import annotations

import numpy as np
from test_stage_a_fixtures import run_config, smol_tokenizer

from sqjax.data.packing import next_token_targets, pack_examples
from sqjax.pipeline.context import StageContext
from sqjax.pipeline.training import train_config
from sqjax.stages.sft import recipe, training_rows
from sqjax.training.inputs import sft_examples

ROWS = [
    {"question": "What is 2 + 3?", "response": "2 + 3 = 5, so \\boxed{5}."},
    {"question": "Half of 9?", "response": "9 / 2 = 4.5.\nThe answer is \\boxed{4.5}"},
]


def _config(tmp_path, loss: str):
    cfg = run_config(
        tmp_path,
        {"m": tmp_path / "m"},
        f"sft: {{models: [{{model: m, lr: 2.0e-5}}], loss: {loss}, pack_len: 256, batch_size: 4}}\n",
    )
    ctx = StageContext("sft", cfg, cfg.sft, tmp_path, {}, ("reward",))
    return train_config(
        ctx, "m", "data.jsonl", "model", smol_tokenizer(), None, recipe(cfg.sft, cfg.sft.models[0])
    )


def test_loss_mask_is_response_plus_end_token(tmp_path):
    tok = smol_tokenizer()
    cfg = _config(tmp_path, "response")
    assert (cfg.data_format, cfg.sft_mode, cfg.pack, cfg.seq_len, cfg.optim.lr) == (
        "chat",
        "completion",
        True,
        256,
        2.0e-5,
    )
    examples = sft_examples(training_rows(ROWS), tok, cfg.data_format, cfg.sft_mode)
    for row, ex in zip(ROWS, examples):
        mask = ex.loss_mask_L.astype(bool)
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": row["question"]}],
            tokenize=False,
            add_generation_prompt=True,
        )
        assert tok.decode(ex.tokens_L[~mask]) == prompt
        assert tok.decode(ex.tokens_L[mask]) == row["response"] + "<|im_end|>"
        assert mask[-1] and not mask[: int(np.argmax(mask))].any()  # one contiguous tail
    batch, stats = pack_examples(examples, cfg.seq_len)
    assert stats.rows == 1 and batch.segment_ids_BL.max() == 2  # both examples in one row
    _, weights_BL = next_token_targets(batch.tokens_BL, batch.segment_ids_BL, batch.loss_mask_BL)
    assert weights_BL.sum() == sum(int(ex.loss_mask_L.sum()) for ex in examples)


def test_loss_all_trains_every_token(tmp_path):
    cfg = _config(tmp_path, "all")
    assert cfg.sft_mode == "full"
    (ex,) = sft_examples(training_rows(ROWS[:1]), smol_tokenizer(), cfg.data_format, cfg.sft_mode)
    assert ex.loss_mask_L.all()
