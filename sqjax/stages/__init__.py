"""The ordered registry of pipeline stages.

Each stage lives in `sqjax/stages/<name_with_underscores>.py` and exposes `NAME`,
`DESCRIPTION` and `run(ctx: sqjax.pipeline.StageContext) -> None`. Modules are imported only
when a stage runs, so `sqjax --help` stays fast. The difficulty scorer is trained in its own
stage, before `filter`, which applies it.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from sqjax.errors import SqjaxError


@dataclass(frozen=True)
class StageSpec:
    """What the framework knows about a stage before importing it.

    inputs: upstream stages whose rows the stage reads (`ctx.read_stage`); their output hashes
      go into this stage's fingerprint. Stages named in model fields (`qpo:m`) are added.
    section: the RunConfig attribute holding the stage's settings (default: name with `_`).
    config_deps: other dotted config keys the stage reads; part of its fingerprint.
    run: the stage function itself (tests); default: `module.run`.
    """

    name: str
    description: str
    inputs: tuple[str, ...] = ()
    section: str = ""
    config_deps: tuple[str, ...] = ()
    module: str = ""
    run: Callable | None = None

    @property
    def section_name(self) -> str:
        return self.section or self.name.replace("-", "_")

    @property
    def module_name(self) -> str:
        return self.module or f"sqjax.stages.{self.name.replace('-', '_')}"


_REGISTRY: dict[str, StageSpec] = {}


def register(spec: StageSpec) -> StageSpec:
    """Adds (or replaces) a stage; new stages go at the end of the pipeline order."""
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def names() -> list[str]:
    """Stage names in pipeline order."""
    return list(_REGISTRY)


def spec(name: str) -> StageSpec:
    """The spec of a registered stage; SqjaxError with a suggestion otherwise."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    near = difflib.get_close_matches(name, list(_REGISTRY), n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    raise SqjaxError(f"unknown stage {name!r}; {hint}(`sqjax stages` lists them)")


def load_run(name: str) -> Callable:
    """The `run(ctx)` function of a stage, importing its module on first use."""
    s = spec(name)
    if s.run is not None:
        return s.run
    try:
        module = importlib.import_module(s.module_name)
    except ModuleNotFoundError as e:
        if e.name != s.module_name:
            raise
        raise SqjaxError(
            f"stage {name} is not implemented in this version (no module {s.module_name})"
        ) from None
    return module.run


for _spec in (
    StageSpec("seed-questions", "collect the bare seed questions (GSM8K + MATH train)"),
    StageSpec(
        "qft",
        "question fine-tuning: teach each solver to write questions",
        inputs=("seed-questions",),
    ),
    StageSpec(
        "qpo-sample",
        "sample questions from each QFT model for QPO",
        inputs=("qft",),
        config_deps=("qft.models",),
    ),
    StageSpec(
        "qpo-rewrite",
        "rewrite sampled questions toward solvability or difficulty",
        inputs=("qpo-sample",),
    ),
    StageSpec(
        "qpo-pairs",
        "build DPO pairs: chosen = rewrite, rejected = original",
        inputs=("qpo-rewrite",),
    ),
    StageSpec(
        "qpo",
        "question preference optimization (DPO) of each QFT model",
        inputs=("qpo-pairs", "qft"),
        config_deps=("qft.models",),
    ),
    StageSpec("gen-questions", "sample questions from scratch with each generator"),
    StageSpec(
        "difficulty",
        "train the fail-rate regressor used by the difficulty filter",
        inputs=("seed-questions",),
    ),
    StageSpec(
        "filter",
        "language, solvability, difficulty, dedup, decontamination filters",
        inputs=("gen-questions",),
        config_deps=("eval.benchmarks",),
    ),
    StageSpec(
        "rate-questions",
        "rate questions' solvability and difficulty with an LLM judge (the paper's Fig. 4/5/9)",
        inputs=("qpo-sample", "gen-questions", "filter"),
    ),
    StageSpec(
        "gen-responses", "write several chain-of-thought answers per question", inputs=("filter",)
    ),
    StageSpec(
        "reward",
        "score responses with a reward model and keep the best per question",
        inputs=("gen-responses",),
    ),
    StageSpec("sft", "fine-tune base models on the (query, response) pairs", inputs=("reward",)),
    StageSpec(
        "eval",
        "evaluate models on math benchmarks (zero-shot CoT, greedy)",
        config_deps=("sft.template", "sft.instruction"),  # the prompt of `sft:<m>` models
    ),
):
    register(_spec)
