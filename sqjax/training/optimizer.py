"""AdamW with linear warmup, cosine decay and global-norm clipping (Optax)."""

from __future__ import annotations

import math

import optax

from sqjax.training.config import OptimConfig


def warmup_steps(cfg: OptimConfig, total_steps: int) -> int:
    """Explicit warmup steps, else `warmup_ratio` of the run (rounded up, as HF does)."""
    if cfg.warmup_steps is not None:
        return min(cfg.warmup_steps, total_steps)
    return min(total_steps, math.ceil(cfg.warmup_ratio * total_steps))


def schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    """lr 0 -> cfg.lr linearly over the warmup, then cosine to cfg.end_lr at total_steps."""
    warm = warmup_steps(cfg, total_steps)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=cfg.lr,
        warmup_steps=warm,
        decay_steps=max(total_steps, warm + 1),
        end_value=cfg.end_lr,
    )


def make_optimizer(cfg: OptimConfig, total_steps: int) -> optax.GradientTransformation:
    """Clipping (if set) then AdamW; the optimizer state has the parameters' dtype."""
    adamw = optax.adamw(
        schedule(cfg, total_steps), b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay
    )
    if cfg.clip_norm is None:
        return adamw
    return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), adamw)
