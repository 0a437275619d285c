"""`LLM`: one long-lived handle per model for sampling and scoring (vLLM's shape).

The handle owns the model's weights, placed once on its mesh (weights over `tensor`, rows
over `data` x `fsdp`: SAMPLE_RULES), and its tokenizer. Every call reuses them: a second
`generate` with shapes seen before compiles nothing and moves no weight. Compiled programs
are shared by every handle of the same architecture and mesh (a trained model samples with
the programs its base model compiled). Stages share one handle per model and process
(sqjax.pipeline.models).

Prompts are strings or token-id lists. A string is tokenized exactly as given with
`tokenizer.encode(text)`: no chat template is applied, and a BOS token appears only if the
tokenizer adds one by itself (apply a chat template beforehand when you want one). EOS ids
default to the model config's `eos_token_ids` plus `tokenizer.eos_token_id`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from sqjax.errors import SqjaxError
from sqjax.models.config import parse_dtype
from sqjax.sampling import scoring
from sqjax.sampling.engine import DRAIN_MIN_STEPS, Engine, Request, jit_programs
from sqjax.sampling.params import SamplingParams
from sqjax.sharding import SAMPLE_RULES, state_shardings


@dataclasses.dataclass
class CompletionOutput:
    """One sample. logprobs: raw log-softmax of each token (None unless requested)."""

    index: int
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" (EOS, stop id or stop string) or "length"
    logprobs: list[float] | None = None
    cumulative_logprob: float | None = None


@dataclasses.dataclass
class Completion:
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]


@dataclasses.dataclass
class CompletionScore:
    """Log-probability of a completion given its prompt (raw model distribution)."""

    sum_logprob: float
    mean_logprob: float
    num_tokens: int


class LLM:
    """Sampling and scoring on one model; see the module docstring.

    `model` is a Decoder or a model path (HF directory, .gguf, asset: value or hub id, loaded
    with `dtype` straight into `mesh`); `tokenizer` a tokenizer, a path, or None (the model
    path's own tokenizer; string prompts then need one). `max_batch` slots decode together,
    `chunk` steps per device call; once no prompt waits, the live rows move to fewer slots
    while one may still run `drain_min_steps` steps (0: always).
    `layout`: "auto" (stacked on TPU, one array set per layer elsewhere), "stacked" or
    "layers". A path loads straight into the layout; a stacked Decoder given for "layers"
    is unstacked, which holds a second copy of its block weights while the handle is built
    (a slice of a stacked array is a new array).
    `attention`, `attention_block`: the self-attention kernel of prefill and scoring and its
    block size (sqjax.models.kernels; None: the model config's own, `auto` and 512).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        mesh: Mesh | None = None,
        dtype: str = "bfloat16",
        param_dtype: str | None = None,
        max_batch: int = 32,
        chunk: int = 16,
        drain_min_steps: int = DRAIN_MIN_STEPS,
        layout: str = "auto",
        attention: str | None = None,
        attention_block: int | None = None,
    ):
        from sqjax.checkpoints.api import load_model, load_tokenizer

        self.layout = _layout(layout)
        if isinstance(model, (str, os.PathLike)):
            path, per_layer = model, self.layout == "layers"
            model = load_model(
                path,
                dtype=dtype,
                param_dtype=param_dtype,
                mesh=mesh,
                per_layer=per_layer,
                attention=attention,
                attention_block=attention_block,
            )
            tokenizer = load_tokenizer(path) if tokenizer is None else tokenizer
        else:
            model = model.with_attention(attention, attention_block)
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = load_tokenizer(tokenizer)
        if self.layout == "layers":
            model = model.unstacked()  # a no-op for a model loaded per layer
        self.graphdef, weights = nnx.split(model)
        # the slots go on the weights' mesh (load_model uses a one-device mesh), or each
        # program would compile twice (fresh slots vs. its own outputs)
        self.mesh = mesh or _mesh_of(weights)
        if self.mesh is not None:  # a no-op for weights loaded onto this mesh
            weights = jax.device_put(weights, state_shardings(weights, self.mesh, SAMPLE_RULES))
        self.weights = weights
        self.config = model.config
        self.dtype = parse_dtype(self.config.dtype)
        self.tokenizer, self.max_batch, self.chunk = tokenizer, max_batch, chunk
        self.drain_min_steps = drain_min_steps
        self.stats: dict[str, float] = {}  # the last generate call's engine counters

    def with_tokenizer(self, tokenizer: Any) -> LLM:
        """The same weights and compiled programs with another tokenizer (another chat
        template, say)."""
        twin = copy.copy(self)
        twin.tokenizer = tokenizer
        return twin

    @property
    def model(self):
        """The Decoder over the handle's weights (no copy)."""
        return nnx.merge(self.graphdef, self.weights)

    def sampler_programs(self, shard) -> tuple:
        """(decode, insert, clone) for slots of these shardings: jitted once per process
        and architecture (sqjax.sampling.engine.jit_programs), compiled once per shape."""
        return jit_programs(shard)

    # ----- sampling -----
    def generate(
        self,
        prompts: Sequence[str | Sequence[int]],
        params: SamplingParams | Sequence[SamplingParams] | None = None,
        *,
        max_batch: int | None = None,
        progress: bool = False,
    ) -> list[Completion]:
        """Samples completions for every prompt with continuous batching over `max_batch`
        slots (default: the handle's). `params` is one SamplingParams or one per prompt."""
        params = params or SamplingParams()
        plist = [params] * len(prompts) if isinstance(params, SamplingParams) else list(params)
        if len(plist) != len(prompts):
            raise SqjaxError(
                f"got {len(plist)} SamplingParams for {len(prompts)} prompts; pass one or one per prompt"
            )
        if not prompts:
            return []
        requests = [self._request(i, p, sp) for i, (p, sp) in enumerate(zip(prompts, plist))]
        engine = Engine(
            self,
            max_batch=max_batch or self.max_batch,
            chunk=self.chunk,
            drain_min_steps=self.drain_min_steps,
            progress=progress,
        )
        samples = engine.run(requests)
        self.stats = engine.stats
        return [
            Completion(
                prompt if isinstance(prompt, str) else None,
                req.prompt_ids,
                [_output(s, req.params.logprobs is not None) for s in smps],
            )
            for prompt, req, smps in zip(prompts, requests, samples)
        ]

    def _request(self, i: int, prompt, p: SamplingParams) -> Request:
        if p.stop_strings and self.tokenizer is None:
            raise SqjaxError(f"prompt {i}: stop strings {p.stop_strings!r} need a tokenizer")
        eos = () if p.ignore_eos else self._eos_ids()
        stop_ids = tuple(dict.fromkeys(eos + tuple(p.stop_token_ids or ())))
        seed = p.seed if p.seed is not None else int.from_bytes(os.urandom(4), "little")
        return Request(self._prompt_ids(prompt, f"prompt {i}"), p, stop_ids, seed)

    def _eos_ids(self) -> tuple[int, ...]:
        ids = list(self.config.eos_token_ids)
        eos = getattr(self.tokenizer, "eos_token_id", None)
        if eos is not None and eos not in ids:
            ids.append(int(eos))
        return tuple(ids)

    def _prompt_ids(self, prompt, where: str) -> list[int]:
        if isinstance(prompt, str):
            if self.tokenizer is None:
                raise SqjaxError(
                    f"{where} is a string but no tokenizer was given; pass a tokenizer or token ids"
                )
            return list(self.tokenizer.encode(prompt))
        ids = [int(t) for t in prompt]
        if not ids:
            raise SqjaxError(f"{where} is empty; every prompt needs at least one token")
        return ids

    # ----- scoring -----
    def score_logprobs(
        self,
        prompts: Sequence[str | Sequence[int]],
        completions: Sequence[str | Sequence[int]],
        *,
        batch_size: int = 16,
    ) -> list[CompletionScore]:
        """Summed and mean log-probs of each completion given its prompt (DPO reference values).

        Strings: the prompt is encoded as in `generate`, the completion with
        add_special_tokens=False, and the two id lists are concatenated (as TRL does).
        """
        if len(prompts) != len(completions):
            raise SqjaxError(
                f"{len(prompts)} prompts but {len(completions)} completions; pass one completion per prompt"
            )
        seqs, spans = [], []
        for i, (p, c) in enumerate(zip(prompts, completions)):
            p_ids = self._prompt_ids(p, f"prompt {i}")
            c_ids = (
                list(self.tokenizer.encode(c, add_special_tokens=False))
                if isinstance(c, str)
                else [int(t) for t in c]
            )
            if not c_ids:
                raise SqjaxError(f"completion {i} is empty; nothing to score")
            seqs.append(p_ids + c_ids)
            spans.append((len(p_ids), len(c_ids)))
        rows = scoring.Batcher(self, batch_size).run(scoring.token_logprobs, seqs)
        out = []
        for lp_L, (start, n) in zip(rows, spans):
            total = float(np.sum(lp_L[start - 1 : start - 1 + n], dtype=np.float64))
            out.append(CompletionScore(total, total / n, n))
        return out

    def yes_probability(
        self,
        prompts: Sequence[str | Sequence[int]],
        words: Sequence[str] = ("Yes",),
        *,
        batch_size: int = 16,
    ) -> list[float]:
        """P(next token is one of `words` | prompt), for LM-as-judge verdicts (raw
        distribution). Each word must encode to exactly one token; their probabilities add."""
        ids = []
        for w in words:
            enc = list(self.tokenizer.encode(w, add_special_tokens=False))
            if len(enc) != 1:
                raise SqjaxError(
                    f"judge word {w!r} encodes to {len(enc)} tokens {enc}; use words that are one token each"
                )
            ids.append(enc[0])
        seqs = [self._prompt_ids(p, f"prompt {i}") for i, p in enumerate(prompts)]
        rows = scoring.Batcher(self, batch_size).run(scoring.next_token_logprobs, seqs)
        return [float(np.sum(np.exp(r[ids].astype(np.float64)))) for r in rows]

    def reward_input_ids(self, question: str, response: str) -> list[int]:
        """The chat (user question, assistant response) as the reward model reads it;
        InternLM2 reward models get the reward token appended, as InternLM2's get_score does."""
        chat = [{"role": "user", "content": question}, {"role": "assistant", "content": response}]
        text = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=False)
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        if self.config.reward_token_id is not None:
            ids.append(int(self.config.reward_token_id))
        return ids

    def score_rewards(
        self, questions: Sequence[str], responses: Sequence[str], *, batch_size: int = 16
    ) -> list[float]:
        """Reward score of each (question, response) pair under a score-head model."""
        if self.config.head != "score":
            raise SqjaxError(
                "score_rewards needs a score-head model (config head='score'), got an LM-head model"
            )
        if len(questions) != len(responses):
            raise SqjaxError(
                f"{len(questions)} questions but {len(responses)} responses; pass one response per question"
            )
        seqs = [self.reward_input_ids(q, r) for q, r in zip(questions, responses)]
        batcher = scoring.Batcher(self, batch_size)
        return [float(r) for r in batcher.run(scoring.rewards, seqs)]


def _output(s, with_logprobs: bool) -> CompletionOutput:
    lps = s.logprobs if with_logprobs else None
    return CompletionOutput(
        index=s.index,
        text=s.text,
        token_ids=s.token_ids,
        finish_reason=s.finish_reason,
        logprobs=lps,
        cumulative_logprob=float(np.sum(lps)) if lps is not None else None,
    )


LAYOUTS = ("auto", "layers", "stacked")


def _layout(layout: str) -> str:
    """The layer layout the handle runs: "stacked" (one scanned layer) on TPU, where XLA
    reads a scanned layer's weights in place; "layers" (one array set per layer, a Python
    loop) elsewhere, where it copies them out every step (Decoder.unstacked says more)."""
    if layout not in LAYOUTS:
        raise SqjaxError(f"LLM(layout={layout!r}): use one of {', '.join(LAYOUTS)}")
    if layout == "auto":
        return "stacked" if jax.default_backend() == "tpu" else "layers"
    return layout


def _mesh_of(tree) -> Mesh | None:
    for leaf in jax.tree.leaves(tree):
        if isinstance(getattr(leaf, "sharding", None), NamedSharding):
            return leaf.sharding.mesh
    return None
