"""Checks a stage's settings dataclass runs in `__post_init__`. They raise ValueError, which
the config loader reports with the file and key path (sqjax.pipeline.typed).

A rule a component already states (sampling limits: sqjax.sampling.params.SamplingParams; DPO:
sqjax.training.config.DPOConfig) is checked by building that component's own config, so
each rule is written once and a config still fails when it is loaded, not when the stage
reaches it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqjax.errors import SqjaxError


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def positive(**values: int | None) -> None:
    """Each value is None or > 0."""
    for name, value in values.items():
        require(value is None or value > 0, f"{name}={value} must be > 0")


def as_component(check: Callable[..., Any], *args: Any, **values: Any) -> Any:
    """`check(*args, **values)` (a component's config class or check), its SqjaxError turned
    into the ValueError a config check raises."""
    try:
        return check(*args, **values)
    except SqjaxError as e:
        raise ValueError(str(e)) from None


def sampling_limits(temperature: float, top_p: float, max_tokens: int) -> None:
    """The sampler's own limits on these settings (SamplingParams)."""
    from sqjax.sampling.params import SamplingParams

    as_component(SamplingParams, temperature=temperature, top_p=top_p, max_tokens=max_tokens)
