"""Where a jitted step's time goes: a `jax.profiler` trace of XLA CPU op events, joined to the
compiled HLO's metadata.

Each event of the trace names the HLO instruction it ran (`hlo_op`). The instruction's
`op_name` says the phase: `transpose(jvp(...))` is the backward pass, `jvp(...)` the forward
pass, anything else (optax's update, clipping, the gradient scaling) the optimizer. Its stack
frames say the component: the innermost sqjax function that names one (LM head, attention,
MLP, norms, embedding + RoPE), else the rest. Events of control-flow instructions (while,
conditional, call) enclose their bodies' events and are left out so no time counts twice.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import re
from collections import defaultdict

COMPONENTS = (  # first match wins, tested on the sqjax frames from the innermost out
    ("lm_head", ("head_logprobs", "token_logprobs", "Decoder.logits")),
    ("attention", ("Attention.", "_gqa", "_attend", "chunked_gqa", "attention_mask")),
    ("mlp", ("MLP.", "swiglu", "_swiglu_")),  # the backward's frames are swiglu's own
    ("norm", ("RMSNorm.",)),
    ("embed_rope", ("Decoder._embed", "rope_tables", "apply_rope")),
)
CONTROL_FLOW = ("while", "conditional", "call")
_INSTR = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = .*?\s([a-z][\w\-]*)\(")
_COMP = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$")


def parse_hlo(text: str) -> tuple[dict, dict]:
    """(instructions: name -> {opcode, op_name, frame, calls, matmul}, frames: id ->
    [(file, function)]) from `compiled.as_text()`, frames listed innermost first."""
    sections: dict[str, dict[int, str]] = defaultdict(dict)
    instrs: dict[str, dict] = {}
    comp_ops: dict[str, set] = defaultdict(set)
    section, comp = None, None
    for line in text.splitlines():
        if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
            section = line
            continue
        if section and re.match(r"^\d+ ", line):
            key, value = line.split(" ", 1)
            sections[section][int(key)] = value
            continue
        section = None
        if m := _COMP.match(line):
            comp = m.group(1)
        elif m := _INSTR.match(line):
            meta = re.search(r'op_name="([^"]*)"', line)
            frame = re.search(r"stack_frame_id=(\d+)", line)
            calls = re.search(r"(?:calls|body)=%?([\w.\-]+)", line)
            instrs[m.group(1)] = {
                "opcode": m.group(2),
                "op_name": meta.group(1) if meta else "",
                "frame": int(frame.group(1)) if frame else None,
                "calls": calls.group(1) if calls else None,
            }
            comp_ops[comp].add(m.group(2))
    for ins in instrs.values():
        ins["matmul"] = ins["opcode"] in ("dot", "convolution") or bool(
            ins["calls"] and comp_ops[ins["calls"]] & {"dot", "convolution"}
        )
    return instrs, _frames(sections)


def _frames(sections: dict[str, dict[int, str]]) -> dict[int, list[tuple[str, str]]]:
    def field(text: str, key: str) -> int:
        return int(re.search(rf"{key}=(\d+)", text).group(1))

    files = {k: v.strip('"') for k, v in sections["FileNames"].items()}
    functions = {k: v.strip('"') for k, v in sections["FunctionNames"].items()}
    locs = {
        k: (files[field(v, "file_name_id")], functions[field(v, "function_name_id")])
        for k, v in sections["FileLocations"].items()
    }
    out = {}
    for start in sections["StackFrames"]:
        fid, chain, seen = start, [], set()
        while fid and fid not in seen:
            seen.add(fid)
            v = sections["StackFrames"][fid]
            chain.append(locs[field(v, "file_location_id")])
            fid = field(v, "parent_frame_id")
        out[start] = chain
    return out


def component(chain: list[tuple[str, str]]) -> str:
    """The component of an op from its stack (innermost first): its sqjax functions, by the
    qualified names the HLO records, not by source lines (a program from the persistent cache
    names the files of the process that compiled it, which may have changed since)."""
    if any(f.endswith(os.path.join("sqjax", "models", "attention.py")) for f, _ in chain):
        return "attention"  # the blockwise attention's own module
    names = [fn.replace("<locals>.", "") for f, fn in chain if f"{os.sep}sqjax{os.sep}" in f]
    for name in names:
        for label, prefixes in COMPONENTS:
            if any(name.startswith(p) for p in prefixes):
                return label
    return "other"


def phase(op_name: str, chain: list[tuple[str, str]]) -> str:
    """backward (transposed), forward (differentiated, or model code such as masks and RoPE
    tables that need no derivative), else optimizer (the update, clipping, scaling)."""
    if "transpose(" in op_name:
        return "backward"
    model = f"{os.sep}sqjax{os.sep}models{os.sep}"
    if "jvp(" in op_name or any(model in f for f, _ in chain):
        return "forward"
    return "optimizer"


def load_events(trace_dir: str, module_prefix: str) -> list[dict]:
    paths = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
    if not paths:
        raise FileNotFoundError(f"no *.trace.json.gz under {trace_dir}: was the trace written?")
    with gzip.open(paths[0]) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    return [
        e
        for e in events
        if e.get("ph") == "X"
        and str(e.get("args", {}).get("hlo_module", "")).startswith(module_prefix)
        and "hlo_op" in e.get("args", {})
    ]


def summarize_trace(trace_dir: str, hlo_text: str, module_prefix: str, steps: int) -> dict:
    """Milliseconds per step by phase, by component, by both, the matmul share and the
    slowest instructions, from a trace of `steps` calls of one jitted function."""
    instrs, frames = parse_hlo(hlo_text)
    by_phase, by_comp, both = defaultdict(float), defaultdict(float), defaultdict(float)
    by_op, matmul, unknown, where = defaultdict(float), 0.0, 0.0, {}
    for e in load_events(trace_dir, module_prefix):
        ins = instrs.get(e["args"]["hlo_op"])
        ms = e["dur"] / 1e3 / steps
        if ins is None:
            unknown += ms
            continue
        if ins["opcode"] in CONTROL_FLOW:
            continue
        chain = frames.get(ins["frame"], [])
        p, c = phase(ins["op_name"], chain), component(chain)
        by_phase[p] += ms
        by_comp[c] += ms
        both[f"{p}/{c}"] += ms
        by_op[e["args"]["hlo_op"]] += ms
        where[e["args"]["hlo_op"]] = f"{p}/{c}: {ins['op_name'].rsplit('/', 1)[-1]}"
        matmul += ms if ins["matmul"] else 0.0
    total = sum(by_phase.values())
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[:8]

    def rounded(d):
        return {k: round(v, 1) for k, v in sorted(d.items(), key=lambda kv: -kv[1])}

    return {
        "method": "jax.profiler trace; XLA op events joined to HLO op_name + stack frames",
        "ops_ms": round(total, 1),
        "unattributed_ms": round(unknown, 1),
        "matmul_ms": round(matmul, 1),
        "by_phase_ms": rounded(by_phase),
        "by_component_ms": rounded(by_comp),
        "by_phase_component_ms": rounded(both),
        "top_ops_ms": [(name, round(ms, 1), where[name]) for name, ms in top],
    }


KINDS = (  # an op's kind from its event name or HLO op, first match wins
    ("matmul", ("gemm", "cublas", "cutlass", "matmul", "dot", "triton_gemm", "sm90_xmma")),
    ("attention", ("mha", "flash", "splash", "attention", "cudnn", "fmha")),
    ("copy", ("memcpy", "memset", "copy", "dynamic-update-slice", "dynamic_update_slice")),
)


def kind(name: str) -> str:
    low = name.lower()
    return next((k for k, words in KINDS if any(w in low for w in words)), "other")


def device_summary(trace_dir: str, top: int = 12) -> dict:
    """Every device op event of a trace (any module): busy milliseconds, by kind, and the
    slowest ops; the caller sets them against its wall time (the rest is the host)."""
    by_op, by_kind, count = defaultdict(float), defaultdict(float), defaultdict(int)
    for e in load_events(trace_dir, ""):
        name = str(e["args"]["hlo_op"])
        ms = e["dur"] / 1e3
        by_op[name] += ms
        by_kind[kind(f"{e.get('name', '')} {name}")] += ms
        count[name] += 1
    slowest = sorted(by_op.items(), key=lambda kv: -kv[1])[:top]
    return {
        "method": "jax.profiler trace; device op events summed by HLO op",
        "busy_ms": round(sum(by_op.values()), 1),
        "by_kind_ms": {k: round(v, 1) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
        "top_ops_ms": [(n, round(ms, 2), count[n]) for n, ms in slowest],
    }
