"""Continuous batching on the host around the jitted insert and decode programs.

A fixed number of slots (batch rows) share a cache of fixed length. Waiting samples fill free
slots through `insert` (each distinct prompt among them is prefilled once; its n samples copy
the cache row) or, when a slot already holds their prompt, through `clone` (a copy, no
prefill); `decode` then runs a chunk of steps for all live rows in one device call, and
the host collects the new tokens, applies stop strings and frees finished slots.
Prompt lengths, cache lengths and the number of distinct prompts inserted are bucketed so few
programs compile; an insert always writes all B rows (unused ones dropped). Once no request
waits, the drain moves the live rows into a smaller batch (powers of two, down to 1/8 of the
slots) when enough steps may be left to repay the new batch's programs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding

from sqjax.errors import SqjaxError
from sqjax.models import cache as cache_layout
from sqjax.models import kernels
from sqjax.models.cache import init_cache
from sqjax.progress import Progress
from sqjax.sampling import steps as S
from sqjax.sampling.filters import RowSampling
from sqjax.sampling.params import SamplingParams
from sqjax.sampling.stops import decode as detok
from sqjax.sampling.stops import find_stop
from sqjax.sharding import BATCH, SAMPLE_RULES, batch_sharding, on_mesh, spec_for

CACHE_AXES = cache_layout.AXES  # by Cache field; other slot arrays: rows only
SPAN = 128  # decode attends the cache's first multiple of SPAN slots that holds every live row
# The drain moves rows only while the longest live sample may still run this many steps: a
# smaller batch is a new decode program per span (SmolLM2 on 2 CPU cores: ~3 s to compile,
# 100-150 steps saved at 32 -> 8 rows), which a short generation's last steps never repay.
DRAIN_MIN_STEPS = 128


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def bucket(n: int, minimum: int = 64) -> int:
    """Length bucket: powers of two from `minimum` up to 1024, then multiples of 512."""
    if n <= 1024:
        return max(minimum, 1 << max(n - 1, 0).bit_length())
    return round_up(n, 512)


def pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


@dataclasses.dataclass
class Request:
    """One prompt to complete; stop_ids already include the EOS ids unless ignore_eos."""

    prompt_ids: list[int]
    params: SamplingParams
    stop_ids: tuple[int, ...]
    seed: int


@dataclasses.dataclass
class Sample:
    request: int
    index: int
    token_ids: list[int] = dataclasses.field(default_factory=list)
    logprobs: list[float] = dataclasses.field(default_factory=list)
    checked: int = 0
    finish_reason: str | None = None
    text: str | None = None


class Engine:
    """Runs requests through `slots` rows with continuous batching; see module docstring."""

    def __init__(
        self,
        llm,
        *,
        max_batch: int = 32,
        chunk: int = 16,
        drain_min_steps: int = DRAIN_MIN_STEPS,
        progress: bool = False,
    ):
        """Runs on the weights, mesh and compiled programs of `llm` (a sqjax.LLM handle)."""
        self.llm, self.graphdef, self.weights = llm, llm.graphdef, llm.weights
        self.config, self.dtype, self.mesh = llm.config, llm.dtype, llm.mesh
        self.tokenizer, self.chunk, self.progress = llm.tokenizer, chunk, progress
        self.drain_min_steps = drain_min_steps
        self.max_batch = round_up(max_batch, self._rows())
        self.stats: dict[str, float] = {}

    # ----- device programs -----
    def _slot_shardings(self, slots: S.Slots):
        if self.mesh is None:
            return None

        def one(path, leaf):
            field = next((k.name for k in path if getattr(k, "name", None) in CACHE_AXES), None)
            names = CACHE_AXES.get(field, ("batch",) + (None,) * (leaf.ndim - 1))
            names = names[len(names) - leaf.ndim :]  # a per-layer array has no layers axis
            return NamedSharding(self.mesh, spec_for(names, leaf.shape, self.mesh, SAMPLE_RULES))

        return jax.tree_util.tree_map_with_path(one, slots)

    def _programs(self, slots: S.Slots):
        return self.llm.sampler_programs(self._slot_shardings(slots))

    def _init_slots(self, B: int, size: int, E: int) -> S.Slots:
        cfg = self.config
        per_layer = self.llm.layout == "layers"
        cache = init_cache(
            cfg.num_layers, B, size, cfg.num_kv_heads, cfg.head_dim, self.dtype, per_layer
        )

        def zi():  # a distinct buffer per field: every field is donated
            return np.zeros((B,), np.int32)

        def zf():
            return np.zeros((B,), np.float32)

        slots = S.Slots(
            cache=cache,
            token_B=zi(),
            pos_B=zi(),
            count_B=zi(),
            done_B=np.ones((B,), bool),
            rows=RowSampling(zf(), zi(), zf() + 1, zf()),
            limits=S.Limits(
                zi(), zi() + 1, np.full((B, E), -1, np.int32), np.zeros((B, 2), np.uint32)
            ),
        )
        slots = jax.tree.map(jnp.array, slots)
        shard = self._slot_shardings(slots)
        return slots if shard is None else jax.device_put(slots, shard)

    # ----- host loop -----
    def run(self, requests: list[Request]) -> list[list[Sample]]:
        """Completes every request; returns its samples (n per request) in order."""
        t0, traces0 = time.perf_counter(), sum(S.TRACES.values())
        need = max(len(r.prompt_ids) + r.params.max_tokens for r in requests)
        if need > self.config.max_position_embeddings:
            raise SqjaxError(
                f"prompt + max_tokens = {need} exceeds the model's max_position_embeddings="
                f"{self.config.max_position_embeddings}; lower max_tokens or shorten the prompt"
            )
        total = sum(r.params.n for r in requests)
        B = min(self.max_batch, round_up(pow2(total), self._rows()))
        size = bucket(need)
        E = pow2(max(4, max(len(r.stop_ids) for r in requests)))
        slots = self._init_slots(B, size, E)
        programs = self._programs(slots)
        held: list[tuple[int, ...] | None] = [None] * B  # the prompt in each slot's cache
        logprobs = any(r.params.logprobs is not None for r in requests)
        pending = deque(Sample(i, j) for i, r in enumerate(requests) for j in range(r.params.n))
        out = [[None] * r.params.n for r in requests]
        live: dict[int, Sample] = {}
        free = list(range(B))
        counts = {
            "generated_tokens": 0,
            "prefill_tokens": 0,
            "decode_calls": 0,
            "inserts": 0,
            "clones": 0,
            "drain_resizes": 0,
            "smallest_batch": B,
            "refill_seconds": 0.0,  # wall time of each phase (compiles included)
            "drain_seconds": 0.0,
            "decode_seconds": 0.0,
        }
        clock = _Clock(counts)
        bar = Progress(total, "generate", unit="sample") if self.progress else None
        while pending or live:
            finished: list[int] = []
            if free and pending:
                take = [pending.popleft() for _ in range(min(len(free), len(pending)))]
                placed = [(free.pop(0), smp) for smp in take]
                with clock("refill_seconds"):
                    slots = self._refill(programs, slots, placed, requests, counts, held)
                    jax.block_until_ready(slots.token_B)
                live.update(placed)
            if live and not pending:
                with clock("drain_seconds"):
                    shrunk, live = self._drain(slots, live, requests, counts)
                    jax.block_until_ready(shrunk.token_B)
                if shrunk is not slots:  # a new batch size: its programs
                    slots, programs = shrunk, self._programs(shrunk)
            if live:
                clock.start("decode_seconds")
                decode_fn = programs[0]
                kill_B = np.array([b not in live for b in range(slots.token_B.shape[0])])
                span = self._span(live, requests, size)
                slots, tok_BT, lp_BT = decode_fn(
                    self.graphdef,
                    self.weights,
                    slots,
                    kill_B,
                    steps=self.chunk,
                    span=span,
                    with_logprobs=logprobs,
                )
                counts["decode_calls"] += 1
                tok_BT, lp_BT, done_B = jax.device_get((tok_BT, lp_BT, slots.done_B))
                clock.stop()
                for slot, smp in live.items():
                    new = tok_BT[slot][tok_BT[slot] >= 0]
                    smp.token_ids.extend(int(t) for t in new)
                    smp.logprobs.extend(float(x) for x in lp_BT[slot][: len(new)])
                    counts["generated_tokens"] += len(new)
                    if self._finish(smp, requests[smp.request], bool(done_B[slot])):
                        finished.append(slot)
            for slot in finished:
                smp = live.pop(slot)
                out[smp.request][smp.index] = smp
                free.append(slot)
                if bar:
                    bar.update(1, len(smp.token_ids))
            free.sort()
        if bar:
            bar.close()
        counts.update(
            compiles=sum(S.TRACES.values()) - traces0,
            seconds=time.perf_counter() - t0,
            batch=B,
            cache_length=size,
        )
        self.stats = counts
        return out

    def _rows(self) -> int:
        return 1 if self.mesh is None else int(np.prod([self.mesh.shape[a] for a in BATCH]))

    def _span(self, live: dict[int, Sample], requests: list[Request], size: int) -> int:
        """Cache slots the next decode call attends: every live row's prompt and tokens so
        far plus the chunk's new ones, rounded up to a multiple of SPAN."""
        end = max(len(requests[x.request].prompt_ids) + len(x.token_ids) for x in live.values())
        return min(size, round_up(end + self.chunk, SPAN))

    def _drain(self, slots, live, requests, counts):
        """Once no request waits, moves the live rows into the smallest batch that holds them
        (a power of two, at least 1/8 of the slots), the last long samples no longer paying
        for idle rows; only while one of them may still run `drain_min_steps` steps. The
        cache keeps its size (decode reads just the span). Returns the slots and the live
        samples by their new rows."""
        B = slots.token_B.shape[0]
        floor = max(self._rows(), self.max_batch // 8)
        R = min(B, max(floor, round_up(pow2(len(live)), self._rows())))
        left = max(requests[x.request].params.max_tokens - len(x.token_ids) for x in live.values())
        if R == B or left < self.drain_min_steps:
            return slots, live
        order = sorted(live)
        rows_R = np.array(order + order[:1] * (R - len(order)), np.int32)  # extra rows: killed
        slots = _take_rows(slots, rows_R)
        if self.mesh is not None:
            slots = jax.device_put(slots, self._slot_shardings(slots))
        counts["drain_resizes"] += 1
        counts["smallest_batch"] = min(counts["smallest_batch"], R)
        return slots, {r: live[b] for r, b in enumerate(order)}

    def _finish(self, smp: Sample, req: Request, device_done: bool) -> bool:
        """Applies stop strings and, when the sample is over, sets its reason and text."""
        p = req.params
        hit = find_stop(self.tokenizer, smp.token_ids, p.stop_strings, smp.checked, p.min_tokens)
        smp.checked = len(smp.token_ids)
        if hit is not None:
            n, smp.text = hit
            del smp.token_ids[n:], smp.logprobs[n:]
            smp.finish_reason = "stop"
            return True
        if not device_done:
            return False
        ids = smp.token_ids
        by_id = ids[-1] in req.stop_ids
        smp.finish_reason = "stop" if by_id else "length"
        smp.text = detok(self.tokenizer, ids[:-1] if by_id else ids)
        return True

    def _refill(self, programs, slots, placed, requests, counts, held):
        """Starts the samples of `placed` (slot, sample) pairs. A sample whose prompt a slot's
        cache already holds (a sibling sample's, live or finished) copies it; the other
        prompts are prefilled, each once. held[slot] is the prompt in each slot's cache.

        A held prompt's slots are intact: a row writes only past its prompt, and while
        samples wait no row stays dead through a decode call (free slots are refilled at
        once), so none is clamped into its prompt's slots by a span shorter than the prompt.
        """
        _, insert_fn, clone_fn = programs
        holder: dict[tuple[int, ...], int] = {}
        for slot, key in enumerate(held):
            if key is not None:
                holder.setdefault(key, slot)
        keys = [tuple(requests[smp.request].prompt_ids) for _, smp in placed]
        copies = [(pl, holder[k]) for pl, k in zip(placed, keys) if k in holder]
        fresh = [pl for pl, k in zip(placed, keys) if k not in holder]
        B = len(held)
        if copies:  # before the inserts: a source slot may be refilled below
            M = min(B, max(4, pow2(len(copies))))  # few programs; a row copy is cheap
            rows = [pl for pl, _ in copies]
            E = slots.limits.stop_BE.shape[1]
            new = self._new_rows(rows, [src for _, src in copies], requests, B, M, E)
            ctx_M, last_M = _ctx_last([requests[smp.request].prompt_ids for _, smp in rows], M)
            length = min(slots.cache.size, bucket(int(ctx_M.max())))
            slots = clone_fn(slots, ctx_M, last_M, new, length=length)
            counts["clones"] += len(copies)
        if fresh:
            slots = self._insert(insert_fn, slots, fresh, requests, counts, B)
        for (slot, _), key in zip(placed, keys):
            held[slot] = key
        return slots

    def _insert(self, insert_fn, slots, placed, requests, counts, B):
        """Prefills the prompts of `placed` (slot, sample) pairs into their slots."""
        uniq: dict[tuple[int, ...], int] = {}
        for _, smp in placed:
            uniq.setdefault(tuple(requests[smp.request].prompt_ids), len(uniq))
        # the rows inserted are always the B slots (unused ones dropped): only the count of
        # distinct prompts and their length bucket select an insert program
        # distinct prompts split over the data rows: each data replica prefills its share
        U = min(round_up(pow2(len(uniq)), self._rows()), B)
        L = bucket(max(len(k) for k in uniq) - 1)
        ids_UL = np.zeros((U, L), np.int32)
        for key, u in uniq.items():
            ids_UL[u, : len(key) - 1] = key[:-1]
        ctx_U, last_U = _ctx_last(list(uniq), U)  # dicts keep insertion order: key u is u-th
        if self.mesh is not None:
            ids_UL, ctx_U, last_U = (
                jax.device_put(a, batch_sharding(self.mesh, a.ndim))
                for a in (ids_UL, ctx_U, last_U)
            )
        src = [uniq[tuple(requests[smp.request].prompt_ids)] for _, smp in placed]
        new = self._new_rows(placed, src, requests, B, B, slots.limits.stop_BE.shape[1])
        slots = insert_fn(self.graphdef, self.weights, slots, ids_UL, ctx_U, last_U, new)
        kernels.note("prefill", self.config, L, False, self.mesh)
        counts["inserts"] += 1
        counts["prefill_tokens"] += sum(len(k) - 1 for k in uniq)
        return slots

    @staticmethod
    def _new_rows(placed, src, requests, B: int, M: int, E: int) -> S.NewRows:
        """M rows for `placed` (slot, sample) pairs copying src, with E stop-id columns; rows
        past them go to slot B (dropped)."""
        stop_ME = np.full((M, E), -1, np.int32)
        names = ("src", "slot", "t", "k", "p", "mp", "mn", "mx", "seed", "req", "idx")
        cols = {k: [] for k in names}
        for m in range(M):
            (slot, smp), s = (placed[m], src[m]) if m < len(placed) else ((B, placed[0][1]), src[0])
            req = requests[smp.request]
            p = req.params
            stop_ME[m, : len(req.stop_ids)] = req.stop_ids
            values = (
                s,
                slot,
                p.temperature,
                p.top_k,
                p.top_p,
                p.min_p,
                p.min_tokens,
                p.max_tokens,
                req.seed % 2**32,
                smp.request,
                smp.index,
            )
            for key, v in zip(cols, values):
                cols[key].append(v)
        i32 = functools.partial(np.asarray, dtype=np.int32)
        f32 = functools.partial(np.asarray, dtype=np.float32)
        u32 = functools.partial(np.asarray, dtype=np.uint32)
        return S.NewRows(
            src_M=i32(cols["src"]),
            slot_M=i32(cols["slot"]),
            rows=RowSampling(f32(cols["t"]), i32(cols["k"]), f32(cols["p"]), f32(cols["mp"])),
            min_tokens_M=i32(cols["mn"]),
            max_tokens_M=i32(cols["mx"]),
            stop_ME=stop_ME,
            seed_M=u32(cols["seed"]),
            request_M=u32(cols["req"]),
            index_M=u32(cols["idx"]),
        )


class _Clock:
    """Adds the wall time of phases to counters: `with clock(key):` or start(key)/stop()."""

    def __init__(self, counts: dict):
        self.counts, self.key, self.t = counts, None, 0.0

    def start(self, key: str) -> None:
        self.key, self.t = key, time.perf_counter()

    def stop(self) -> None:
        self.counts[self.key] += time.perf_counter() - self.t

    @contextlib.contextmanager
    def __call__(self, key: str):
        self.start(key)
        yield
        self.stop()


def _ctx_last(prompts, M: int):
    """For up to M prompts: the context length (all but the last token) and the last token,
    which is each new row's first decode input; rows past the prompts are zeros."""
    ctx_M = np.zeros((M,), np.int32)
    last_M = np.zeros((M,), np.int32)
    for m, ids in enumerate(prompts):
        ctx_M[m], last_M[m] = len(ids) - 1, ids[-1]
    return ctx_M, last_M


_take_rows = jax.jit(S.take_rows)


def jit_programs(shard) -> tuple:
    """(decode, insert, clone) jitted with the slots' shardings `shard` (None: unsharded).

    The same jitted functions for equal shardings, so every handle over a model of the same
    architecture and mesh reuses the programs compiled for the first one (a pipeline
    rebuilds handles after each training stage, and the QFT probe samples from the base and
    the trained model): the graphdef is a static argument, the weights a traced one."""
    if shard is None:
        return _jit_programs(None)
    leaves, treedef = jax.tree_util.tree_flatten(shard)
    return _jit_programs((treedef, tuple(leaves)))


def _traced_on(mesh, fn):
    """`fn` traced under `mesh` (sqjax.sharding.on_mesh): the prefill's attention kernel
    then runs per shard."""

    @functools.wraps(fn)
    def traced(*args):
        with on_mesh(mesh):
            return fn(*args)

    return traced


@functools.cache
def _jit_programs(key) -> tuple:
    shard = None if key is None else jax.tree_util.tree_unflatten(key[0], key[1])
    kw = {} if shard is None else {"out_shardings": (shard, None, None)}
    decode_fn = jax.jit(
        S.decode,
        static_argnames=("steps", "span", "with_logprobs"),
        static_argnums=(0,),
        donate_argnums=(2,),
        **kw,
    )
    kw = {} if shard is None else {"out_shardings": shard}
    mesh = None if shard is None else jax.tree.leaves(shard)[0].mesh
    insert_fn = jax.jit(_traced_on(mesh, S.insert), static_argnums=(0,), donate_argnums=(2,), **kw)
    clone_fn = jax.jit(S.clone, static_argnames=("length",), donate_argnums=(0,), **kw)
    return decode_fn, insert_fn, clone_fn
