"""Per-device peak figures of TPU generations, for time estimates (a roofline: a program
takes at least max(FLOPs / peak FLOP/s, bytes / HBM bandwidth)).

Peak bf16 FLOP/s and HBM bandwidth are per chip from Google Cloud's TPU pages (`source`);
`core` view generations (v3, v4) split them over the chip's two TensorCores. `hbm_gib` is the
HBM one device may use as libtpu 0.0.42.1 reports it in its out-of-memory errors
("exceeds available HBM (15.75G)"; G = GiB), a little under the advertised size.
"""

from __future__ import annotations

import dataclasses

from sqjax.plan.topology import Topology

GIB = 1024**3


@dataclasses.dataclass(frozen=True)
class Chip:
    bf16_tflops: float  # per chip
    hbm_gbps: float  # per chip, GB/s
    hbm_gib: float  # usable per device of the compile's view
    source: str


CHIPS: dict[str, Chip] = {
    "v3": Chip(123.0, 900.0, 15.48, "https://cloud.google.com/tpu/docs/v3"),
    "v4": Chip(275.0, 1228.0, 15.25, "https://cloud.google.com/tpu/docs/v4"),
    "v5e": Chip(197.0, 819.0, 15.75, "https://cloud.google.com/tpu/docs/v5e"),
    "v5p": Chip(459.0, 2765.0, 95.74, "https://cloud.google.com/tpu/docs/v5p"),
    "v6e": Chip(918.0, 1640.0, 31.25, "https://cloud.google.com/tpu/docs/v6e"),
}


@dataclasses.dataclass(frozen=True)
class Device:
    """Peak figures of one device of a topology's view."""

    flops: float  # bf16 FLOP/s
    hbm_bytes_s: float
    hbm_bytes: float
    source: str


def device(t: Topology) -> Device:
    c = CHIPS[t.chip]
    per = 2 if t.view == "core" else 1
    return Device(c.bf16_tflops * 1e12 / per, c.hbm_gbps * 1e9 / per, c.hbm_gib * GIB, c.source)


def seconds(flops: float, bytes_accessed: float, d: Device) -> float:
    """Roofline time of work spread evenly over one device's figures."""
    return max(flops / d.flops, bytes_accessed / d.hbm_bytes_s)
