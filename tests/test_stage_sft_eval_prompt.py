"""Training and evaluation see the same prompt (the sft stage's template and instruction,
DART-Math's alpaca by default), the eval stage's scores come from the graded outputs of the
right prompts, and the sft stage's data mixing / subsampling."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from test_stage_a_fixtures import fake_stage, run_config, smol_tokenizer, write_jsonl

from sqjax.answer.evaluation import prompt_ids
from sqjax.data.chat import chat_format
from sqjax.data.prompt_format import BOXED_INSTRUCTION, query_text, template_names, with_template
from sqjax.errors import SqjaxError
from sqjax.pipeline.runner import run_stage
from sqjax.registry import RunConfig, parse_config
from sqjax.stages import eval as eval_stage
from sqjax.stages import sft
from sqjax.training.inputs import sft_examples

ALPACA_HEAD = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n"
)


def test_defaults_dart_math_for_sft_own_template_for_other_models():
    c = RunConfig()
    assert (c.sft.template, c.sft.instruction) == ("alpaca", "")
    assert (c.eval.template, c.eval.instruction) == ("model", BOXED_INSTRUCTION)
    assert "alpaca" in template_names()
    with pytest.raises(SqjaxError, match="not a chat template"):
        parse_config("sft: {template: vicuna}", "x.yaml")


@pytest.mark.parametrize("instruction", ["", BOXED_INSTRUCTION])
def test_training_prompt_is_the_eval_prompt(instruction):
    tok = with_template(smol_tokenizer(), "alpaca")
    q, r = "Tom has 3 apples and buys 4. How many?", "3 + 4 = 7. \\boxed{7}"
    (example,) = sft_examples(
        [{"query": query_text(q, instruction), "response": r}], tok, "chat", "completion"
    )
    (prompt,) = prompt_ids(tok, [q], instruction)
    tokens, mask = list(example.tokens_L), list(example.loss_mask_L)
    first_target = mask.index(1)
    assert tokens[:first_target] == prompt  # the eval prompt is the trained prompt, exactly
    text = tok.decode(prompt)
    assert ALPACA_HEAD + q in text and text.endswith("\n\n### Response:\n")
    assert (BOXED_INSTRUCTION in text) == bool(instruction)


def test_base_checkpoint_without_template_gets_the_configured_one():
    tok = smol_tokenizer()
    bare = with_template(tok, "alpaca")
    bare.chat_template = None  # a base model's tokenizer
    fmt = chat_format(with_template(bare, "alpaca"))
    assert fmt.chat_prompt("Q").endswith("### Instruction:\nQ\n\n### Response:\n")
    with pytest.raises(SqjaxError, match="set template: alpaca"):
        with_template(bare, "model")
    assert tok.chat_template and "### Instruction" not in tok.chat_template  # not mutated


BENCH = [
    {"problem": "1+1?", "solution": "\\boxed{2}", "level": "Level 1", "type": "Algebra"},
    {"problem": "2+2?", "solution": "\\boxed{4}", "level": "Level 2", "type": "Geometry"},
]


class _FakeLLM:
    """What the eval stage uses of an LLM handle: a tokenizer, and a name for the canned
    generator to answer by."""

    def __init__(self, name, tokenizer):
        self.name, self.tokenizer = name, tokenizer

    def with_tokenizer(self, tokenizer):
        return _FakeLLM(self.name, tokenizer)


def _canned_generator(llm, **_):
    """Answers by model: `tiny` right on 1+1 only, `sft:tiny` right on both; but only when the
    prompt is the one that model must get (else an empty, wrong answer)."""
    model, tokenizer = llm.name, llm.tokenizer
    right = {"tiny": {"1+1?"}, "sft:tiny": {"1+1?", "2+2?"}}[model]

    def expected(text: str, q: str) -> bool:
        if model == "sft:tiny":  # trained with alpaca and no instruction
            return ALPACA_HEAD + q + "\n\n### Response:\n" in text and "boxed" not in text
        return f"<|im_start|>user\n{q}\n{BOXED_INSTRUCTION}<|im_end|>" in text

    def run(prompts):
        out = []
        for p in prompts:
            text = tokenizer.decode(p)
            (q,) = [q for q in ("1+1?", "2+2?") if q in text]
            answer = {"1+1?": "2", "2+2?": "4"}[q] if q in right else "5"
            out.append((f"\\boxed{{{answer}}}" if expected(text, q) else "", 3, "stop"))
        return out

    return run


def test_eval_scores_are_the_graded_canned_outputs(tmp_path, monkeypatch):
    bench = write_jsonl(tmp_path / "bench.jsonl", BENCH)
    body = f"""
sft: {{models: [{{model: tiny, lr: 1.0e-3}}]}}
eval: {{models: [tiny, "sft:tiny"], benchmarks: {{tiny_math: '{bench}'}}, batch_size: 8}}
"""
    cfg = run_config(tmp_path / "run", {"tiny": tmp_path / "unused"}, body)
    tok = smol_tokenizer()
    monkeypatch.setattr(eval_stage, "llm_for", lambda ctx, name: _FakeLLM(name, tok))
    monkeypatch.setattr(eval_stage, "greedy_generator", _canned_generator)
    with fake_stage("sft", [{"model": "tiny"}]):
        run_stage(cfg, "sft")
        m = run_stage(cfg, "eval")
    assert m["metrics"]["scores"] == {"tiny": {"tiny_math": 0.5}, "sft:tiny": {"tiny_math": 1.0}}
    by_level = m["metrics"]["accuracy"]["tiny"]["tiny_math"]["by_level"]
    assert by_level == {
        "Level 1": {"accuracy": 1.0, "correct": 1, "n": 1},
        "Level 2": {"accuracy": 0.0, "correct": 0, "n": 1},
    }


def _ctx(tmp_path, section, reward_rows):
    metrics = {}
    return SimpleNamespace(
        section=section,
        read_stage=lambda name: reward_rows,
        read_input=lambda path, required=(): [
            {"query": f"extra {i}", "response": f"r{i}"} for i in range(6)
        ],
        set_metric=metrics.__setitem__,
        metrics=metrics,
        log=logging.getLogger("test"),
    )


def test_mixing_and_subsampling(tmp_path):
    reward = [{"question": f"q{i}", "response": f"a{i}"} for i in range(10)]
    cfg = parse_config(
        "sft: {max_rows: 7, subsample_seed: 5, extra_data: [extra.jsonl], instruction: Be brief.}",
        "x.yaml",
    )
    ctx = _ctx(tmp_path, cfg.sft, reward)
    rows = sft.mixed_rows(ctx)
    assert len(rows) == 7 and ctx.metrics["data"] == {
        "rows": {"reward": 10, "extra.jsonl": 6},
        "kept": 7,
        "max_rows": 7,
    }
    everything = [f"q{i}\nBe brief." for i in range(10)] + [
        f"extra {i}\nBe brief." for i in range(6)
    ]
    queries = [r["query"] for r in rows]
    assert queries == [q for q in everything if q in queries]  # original order kept
    assert rows == sft.mixed_rows(_ctx(tmp_path, cfg.sft, reward))  # same seed, same rows
    other = parse_config("sft: {max_rows: 7, subsample_seed: 6, extra_data: [e.jsonl]}", "x")
    assert [r["query"] for r in sft.mixed_rows(_ctx(tmp_path, other.sft, reward))] != [
        q.removesuffix("\nBe brief.") for q in queries
    ]
    assert sft.subsample(reward, None, 0) == reward and sft.subsample(reward, 99, 0) == reward
