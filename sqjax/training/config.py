"""Training configuration: frozen dataclasses a stage or a notebook fills in.

Defaults follow the ScaleQuest settings (shared/SCALEQUEST.md): QFT is `sft` with
`sft_mode="full"`, packed 256-token rows, lr 2e-5; QPO is `dpo` with the sigmoid variant,
beta 0.1, lr 5e-7, 20 warmup steps; the final SFT is `sft` with `sft_mode="completion"`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from sqjax.errors import SqjaxError

LOGITS_CHUNK = 1024  # LM-head positions at a time in training and reference passes (0: off)


def micro_batches(batch_size: int, accum_steps: int, rows: int = 1) -> int:
    """The micro-batches of a step: accum_steps, or the largest count below it that splits
    batch_size into micro-batches whose rows divide over the mesh's `rows` (data x fsdp)
    devices (a default never makes a small batch or a wide mesh an error). Accumulation
    does not change the step's result, only its memory."""
    ok = [a for a in range(1, min(accum_steps, batch_size) + 1) if batch_size % (a * rows) == 0]
    return max(ok, default=1)


LOSSES = ("sft", "dpo", "regression")
DPO_VARIANTS = ("sigmoid", "ipo", "hinge")
SFT_MODES = ("full", "completion")
REMAT_MODES = ("none", "full", "dots")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup then cosine decay to `end_lr`, and global-norm clipping."""

    lr: float = 2e-5
    end_lr: float = 0.0
    warmup_steps: int | None = None  # None: warmup_ratio of the total steps
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    clip_norm: float | None = 1.0

    def __post_init__(self):
        if self.lr <= 0:
            raise SqjaxError(f"optim.lr={self.lr} must be positive")
        if not 0 <= self.warmup_ratio < 1:
            raise SqjaxError(f"optim.warmup_ratio={self.warmup_ratio} must be in [0, 1)")


@dataclasses.dataclass(frozen=True)
class DPOConfig:
    """Preference-loss settings; `reference_free` drops the reference log-ratios."""

    variant: str = "sigmoid"
    beta: float = 0.1
    label_smoothing: float = 0.0
    reference_free: bool = False

    def __post_init__(self):
        if self.variant not in DPO_VARIANTS:
            raise SqjaxError(f"dpo.variant={self.variant!r} is not one of {DPO_VARIANTS}")
        if self.beta <= 0:
            raise SqjaxError(f"dpo.beta={self.beta} must be positive")
        if not 0 <= self.label_smoothing < 0.5:
            raise SqjaxError(f"dpo.label_smoothing={self.label_smoothing} must be in [0, 0.5)")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs.

    `model`: an HF directory (read with sqjax.load_model) or a Decoder. `tokenizer`: an HF
    tokenizer object or directory (None: the model directory). Data are JSONL files: SFT rows
    hold `question` (data_format "qft") or `query` + `response` ("chat"); DPO rows hold
    `chosen` and `rejected` questions; regression rows hold `text` and `label` (the model
    gets a scalar score head, sqjax.training.regression). `batch_size` counts rows (SFT,
    regression) or pairs (DPO) per
    optimizer step, split into `accum_steps` micro-batches.
    """

    model: Any
    data: tuple[str, ...]
    output_dir: str
    loss: Literal["sft", "dpo", "regression"] = "sft"
    tokenizer: Any = None
    data_format: Literal["qft", "chat"] = "qft"
    sft_mode: Literal["full", "completion"] = "full"
    pack: bool = True
    seq_len: int = 256
    batch_size: int = 32
    accum_steps: int = 1
    epochs: int = 1
    max_steps: int | None = None  # cap on optimizer steps (None: the epochs decide)
    optim: OptimConfig = OptimConfig()
    dpo: DPOConfig = DPOConfig()
    compute_dtype: str | None = None  # e.g. "bfloat16" with float32 master weights
    attention: str | None = None  # self-attention kernel (sqjax.models.kernels); None: model's
    attention_block: int | None = None  # its block size; None: the model config's (512)
    remat: str = "none"  # "none", "full" (recompute each block) or "dots" (keep matmul outputs)
    logits_chunk: int = LOGITS_CHUNK  # LM-head positions at a time (0: the whole sequence)
    seed: int = 0
    mesh: tuple[int, int, int] = (-1, 1, 1)  # (data, fsdp, tensor)
    save_every: int = 500
    keep_checkpoints: int = 2
    async_checkpoints: bool = True
    log_every: int = 1
    export: bool = True  # write the final weights as an HF directory under output_dir/hf
    progress_bar: bool = True

    def __post_init__(self):
        if isinstance(self.data, str):
            object.__setattr__(self, "data", (self.data,))
        if self.loss not in LOSSES:
            raise SqjaxError(f"loss={self.loss!r} is not one of {LOSSES}")
        if self.logits_chunk < 0:
            raise SqjaxError(
                f"logits_chunk={self.logits_chunk} must be >= 0 (0 turns chunking off)"
            )
        if self.remat not in REMAT_MODES:
            raise SqjaxError(f"remat={self.remat!r} is not one of {REMAT_MODES}")
        if self.sft_mode not in SFT_MODES:
            raise SqjaxError(f"sft_mode={self.sft_mode!r} is not one of {SFT_MODES}")
        if self.batch_size % self.accum_steps:
            raise SqjaxError(
                f"batch_size={self.batch_size} is not divisible by accum_steps={self.accum_steps}; "
                "set batch_size to a multiple of accum_steps"
            )
        for key in ("seq_len", "batch_size", "accum_steps", "epochs", "save_every", "log_every"):
            if getattr(self, key) < 1:
                raise SqjaxError(f"{key}={getattr(self, key)} must be at least 1")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a run produced: its final step and loss, and where things were written."""

    steps: int
    final_loss: float
    output_dir: str
    metrics_path: str
    checkpoint_dir: str
    hf_dir: str | None
    resumed_from: int | None
