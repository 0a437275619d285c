"""TPU slice names (`v5e-8`) -> the devices a deviceless compile targets.

Names follow Cloud TPU's accelerator types: v2, v3, v4 and v5p count TensorCores (`v4-8` is 4
chips of 2 cores), v5e and v6e count chips. What a compile sees as one device differs: with
libtpu 0.0.42.1 a v3 or v4 topology comes as per-core devices (`v4:2x2x1`: 8 devices of
15.25 GiB), v5e, v5p and v6e as chips (`v5p:2x2x1`: 4 megacore chips of 95.74 GiB). Every
per-device figure plan reports is per device of that view (`Topology.view`).
"""

from __future__ import annotations

import dataclasses
import functools
import os

from sqjax.errors import SqjaxError


@dataclasses.dataclass(frozen=True)
class Topology:
    """One slice: its Cloud TPU name, libtpu topology string and device view."""

    name: str  # e.g. "v5e-8"
    desc: str  # libtpu topology, e.g. "v5e:2x4"
    chip: str  # roofline key, e.g. "v5e"
    chips: int
    view: str  # "core" (one device per TensorCore) or "chip"
    host_bounds: tuple[int, int, int] | None = None  # chips_per_host_bounds below 2x2x1

    @property
    def num_devices(self) -> int:
        return self.chips * (2 if self.view == "core" else 1)


def _t(name: str, desc: str, chips: int, view: str = "chip", single: bool = False) -> Topology:
    return Topology(name, desc, name.split("-")[0], chips, view, (1, 1, 1) if single else None)


TOPOLOGIES: dict[str, Topology] = {
    t.name: t
    for t in (
        _t("v3-8", "v3:2x2", 4, "core"),
        _t("v4-8", "v4:2x2x1", 4, "core"),
        _t("v4-16", "v4:2x2x2", 8, "core"),
        _t("v5e-1", "v5e:1x1", 1, single=True),
        _t("v5e-4", "v5e:2x2", 4),
        _t("v5e-8", "v5e:2x4", 8),
        _t("v5p-8", "v5p:2x2x1", 4),
        _t("v5p-16", "v5p:2x2x2", 8),
        _t("v6e-1", "v6e:1x1", 1, single=True),
        _t("v6e-4", "v6e:2x2", 4),
        _t("v6e-8", "v6e:2x4", 8),
    )
}


def topology(name: str) -> Topology:
    if name not in TOPOLOGIES:
        raise SqjaxError(f"--topology {name!r} is not known; use one of {', '.join(TOPOLOGIES)}")
    return TOPOLOGIES[name]


@functools.cache
def devices(name: str) -> tuple:
    """The slice's devices for ahead-of-time compiles (needs libtpu: pip install 'sqjax[tpu]')."""
    from jax.experimental import topologies

    t = topology(name)
    # a second process loading libtpu (another compile, a test) must not fail on its lock
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    kw = {} if t.host_bounds is None else {"chips_per_host_bounds": t.host_bounds}
    try:
        desc = topologies.get_topology_desc(topology_name=t.desc, platform="tpu", **kw)
    except Exception as e:  # noqa: BLE001 - libtpu missing or refusing: one line with the fix
        raise SqjaxError(
            f"cannot describe TPU topology {t.desc} ({str(e).splitlines()[0]}); install the TPU "
            "extra at this jax version: pip install 'sqjax[tpu]'"
        ) from None
    found = tuple(desc.devices)
    if len(found) != t.num_devices:
        raise SqjaxError(
            f"{name}: libtpu gives {len(found)} devices for {t.desc}, expected {t.num_devices} "
            f"({t.view} view); update sqjax/plan/topology.py for this libtpu"
        )
    return found


# jax device_kind -> roofline key
KINDS = {
    "TPU v3": "v3",
    "TPU v4": "v4",
    "TPU v5 lite": "v5e",
    "TPU v5e": "v5e",
    "TPU v5": "v5p",
    "TPU v5p": "v5p",
    "TPU v6 lite": "v6e",
    "TPU v6e": "v6e",
}


def local_topology() -> str:
    """The name of the slice this process runs on (its TPU devices), e.g. `v5e-1`."""
    import jax

    found = jax.devices()
    chip = KINDS.get(found[0].device_kind)
    for t in TOPOLOGIES.values():
        if t.chip == chip and t.num_devices == len(found):
            return t.name
    raise SqjaxError(
        f"{len(found)} x {found[0].device_kind!r} is not a slice plan knows; pass --topology "
        f"with one of {', '.join(TOPOLOGIES)}"
    )
