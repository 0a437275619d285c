"""Loop trip counts from optimized HLO text, to scale XLA's cost analysis.

`Compiled.cost_analysis()` counts each HLO computation once: a while loop's body (the
accumulation scan, the chunked LM head, a layer scan, the decode loop) adds one iteration's
FLOPs and bytes, whatever its trip count. Here every computation gets a multiplier, the
product of the trip counts of the loops around it, where a loop's trip count is the largest
integer constant its condition compares the counter with (scans and fori loops count from 0
to n; the decode loop's bound is `steps`, an upper bound when every row stops early). The
same parse counts dot/convolution FLOPs and the bytes of unfused instructions once and
weighted by multipliers; the ratios (weighted / once) scale XLA's FLOPs and bytes.
"""

from __future__ import annotations

import dataclasses
import math
import re

_HEADER = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) \(.*\{\s*$")
_INSTR = re.compile(
    r"^\s*(?:ROOT )?%([\w.\-]+) = (\(.*?\)|[\w]+\[[\d,]*\])\S* ([\w\-]+)\((.*?)\)(.*)$"
)
_SHAPE = re.compile(r"(\w+)\[([\d,]*)\]")
_CALLS = re.compile(r"(calls|to_apply|body|condition)=%([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_CONST = re.compile(r"s(?:32|64)\[\]\S* constant\((\d+)\)")
_BYTES = {
    "pred": 1,
    "s8": 1,
    "u8": 1,
    "bf16": 2,
    "f16": 2,
    "s16": 2,
    "u16": 2,
    "f32": 4,
    "s32": 4,
    "u32": 4,
    "f64": 8,
    "s64": 8,
    "u64": 8,
}
_IN_PLACE = {"dynamic-update-slice", "scatter"}
_SLICES = {"dynamic-slice", "slice", "gather"}
_FREE = {
    "parameter",
    "get-tuple-element",
    "tuple",
    "constant",
    "bitcast",
    "while",
    "call",
    "conditional",
    "after-all",
    "partition-id",
    "replica-id",
    "copy-start",
    "copy-done",
}


@dataclasses.dataclass(frozen=True)
class LoopScale:
    flops: float  # trip-weighted dot FLOPs / once-counted dot FLOPs
    bytes: float
    trip_counts: tuple[int, ...]  # of every while loop, outermost first by appearance


class _CALLS_RE:
    @staticmethod
    def get(key: str, attrs: str) -> str | None:
        m = re.search(rf"{key}=%([\w.\-]+)", attrs)
        return m.group(1) if m else None


def _size(shape_text: str) -> tuple[int, int]:
    """(elements, bytes) of a shape or tuple of shapes."""
    elems = nbytes = 0
    for dtype, dims in _SHAPE.findall(shape_text):
        n = math.prod(int(d) for d in dims.split(",") if d)
        elems, nbytes = elems + n, nbytes + n * _BYTES.get(dtype, 4)
    return elems, nbytes


def _dims(shape_text: str) -> list[int]:
    m = _SHAPE.search(shape_text)
    return [int(d) for d in m.group(2).split(",") if d] if m else []


def _dot_flops(out: str, operands: str, attrs: str, shapes: dict[str, str], op: str) -> float:
    names = re.findall(r"%([\w.\-]+)", operands)
    if not names or names[0] not in shapes:
        return 0.0
    lhs = _dims(shapes[names[0]])
    if op == "dot":
        m = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", attrs)
        k = math.prod(lhs[int(i)] for i in m.group(1).split(",") if i) if m else 1
    else:
        m = re.search(r"dim_labels=(\w+)_", attrs)
        k = lhs[m.group(1).index("f")] if m and "f" in m.group(1) else 1
    return 2.0 * _size(out)[0] * k


def _parse(text: str):
    comps: dict[str, list[tuple]] = {}
    consts: dict[str, list[int]] = {}
    current = None
    for line in text.splitlines():
        if (h := _HEADER.match(line)) is not None:
            current = comps.setdefault(h.group(1), [])
            ints = consts.setdefault(h.group(1), [])
            if line.startswith("ENTRY"):
                comps["__entry__"] = [("entry", h.group(1))]
            continue
        if current is not None and (m := _INSTR.match(line)) is not None:
            current.append(m.groups())
            ints.extend(int(c) for c in _CONST.findall(line))
    return comps, consts


def _sliced_root(body: list[tuple]) -> bool:
    """A fused computation whose result is a slice of a parameter (through bitcasts)."""
    if not body:
        return False
    ops = {name: op for name, _, op, _, _ in body}
    root = body[-1]
    while root[2] in ("bitcast", "reshape", "copy"):
        arg = re.findall(r"%([\w.\-]+)", root[3])
        match = [b for b in body if arg and b[0] == arg[0]]
        if not match:
            return False
        root = match[0]
    return root[2] in _SLICES and ops is not None


def loop_scale(text: str) -> LoopScale:
    comps, consts = _parse(text)
    entry = comps.pop("__entry__", [(None, None)])[0][1]
    in_place = {name for name, body in comps.items() if body and body[-1][2] in _IN_PLACE}
    slices = {name for name, body in comps.items() if _sliced_root(body)}
    mult: dict[str, float] = {}
    fused: set[str] = set()
    trips: list[int] = []

    def visit(name: str, factor: float) -> None:
        if name not in comps:
            return
        mult[name] = mult.get(name, 0.0) + factor
        for _, _, op, operands, attrs in comps[name]:
            calls = dict(_CALLS.findall(attrs))
            if op == "while":
                trip = max(consts.get(calls.get("condition"), []) or [1])
                trips.append(trip)
                visit(calls["body"], factor * trip)
                continue
            if op == "fusion" and "calls" in calls:
                fused.add(calls["calls"])
            for callee in calls.values():
                visit(callee, factor)
            for branch in _BRANCHES.findall(attrs):
                for callee in re.findall(r"%([\w.\-]+)", branch):
                    visit(callee, factor)

    if entry is not None:
        visit(entry, 1.0)
    once = {"flops": 0.0, "bytes": 0.0}
    weighted = {"flops": 0.0, "bytes": 0.0}
    for name, body in comps.items():
        factor = mult.get(name, 0.0)
        shapes = {n: s for n, s, *_ in body}
        for _, out, op, operands, attrs in body:
            if op in ("dot", "convolution"):
                f = _dot_flops(out, operands, attrs, shapes, op)
                once["flops"] += f
                weighted["flops"] += f * factor
            if name in fused or op in _FREE:
                continue
            sizes = [
                _size(shapes[n])[1] for n in re.findall(r"%([\w.\-]+)", operands) if n in shapes
            ]
            callee = _CALLS_RE.get("calls", attrs)
            if op in _IN_PLACE or callee in in_place:
                # an in-place update reads and writes its update, not the whole buffer
                b = 2 * (sum(sizes) - max(sizes, default=0))
            elif op in _SLICES or callee in slices:
                b = 2 * _size(out)[1]  # a slice reads what it returns, not its whole operand
            else:
                b = _size(out)[1] + sum(sizes)
            once["bytes"] += b
            weighted["bytes"] += b * factor
    ratio = {k: weighted[k] / once[k] if once[k] else 1.0 for k in once}
    return LoopScale(ratio["flops"], ratio["bytes"], tuple(trips))
