"""Prompts as data: the paper's texts (Appendix F, Figures 10-13) verbatim and sqjax's
rewordings, each a file in `sqjax/resources/prompts/` listed in its `index.yaml` with a name,
a kind, the placeholder the question fills and a source note. Configs pick prompts by name.

The authors send every prompt as the user turn after the system message below
(`add_generation_prompt=True`); `PAPER_SYSTEM` is the default system message of every stage
that asks a model something with these prompts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import yaml

PromptKind = Literal[
    "rewrite-solvability", "rewrite-difficulty", "solvability-check", "difficulty-rating"
]
PAPER_SYSTEM = "You are a helpful assistant."
PAPER_PROMPTS: dict[str, str] = {
    "rewrite-solvability": "paper-fig10-qpo-solvability",
    "rewrite-difficulty": "paper-fig11-qpo-difficulty",
    "solvability-check": "paper-fig12-solvability-check",
    "difficulty-rating": "paper-fig13-difficulty-rating",
}
_FOLDER = "resources/prompts"


@dataclass(frozen=True)
class PromptTemplate:
    """One prompt of the library; `fill(question)` gives the user message."""

    name: str
    kind: PromptKind
    text: str
    placeholder: str
    source: str

    def fill(self, question: str) -> str:
        """The prompt with the (stripped) question in its placeholder."""
        return self.text.format(**{self.placeholder: question.strip()})


@functools.cache
def _index() -> dict[str, dict]:
    text = resources.files("sqjax").joinpath(_FOLDER, "index.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def names(kind: str | None = None) -> list[str]:
    """Prompt names in the library, optionally only those of one kind."""
    return [n for n, e in _index().items() if kind is None or e["kind"] == kind]


@functools.cache
def load_prompt(name: str) -> PromptTemplate:
    """The prompt called `name`; ValueError naming the known ones otherwise."""
    entry = _index().get(name)
    if entry is None:
        raise ValueError(f"prompt {name!r} is not in {_FOLDER}/index.yaml; known: {names()}")
    raw = resources.files("sqjax").joinpath(_FOLDER, entry["file"]).read_text(encoding="utf-8")
    text = raw.removesuffix("\n")
    return PromptTemplate(name, entry["kind"], text, entry["placeholder"], entry["source"])


def check_prompt(name: str, kind: str, key: str) -> None:
    """ValueError unless `name` is a library prompt of `kind` (config validation)."""
    choices = names(kind)
    if name not in choices:
        raise ValueError(f"{key}={name!r} is not a {kind} prompt; choose one of {choices}")
