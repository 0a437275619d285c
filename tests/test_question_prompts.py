"""The prompt library: the paper's Appendix F prompts ship verbatim (pinned by hash, and
compared with ../shared/PAPER-PROMPTS.md where that file exists), names select them in the
configs, and the paper configs default to them."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from sqjax.errors import SqjaxError
from sqjax.question.prompt_library import PAPER_PROMPTS, load_prompt, names
from sqjax.question.prompts import rewrite_prompt
from sqjax.registry import RunConfig, parse_config

SHARED = Path(__file__).parents[2] / "shared" / "PAPER-PROMPTS.md"
# sha256 of each paper prompt's text (the file less its final newline)
PINNED = {
    "paper-fig10-qpo-solvability": "03ebe1392d91f2d04d560b3b0e5deab180108d7a75c10da8ace3584fb8d59cad",
    "paper-fig11-qpo-difficulty": "a6931055d06c5e07ff03b56b5ea610c5d72879d1d2e71d4fda3cb58c4bf222bb",
    "paper-fig12-solvability-check": "8da49c6ac60ff4cdbaf72ba64ac781adef715a9b12f60834c2ae702b9d7f5704",
    "paper-fig13-difficulty-rating": "b8b36472a0797862495a10d4d1b4cb9ef39751f15ba24c0bcfc22eafe5adc2f4",
}
FIGURE = {
    "paper-fig10-qpo-solvability": "Figure 10",
    "paper-fig11-qpo-difficulty": "Figure 11",
    "paper-fig12-solvability-check": "Figure 12",
    "paper-fig13-difficulty-rating": "Figure 13",
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_paper_prompts_are_pinned(name):
    text = load_prompt(name).text
    assert hashlib.sha256((text + "\n").encode()).hexdigest() == PINNED[name]


@pytest.mark.skipif(not SHARED.is_file(), reason="../shared/PAPER-PROMPTS.md not present")
@pytest.mark.parametrize("name", sorted(FIGURE))
def test_paper_prompts_equal_the_published_text(name):
    md = SHARED.read_text(encoding="utf-8")
    block = re.search(rf"^## {FIGURE[name]} .*?\n```\n(.*?)\n```", md, re.DOTALL | re.MULTILINE)
    assert block is not None
    assert load_prompt(name).text == block.group(1)


def test_figure_12_keeps_the_tabs_and_asks_to_solve_first():
    text = load_prompt("paper-fig12-solvability-check").text
    assert "1.\tThe given problem is a math problem." in text
    assert "(You can first try to solve it and then judge its solvability)" in text
    assert text.endswith("conclude with either 'Yes' or 'No'.\n\nGiven Problem: {problem}")


def test_fill_puts_the_question_in_the_placeholder():
    q = "  A shop sells 3 pens at $2. What do they cost?\n"
    solv = load_prompt("paper-fig10-qpo-solvability").fill(q)
    assert "Given Question: A shop sells 3 pens at $2. What do they cost?\n" in solv
    assert solv.endswith("FINAL QUESTION: <your final created question>")
    diff = load_prompt("paper-fig11-qpo-difficulty").fill(q)
    assert diff.endswith("#Problem#:\nA shop sells 3 pens at $2. What do they cost?")
    rating = load_prompt("paper-fig13-difficulty-rating").fill(q)
    # doubled braces are format escapes: the model sees one brace
    assert '{ "intent": "The user wants to [....]"' in rating and "{{" not in rating
    assert "## User Query\nA shop sells 3 pens" in rating


def test_kinds_and_defaults():
    assert set(names("rewrite-solvability")) == {
        "paper-fig10-qpo-solvability",
        "sqjax-qpo-solvability",
    }
    c = RunConfig()
    assert c.qpo_rewrite.prompts == {
        "solvability": "paper-fig10-qpo-solvability",
        "difficulty": "paper-fig11-qpo-difficulty",
    }
    assert c.filter.solvability.prompt == c.rate_questions.solvability_prompt
    assert c.filter.solvability.prompt == PAPER_PROMPTS["solvability-check"]
    assert c.rate_questions.difficulty_prompt == "paper-fig13-difficulty-rating"
    assert c.qpo_rewrite.system == c.filter.solvability.system == "You are a helpful assistant."
    assert "create high quality math word problems" in rewrite_prompt("solvability", "Q")
    assert "10 to 20 words" in rewrite_prompt("difficulty", "Q")


def test_our_rewordings_are_named_options():
    cfg = parse_config(
        "qpo_rewrite: {prompts: {solvability: sqjax-qpo-solvability, "
        "difficulty: sqjax-qpo-difficulty}}\n"
        "filter: {solvability: {prompt: sqjax-solvability-check}}",
        "x.yaml",
    )
    prompt = rewrite_prompt("solvability", "Q", cfg.qpo_rewrite.prompts)
    assert "### Final Question:" in prompt and "keep it unchanged" in prompt
    with pytest.raises(SqjaxError, match="not a rewrite-solvability prompt"):
        parse_config(
            "qpo_rewrite: {prompts: {solvability: paper-fig11-qpo-difficulty, "
            "difficulty: paper-fig11-qpo-difficulty}}",
            "x.yaml",
        )
    with pytest.raises(SqjaxError, match="solvability-check"):
        parse_config("filter: {solvability: {prompt: nope}}", "x.yaml")


class _Info:
    seed = 7

    def __init__(self) -> None:
        self.drops: dict[str, int] = {}

    def drop(self, reason: str, n: int = 1) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + n


def test_rewrite_shard_sends_each_goal_its_figure(monkeypatch):
    """Each row's goal gets its own paper prompt (Figure 10 for solvability, Figure 11 for
    difficulty) after the authors' system message; swapping the two fails here."""
    from sqjax.stages import qpo_rewrite

    calls = []

    def fake_replies(ctx, who, messages, **kw):
        calls.append((messages, kw))
        return [
            f"FINAL QUESTION: rewrite of {i}" if i % 4 else "no marker"
            for i in range(len(messages))
        ]

    monkeypatch.setattr(qpo_rewrite, "llm_replies", fake_replies)
    ctx = SimpleNamespace(section=RunConfig().qpo_rewrite)
    rows = [{"id": f"q{i}", "question": f"Question number {i}?"} for i in range(24)]
    info = _Info()
    out = qpo_rewrite.rewrite_shard(ctx, rows, info)
    ((messages, kw),) = calls
    assert kw["system"] == "You are a helpful assistant." and kw["temperature"] == 0.0
    goals = qpo_rewrite.goals(len(rows), info.seed, 0.5)
    assert set(goals) == {"solvability", "difficulty"}
    for row, goal, message in zip(rows, goals, messages):
        assert message == load_prompt(PAPER_PROMPTS[f"rewrite-{goal}"]).fill(row["question"])
        fig10 = "create high quality math word problems" in message and "FINAL QUESTION:" in message
        fig11 = "add 10 to 20 words" in message and "#Finally Rewritten Problem#:" in message
        assert (fig10, fig11) == ((True, False) if goal == "solvability" else (False, True))
    assert [r["goal"] for r in out] == [g for i, g in enumerate(goals) if i % 4]
    assert sum(info.drops.values()) == 6
    assert info.drops == {
        f"no_final_question:{g}": sum(1 for i, x in enumerate(goals) if x == g and i % 4 == 0)
        for g in {goals[i] for i in range(0, 24, 4)}
    }
