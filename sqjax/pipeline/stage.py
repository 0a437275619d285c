"""What the framework knows about a stage, and the ordered registry of stages.

A stage is one module under sqjax/stages/ that declares a `Stage`: its name, its settings
dataclass (the `RunConfig` field of the same name with `_` for `-`), the upstream stages whose
rows it reads, the other stages' settings it reads (`config_deps`), its `run(ctx)` function and
its device workload for `sqjax plan`. The ordered list of stages lives in sqjax/stages/; the
framework (this package) is handed a `Registry` and never imports the stages.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqjax.errors import SqjaxError


@dataclass(frozen=True)
class Stage:
    """One pipeline stage.

    config: the stage's settings dataclass; None for a stage that reads another stage's
      section (`section`), as test stand-ins do.
    inputs: upstream stages whose rows the stage reads (`ctx.read_stage`); their output hashes
      enter this stage's fingerprint. Stages named in model fields (`qpo:m`) are added.
    config_deps: dotted keys of other stages' settings the stage reads (`qpo_sample`,
      `filter.solvability`); they enter its fingerprint, and `ctx.config` refuses any other.
    section: the RunConfig attribute holding the settings (default: name with `_`).
    workload: `(run config, stage name, rows multiple) -> list[sqjax.plan.workload.Job]`,
      the programs the stage runs and how often (None: no device programs).
    """

    name: str
    description: str
    run: Callable[[Any], None]
    config: type | None = None
    inputs: tuple[str, ...] = ()
    config_deps: tuple[str, ...] = ()
    section: str = ""
    workload: Callable[[Any, str, int], list] | None = None

    @property
    def section_name(self) -> str:
        return self.section or self.name.replace("-", "_")


class Registry:
    """Stages in pipeline order, looked up by name (unknown names get a suggestion)."""

    def __init__(self, stages: Iterable[Stage]) -> None:
        self._stages: dict[str, Stage] = {}
        for stage in stages:
            self.register(stage)

    def register(self, stage: Stage) -> Stage:
        """Adds a stage at the end of the order, or replaces the one of the same name."""
        self._stages[stage.name] = stage
        return stage

    def unregister(self, name: str) -> None:
        self._stages.pop(name, None)

    def names(self) -> list[str]:
        return list(self._stages)

    def __iter__(self) -> Iterator[Stage]:
        return iter(list(self._stages.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._stages

    def get(self, name: str) -> Stage:
        """The stage called `name`; SqjaxError with a suggestion otherwise."""
        if name in self._stages:
            return self._stages[name]
        near = difflib.get_close_matches(name, list(self._stages), n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise SqjaxError(f"unknown stage {name!r}; {hint}(`sqjax stages` lists them)")
