"""Loop trip counts and bytes moved, from optimized HLO text, to scale XLA's cost analysis.

`Compiled.cost_analysis()` counts each HLO computation once: a while loop's body (the
accumulation scan, the chunked LM head, a layer scan, the decode loop) adds one iteration's
FLOPs and bytes, whatever its trip count. Here every computation gets a multiplier, the
product of the trip counts of the loops around it, where a loop's trip count is the largest
integer constant its condition compares the counter with, divided by the constant the body
adds to that counter (scans and fori loops count from 0 to n by 1; XLA TPU's windowed
einsum loops, a matmul split over FSDP shards, may step by 2; the decode loop's bound is
`steps`, an upper bound when every row stops early).

FLOPs: the parse counts dot/convolution FLOPs once and weighted by the multipliers; the ratio
(weighted / once) scales XLA's FLOPs.

Bytes: the parse counts them itself, trip-weighted (`LoopScale.hlo_bytes`): each unfused
instruction (a fusion counts as one) reads its operands and writes its result, except that
a slice reads only what it returns, an in-place update (dynamic-update-slice, scatter) reads
and writes only its update, and a fusion reads of an operand it only slices (through
bitcasts and nested fusions) just those slices. That last rule is what a scan over stacked
layers needs: each iteration's fusions take the whole stacked weights and KV cache as
operands and slice out one layer, and XLA's cost analysis counts every such operand at its
full, all-layers size (a 7B decode step then "reads" 28 x its weights). A copy XLA makes of
a slice (a layout change, a materialised layer) is counted, as it is real traffic.

A conditional counts its heaviest branch (the most FLOPs; the most bytes), as XLA's cost
analysis does for FLOPs (its maximum over the branches, checked on a v5e compile of
lax.cond): a layer scan switching between full and windowed attention, or sqjax's blockwise
XLA attention skipping unseen blocks, is counted at the heavier side. A Pallas attention
kernel (a tpu_custom_call, which XLA counts nothing inside) gets analytic FLOPs
(`LoopScale.kernel_flops`, trip-weighted, added on top of XLA's) and bytes, which replace
the call's operands-plus-result count (sqjax/plan/kernels.py).
"""

from __future__ import annotations

import dataclasses
import math
import re

from sqjax.plan import kernels

_HEADER = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) \(.*\{\s*$")
_NAME = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = ")
_OP = re.compile(r"([\w\-]+)\(")
_SHAPE = re.compile(r"(\w+)\[([\d,]*)\]")
_CALLS = re.compile(r"(calls|to_apply|body|condition)=%([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_CONST = re.compile(r"[su](?:32|64)\[\]\S* constant\((\d+)\)")
_INDEX = re.compile(r"index=(\d+)")
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
    hlo_bytes: float = 0.0  # this parse's own count, trip-weighted (slices at their size)
    kernel_flops: float = 0.0  # the attention kernels' analytic FLOPs, trip-weighted
    kernels: tuple[str, ...] = ()  # families of the Pallas kernels called ("splash", ...)


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
        return _conv_flops(out, lhs, attrs)
    return 2.0 * _size(out)[0] * k


def _conv_flops(out: str, lhs: list[int], attrs: str) -> float:
    """2 x the multiply-adds of a convolution: per (batch, output feature), the input
    features times, in every spatial dimension, the window taps that land on an input
    element rather than on padding or a dilation hole, summed over the output positions.
    XLA TPU writes some dots as convolutions whose windows are mostly padding (a windowed
    einsum's [heads] dimension: window 28, pad 27 on each side, one real tap per output) or
    holes (`lhs_dilate=4` with stride 3: one real tap in each window of 4)."""
    labels = re.search(r"dim_labels=(\w+)_\w+->(\w+)", attrs)
    if labels is None or "f" not in labels.group(1):
        return 2.0 * _size(out)[0]
    lhs_labels, out_labels = labels.group(1), labels.group(2)
    out_dims = _dims(out)
    groups = re.search(r"feature_group_count=(\d+)", attrs)
    macs = _size(out)[0] * lhs[lhs_labels.index("f")] / (int(groups.group(1)) if groups else 1)
    window = re.search(r"window=\{([^}]*)\}", attrs)
    fields = dict(re.findall(r"(\w+)=(\S+)", window.group(1))) if window else {}

    def per_dim(key: str, d: int, default: str) -> str:
        return fields[key].split("x")[d] if key in fields else default

    for d, w in enumerate(int(x) for x in fields.get("size", "").split("x") if x):
        n_in, n_out = lhs[lhs_labels.index(str(d))], out_dims[out_labels.index(str(d))]
        lo = int(per_dim("pad", d, "0_0").split("_")[0])
        stride, dilate = int(per_dim("stride", d, "1")), int(per_dim("lhs_dilate", d, "1"))
        rhs_dilate = int(per_dim("rhs_dilate", d, "1"))
        macs *= _taps(n_in, n_out, w, lo, stride, dilate, rhs_dilate) / n_out
    return 2.0 * macs


def _taps(n_in: int, n_out: int, w: int, lo: int, stride: int, dilate: int, rhs_dilate: int):
    """Window taps on input elements, over all output positions of one spatial dimension:
    input element i sits at lo + i * dilate of the padded, dilated line; output o's taps at
    o * stride + k * rhs_dilate for k < w."""
    last = (n_in - 1) * dilate
    total = 0
    for o in range(n_out):
        start = o * stride - lo  # tap k reads line position start + k * rhs_dilate
        if rhs_dilate == 1:  # multiples of `dilate` in [start, start + w - 1], within [0, last]
            a, b = max(start, 0), min(start + w - 1, last)
            total += max(0, b // dilate - -(-a // dilate) + 1) if a <= b else 0
        else:
            pos = (start + k * rhs_dilate for k in range(w))
            total += sum(1 for x in pos if 0 <= x <= last and x % dilate == 0)
    return total


def _balanced(text: str, start: int, stop: str) -> int:
    """Index of the first `stop` character at bracket depth 0 from `start` (len if none)."""
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if depth == 0 and ch == stop:
            return i
        depth += ch in "([{"
        depth -= ch in ")]}"
    return len(text)


def _instruction(line: str) -> tuple[str, str, str, str, str] | None:
    """(name, shape, opcode, operands, attributes) of one HLO instruction line."""
    if (m := _NAME.match(line)) is None:
        return None
    rest = line[m.end() :]
    cut = _balanced(rest, 0, " ")
    shape, rest = rest[:cut], rest[cut + 1 :]
    if (op := _OP.match(rest)) is None:
        return None
    close = _balanced(rest, op.end(), ")")
    return m.group(1), shape, op.group(1), rest[op.end() : close], rest[close + 1 :]


def _depth(line: str) -> int:
    """Brackets a line leaves open."""
    opened = line.count("(") + line.count("[") + line.count("{")
    return opened - line.count(")") - line.count("]") - line.count("}")


def _lines(text: str):
    """The text's lines, an instruction broken over several lines joined into one (a custom
    call's frontend attributes are: `kernel_metadata={` then its JSON on the next line)."""
    pending, depth = None, 0
    for line in text.splitlines():
        if pending is not None and (_NAME.match(line) or _HEADER.match(line)):
            yield pending  # a malformed break: give up joining
            pending = None
        if pending is not None:
            pending, depth = pending + line, depth + _depth(line)
            if depth <= 0:
                yield pending
                pending = None
        elif _NAME.match(line) and (depth := _depth(line)) > 0:
            pending = line
        else:
            yield line
    if pending is not None:
        yield pending


def _parse(text: str):
    comps: dict[str, list[tuple]] = {}
    consts: dict[str, list[int]] = {}
    current = None
    for line in _lines(text):
        if (h := _HEADER.match(line)) is not None:
            current = comps.setdefault(h.group(1), [])
            ints = consts.setdefault(h.group(1), [])
            if line.startswith("ENTRY"):
                comps["__entry__"] = [("entry", h.group(1))]
            continue
        if current is not None and (instr := _instruction(line)) is not None:
            current.append(instr)
            ints.extend(int(c) for c in _CONST.findall(line))
    return comps, consts


def _operand_names(operands: str) -> list[str]:
    return re.findall(r"%([\w.\-]+)", operands)


def _param_reads(name: str, comps: dict[str, list[tuple]], memo: dict) -> dict[int, int]:
    """Bytes fused computation `name` reads of each parameter (by index) that it only
    slices: the slices' results (through bitcasts and nested fusions), not the whole operand.
    A layer scan's body slices its layer out of the stacked weights and KV cache this way,
    and XLA's cost analysis counts each such operand at its full, all-layers size."""
    if name in memo:
        return memo[name]
    memo[name] = {}  # a computation does not call itself; guards a malformed text
    body = comps.get(name, [])
    users: dict[str, list[tuple]] = {}
    for instr in body:
        for n in _operand_names(instr[3]):
            users.setdefault(n, []).append(instr)

    root = body[-1][0] if body else None

    def sliced(param: str) -> int | None:
        if param == root:  # returned whole (e.g. through bitcasts)
            return None
        total = 0
        for uname, ushape, uop, uoperands, uattrs in users.get(param, []):
            args = _operand_names(uoperands)
            callee = _CALLS_RE.get("calls", uattrs)
            if uop == "bitcast":
                inner = sliced(uname)
            elif uop in _SLICES and args[:1] == [param]:
                inner = _size(ushape)[1]
            elif uop == "fusion" and callee is not None:
                nested = _param_reads(callee, comps, memo)
                parts = [nested.get(i) for i, a in enumerate(args) if a == param]
                inner = None if None in parts else sum(parts)
            else:
                inner = None
            if inner is None:
                return None
            total += inner
        return total

    out = {}
    for pname, _, op, operands, _ in body:
        if op == "parameter" and operands.strip().isdigit():
            read = sliced(pname)
            if read is not None:
                out[int(operands)] = read
    memo[name] = out
    return out


def _step(comps: dict[str, list[tuple]], cond: str | None, body: str) -> int:
    """What a loop's body adds to the counter its condition compares (1 if not found):
    the condition's compared get-tuple-element index, the body's ROOT tuple element there,
    an add of a constant."""
    by_name = {c: {i[0]: i for i in comps.get(c, [])} for c in (cond, body)}
    compare = next((i for i in comps.get(cond, []) if i[2] == "compare"), None)
    if compare is None or not comps.get(body):
        return 1
    read = [by_name[cond].get(n) for n in _operand_names(compare[3])]
    index = next((_INDEX.search(i[4]) for i in read if i and i[2] == "get-tuple-element"), None)
    root = comps[body][-1]
    names = _operand_names(root[3])
    if index is None or root[2] != "tuple" or int(index.group(1)) >= len(names):
        return 1
    update = by_name[body].get(names[int(index.group(1))])
    if update is None or update[2] != "add":
        return 1
    added = [by_name[body].get(n) for n in _operand_names(update[3])]
    steps = [int(i[3]) for i in added if i and i[2] == "constant" and i[3].isdigit()]
    return max(steps[0], 1) if steps else 1


@dataclasses.dataclass(frozen=True)
class _Cost:
    flops: float = 0.0  # dot and convolution FLOPs
    kernel_flops: float = 0.0  # of the attention kernels (sqjax/plan/kernels.py)
    bytes: float = 0.0

    def __add__(self, o: _Cost) -> _Cost:
        return _Cost(self.flops + o.flops, self.kernel_flops + o.kernel_flops, self.bytes + o.bytes)

    def __mul__(self, k: float) -> _Cost:
        return _Cost(self.flops * k, self.kernel_flops * k, self.bytes * k)


def _heaviest(branches: list[_Cost]) -> _Cost:
    """A conditional runs one branch: the FLOPs of the one with most, the bytes of the one
    with most (XLA's cost analysis takes each figure's maximum over the branches too)."""
    if not branches:
        return _Cost()
    flops = max(branches, key=lambda c: c.flops + c.kernel_flops)
    return _Cost(flops.flops, flops.kernel_flops, max(c.bytes for c in branches))


def _own_cost(name, body, fused, in_place, reads, found: set[str]) -> _Cost:
    """A computation's own FLOPs and bytes, without those of the computations it calls."""
    shapes = {n: s for n, s, *_ in body}
    cost = _Cost()
    for iname, out, op, operands, attrs in body:
        if op in ("dot", "convolution"):
            cost += _Cost(flops=_dot_flops(out, operands, attrs, shapes, op))
        if name in fused or op in _FREE:
            continue
        names = _operand_names(operands)
        sizes = [_size(shapes[n])[1] for n in names if n in shapes]
        callee = _CALLS_RE.get("calls", attrs)
        if op == "custom-call" and 'custom_call_target="tpu_custom_call"' in attrs:
            found.add(kernels.family(iname, attrs))
            arrays = [(tuple(_dims(shapes[n])), _size(shapes[n])[1]) for n in names if n in shapes]
            results = [
                (tuple(int(d) for d in dims.split(",") if d), _size(f"{t}[{dims}]")[1])
                for t, dims in _SHAPE.findall(out)
            ]
            if (k := kernels.cost(iname, attrs, arrays, results)) is not None:
                cost += _Cost(kernel_flops=k.flops, bytes=k.bytes)
                continue
        if op in _IN_PLACE or callee in in_place:
            # an in-place update reads and writes its update, not the whole buffer
            b = 2 * (sum(sizes) - max(sizes, default=0))
        elif op in _SLICES:
            b = 2 * _size(out)[1]  # a slice reads what it returns, not its whole operand
        else:
            # a fusion reads only the slices it takes of an operand it slices
            sliced = reads.get(callee, {}) if op == "fusion" else {}
            read = [sliced.get(i, _size(shapes[n])[1]) for i, n in enumerate(names) if n in shapes]
            b = _size(out)[1] + sum(read)
        cost += _Cost(bytes=b)
    return cost


def loop_scale(text: str) -> LoopScale:
    comps, consts = _parse(text)
    entry = comps.pop("__entry__", [(None, None)])[0][1]
    in_place = {name for name, body in comps.items() if body and body[-1][2] in _IN_PLACE}
    memo: dict[str, dict[int, int]] = {}
    reads = {name: _param_reads(name, comps, memo) for name in comps}
    fused = {
        c
        for body in comps.values()
        for i in body
        if i[2] == "fusion"
        for c in [_CALLS_RE.get("calls", i[4])]
        if c
    }
    found: set[str] = set()
    own = {
        name: _own_cost(name, body, fused, in_place, reads, found) for name, body in comps.items()
    }
    trips: list[int] = []
    totals: dict[tuple[str, bool], _Cost] = {}

    def total(name: str, scaled: bool) -> _Cost:
        """The computation's cost with its callees', loop bodies times their trip counts
        (`scaled`) or once (as XLA's cost analysis counts them)."""
        if (name, scaled) in totals or name not in comps:
            return totals.get((name, scaled), _Cost())
        totals[(name, scaled)] = _Cost()  # a computation does not call itself
        cost = own[name]
        for _, _, op, _, attrs in comps[name]:
            calls = dict(_CALLS.findall(attrs))
            if op == "while":
                bound = max(consts.get(calls.get("condition"), []) or [1])
                trip = -(-bound // _step(comps, calls.get("condition"), calls["body"]))
                if scaled:
                    trips.append(trip)
                cost += total(calls["body"], scaled) * (trip if scaled else 1)
                continue
            for callee in calls.values():
                cost += total(callee, scaled)
            for branch in _BRANCHES.findall(attrs):
                cost += _heaviest([total(c, scaled) for c in re.findall(r"%([\w.\-]+)", branch)])
        totals[(name, scaled)] = cost
        return cost

    once = total(entry, False) if entry is not None else _Cost()
    weighted = total(entry, True) if entry is not None else _Cost()
    return LoopScale(
        weighted.flops / once.flops if once.flops else 1.0,
        weighted.bytes / once.bytes if once.bytes else 1.0,
        tuple(trips),
        weighted.bytes,
        weighted.kernel_flops,
        tuple(sorted(found)),
    )
