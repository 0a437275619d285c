"""Per-step logging: tqdm bar, a metrics JSONL and TensorBoard, with tokens/s and MFU.

MFU = 6 * params * positions / (seconds * peak FLOP/s of all devices). Positions include
padding (the hardware computes them); peak FLOP/s are dense bf16 figures from the vendors'
data sheets. CPU has no meaningful peak: its figure is nominal and the MFU is marked so.

In a gs:// output directory the metrics and events are written locally and uploaded whole
(objects cannot be appended to) every SYNC_S seconds, at `flush()` and at `close()`.
"""

from __future__ import annotations

import json
import math
import os
import time

import jax
from tensorboardX import SummaryWriter
from tqdm import tqdm

from sqjax import paths
from sqjax.data.jsonl import atomic_write_jsonl

PEAK_FLOPS = {  # per chip, dense bf16
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v5": 459e12,
    "TPU v6 lite": 918e12,
    "TPU v6e": 918e12,
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
}
NOMINAL_FLOPS = 1e12  # used for CPU and unknown devices
SYNC_S = 30.0  # seconds between uploads of a gs:// output directory's metrics


def peak_flops(devices=None) -> tuple[float, bool]:
    """(peak FLOP/s of all devices, whether the figure is nominal)."""
    devices = devices or jax.devices()
    kind = devices[0].device_kind
    for name, flops in PEAK_FLOPS.items():
        if name.lower() in kind.lower():
            return flops * len(devices), False
    return NOMINAL_FLOPS * len(devices), True


def mfu(params: int, positions: int, seconds: float, peak: float) -> float:
    return 6.0 * params * positions / max(seconds, 1e-9) / peak


class Monitor:
    """Writes one record per step; only process 0 writes anything."""

    def __init__(self, output_dir: str | os.PathLike, total_steps: int, start_step: int,
                 n_params: int, progress_bar: bool = True):
        self.path = paths.as_path(output_dir) / "metrics.jsonl"
        self.enabled = jax.process_index() == 0
        self.n_params = n_params
        self.peak, self.nominal = peak_flops()
        if not self.enabled:
            return
        self._mirror = paths.LocalMirror(output_dir)
        self._keep_until(start_step)
        self._file = (self._mirror.local / self.path.name).open("a", encoding="utf-8")
        self._tb = SummaryWriter(str(self._mirror.local / "tensorboard"))
        self._synced = time.monotonic()
        self._bar = tqdm(total=total_steps, initial=start_step, disable=not progress_bar, desc="train")

    def _keep_until(self, step: int) -> None:
        """Drops records after `step` (left by a run that died after its last checkpoint)."""
        if not self.path.exists():
            return
        rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        atomic_write_jsonl(self._mirror.local / self.path.name, [r for r in rows if r["step"] <= step])

    def log(self, step: int, metrics: dict, tokens: int, positions: int, seconds: float) -> dict:
        """Records step `step` (1-based: steps done) and returns the record."""
        record = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        record["tokens_per_s"] = tokens / max(seconds, 1e-9)
        record["mfu"] = mfu(self.n_params, positions, seconds, self.peak)
        record["mfu_nominal"] = self.nominal
        if not self.enabled:
            return record
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        for key, value in record.items():
            if key != "step" and isinstance(value, float) and math.isfinite(value):
                self._tb.add_scalar(f"train/{key}", value, step)
        self._bar.update(1)
        self._bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                              gnorm=f"{record['grad_norm']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
        if self._mirror.remote and time.monotonic() - self._synced >= SYNC_S:
            self.flush()
        return record

    def flush(self) -> None:
        """Makes every record so far readable at `path` (a checkpoint is about to name them)."""
        if self.enabled:
            self._file.flush()
            self._tb.flush()
            self._mirror.sync()
            self._synced = time.monotonic()

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            self._tb.close()
            self._bar.close()
            self._mirror.close()
