"""One frozen config dataclass per pipeline stage, defaults = the paper's settings.

Sources: Ding et al. 2024 (ScaleQuest) and the authors' code; see /work/shared/SCALEQUEST.md.
Settings the paper does not give are marked "sqjax choice". Model fields hold names from the
run config's `models` table, or `<stage>:<name>` for the checkpoint a training stage wrote for
that model (e.g. `qpo:qwen2-math`); their fields carry `MODEL` metadata so the loader can check
every name before a run starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqjax import assets
from sqjax.data.prompt_format import DART_MATH_TEMPLATE, MODEL_TEMPLATE, check_template
from sqjax.question.prompt_library import PAPER_PROMPTS, PAPER_SYSTEM, check_prompt

MODEL_REF = "model_ref"
MODEL = {MODEL_REF: True}  # field metadata: the value names models
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _check_sampling(temperature: float, top_p: float, max_tokens: int) -> None:
    _require(temperature >= 0, f"temperature={temperature} must be >= 0")
    _require(0 < top_p <= 1, f"top_p={top_p} must be in (0, 1]")
    _require(max_tokens > 0, f"max_tokens={max_tokens} must be > 0")


def _check_positive(**values: int | None) -> None:
    for name, value in values.items():
        _require(value is None or value > 0, f"{name}={value} must be > 0")


REMAT_MODES = ("none", "full", "dots")


def _check_training(remat: str, accum_steps: int) -> None:
    """remat and accumulation of a training stage (sqjax.training.config.TrainConfig's)."""
    _require(remat in REMAT_MODES, f"remat={remat!r} is not one of {REMAT_MODES}")
    _require(accum_steps >= 1, f"accum_steps={accum_steps} must be >= 1")


@dataclass(frozen=True)
class SeedSource:
    """A JSONL file of seed questions and the field holding the question text."""

    path: str
    field: str = "question"
    limit: int | None = None  # first `limit` rows only (demo / smoke runs)


def _paper_seed_sources() -> list[SeedSource]:
    return [SeedSource(assets.GSM8K_TRAIN, "question"), SeedSource(assets.MATH_TRAIN, "problem")]


@dataclass(frozen=True)
class SeedQuestionsConfig:
    """Stage seed-questions: the bare questions QFT trains on (GSM8K + MATH train, ~15K)."""

    sources: list[SeedSource] = field(default_factory=_paper_seed_sources)


@dataclass(frozen=True)
class QftConfig:
    """Stage qft: SFT of each solver on bare questions; writes checkpoint `qft:<model>`."""

    models: list[str] = field(default_factory=list, metadata=MODEL)
    lr: float = 2e-5  # authors' code default
    epochs: int = 1
    warmup_ratio: float = 0.03  # cosine schedule
    seq_len: int = 256  # packed rows
    batch_size: int = 32
    loss: Literal["all", "question"] = "all"  # authors' code: loss on every token
    max_steps: int | None = None  # cap for smoke runs; None = full epochs
    # memory (sqjax choices; `sqjax plan` checks they fit): recompute each block's
    # activations in the backward pass, and split each step into accum_steps micro-batches
    # (at most: see micro_batches)
    remat: Literal["none", "full", "dots"] = "full"
    accum_steps: int = 1
    # questions sampled and judged before and after QFT (share judged a math problem, and
    # solvable); 0 = skip. Sampling: qpo_sample settings; judge: filter.solvability. sqjax choice
    probe_questions: int = 200

    def __post_init__(self) -> None:
        _check_positive(epochs=self.epochs, seq_len=self.seq_len, batch_size=self.batch_size)
        _check_positive(max_steps=self.max_steps)
        _check_training(self.remat, self.accum_steps)
        _require(self.probe_questions >= 0, f"probe_questions={self.probe_questions} must be >= 0")
        _require(0 <= self.warmup_ratio < 1, f"warmup_ratio={self.warmup_ratio} not in [0, 1)")


@dataclass(frozen=True)
class QuestionSampling:
    """Sampling questions from the bare pre-query prefix (stages qpo-sample, gen-questions)."""

    num_questions: int = 10_000  # per model
    temperature: float = 1.0
    top_p: float = 0.99
    max_tokens: int = 512  # paper; the authors' code used 1024
    shard_size: int = 1_000
    batch_size: int = 256

    def __post_init__(self) -> None:
        _check_sampling(self.temperature, self.top_p, self.max_tokens)
        _check_positive(num_questions=self.num_questions, shard_size=self.shard_size)
        _check_positive(batch_size=self.batch_size)


@dataclass(frozen=True)
class QpoSampleConfig(QuestionSampling):
    """Stage qpo-sample: 10K questions from each QFT model (`qft:<m>` for m in qft.models)."""


@dataclass(frozen=True)
class HttpEndpoint:
    """An OpenAI-compatible chat endpoint (the paper's rewriter was GPT-4o-mini)."""

    url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable, never the key


def _paper_rewrite_prompts() -> dict[str, str]:
    return {
        "solvability": PAPER_PROMPTS["rewrite-solvability"],  # Figure 10
        "difficulty": PAPER_PROMPTS["rewrite-difficulty"],  # Figure 11
    }


@dataclass(frozen=True)
class QpoRewriteConfig:
    """Stage qpo-rewrite: an optimizer LLM rewrites each question toward one goal."""

    rewriter: str | HttpEndpoint = field(default="", metadata=MODEL)  # model name or endpoint
    solvability_share: float = 0.5  # per-question coin flip: solvability vs difficulty prompt
    # goal -> prompt library name (sqjax/resources/prompts/index.yaml); paper: Figures 10, 11;
    # sqjax's rewordings: sqjax-qpo-solvability, sqjax-qpo-difficulty
    prompts: dict[str, str] = field(default_factory=_paper_rewrite_prompts)
    system: str | None = PAPER_SYSTEM  # the authors' system turn; None = the template's own
    temperature: float = 0.0
    max_tokens: int = 2048
    shard_size: int = 1_000
    batch_size: int = 64

    def __post_init__(self) -> None:
        _require(0 <= self.solvability_share <= 1, "solvability_share must be in [0, 1]")
        _require(
            set(self.prompts) == {"solvability", "difficulty"},
            f"prompts has goals {sorted(self.prompts)}; give exactly solvability and difficulty",
        )
        for goal, name in self.prompts.items():
            check_prompt(name, f"rewrite-{goal}", f"prompts.{goal}")
        _check_sampling(self.temperature, 1.0, self.max_tokens)
        _check_positive(shard_size=self.shard_size, batch_size=self.batch_size)


@dataclass(frozen=True)
class QpoPairsConfig:
    """Stage qpo-pairs: DPO pairs (chosen = rewrite, rejected = original, prompt = prefix)."""

    # Neither is in the paper (off here, on in configs/plus.yaml): a rewrite equal to its
    # original teaches nothing; ascii_only applies the filter stage's language rule.
    drop_identical: bool = False
    ascii_only: bool = False
    max_pairs: int | None = None

    def __post_init__(self) -> None:
        _check_positive(max_pairs=self.max_pairs)


@dataclass(frozen=True)
class QpoConfig:
    """Stage qpo: sigmoid DPO of each QFT model; reference = frozen QFT model."""

    beta: float = 0.1
    lr: float = 5e-7
    warmup_steps: int = 20  # then cosine
    batch_size: int = 128
    epochs: int = 1
    max_len: int = 1024
    max_steps: int | None = None
    probe_questions: int = 200  # judged sample before/after QPO, as in QftConfig; 0 = skip
    remat: Literal["none", "full", "dots"] = "full"  # as in QftConfig
    accum_steps: int = 4  # 32 pairs (64 rows of max_len) per micro-batch

    def __post_init__(self) -> None:
        _require(self.beta > 0, f"beta={self.beta} must be > 0")
        _check_positive(batch_size=self.batch_size, epochs=self.epochs, max_len=self.max_len)
        _check_positive(max_steps=self.max_steps)
        _check_training(self.remat, self.accum_steps)
        _require(self.probe_questions >= 0, f"probe_questions={self.probe_questions} must be >= 0")


@dataclass(frozen=True)
class GenQuestionsConfig(QuestionSampling):
    """Stage gen-questions: questions from each generator's pre-query prefix."""

    generators: list[str] = field(default_factory=list, metadata=MODEL)
    num_questions: int = 1_000_000  # per generator
    shard_size: int = 10_000


@dataclass(frozen=True)
class DifficultyConfig:
    """Stage difficulty: trains the fail-rate regressor the filter uses; writes
    `difficulty:<model>`. Labels = 1 - pass rate of `solver`'s samples on the seed questions.
    The paper gives the design (DeepSeekMath-7B-Base + scalar head, MSE), not the settings:
    every number below is an sqjax choice.
    """

    model: str = field(default="", metadata=MODEL)
    solver: str = field(default="", metadata=MODEL)
    samples_per_question: int = 8
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 2048
    max_questions: int | None = None
    lr: float = 1e-5
    epochs: int = 1
    warmup_ratio: float = 0.03
    batch_size: int = 64
    max_len: int = 512
    shard_size: int = 1_000

    def __post_init__(self) -> None:
        _check_sampling(self.temperature, self.top_p, self.max_tokens)
        _check_positive(samples_per_question=self.samples_per_question, epochs=self.epochs)
        _check_positive(batch_size=self.batch_size, max_len=self.max_len)
        _check_positive(shard_size=self.shard_size, max_questions=self.max_questions)


@dataclass(frozen=True)
class LanguageFilter:
    """Keep a question only if non-empty and pure ASCII (paper: removed 20.1%); optionally
    also drop questions whose prose a language-ID model confidently puts outside
    `languages` (sqjax choice, off by default; see sqjax.question.language)."""

    enabled: bool = True
    language_id: bool = False
    languages: list[str] = field(default_factory=lambda: ["en"])  # ISO 639-1 codes
    min_confidence: float = 0.9
    min_letters: int = 20  # less prose than this (math removed) is not judged

    def __post_init__(self) -> None:
        _require(bool(self.languages), "languages is empty; list the codes to keep, e.g. [en]")
        _require(
            0 <= self.min_confidence <= 1, f"min_confidence={self.min_confidence} must be in [0, 1]"
        )
        _check_positive(min_letters=self.min_letters)


@dataclass(frozen=True)
class SolvabilityFilter:
    """A judge reasons step by step and ends with Yes/No (paper: removed 19.4%)."""

    enabled: bool = True
    judge: str = field(default="", metadata=MODEL)
    prompt: str = PAPER_PROMPTS["solvability-check"]  # Figure 12; or sqjax-solvability-check
    system: str | None = PAPER_SYSTEM  # the authors' system turn; None = the template's own
    max_tokens: int = 2048  # greedy
    verdict: Literal["strict", "lax"] = "strict"  # lax = "yes" anywhere (the authors' code)
    batch_size: int = 64

    def __post_init__(self) -> None:
        check_prompt(self.prompt, "solvability-check", "prompt")


@dataclass(frozen=True)
class DifficultyFilter:
    """Drop the easiest share of questions by predicted fail rate (paper: removed 9.2%)."""

    enabled: bool = True
    scorer: str = field(default="", metadata=MODEL)  # usually difficulty:<model>
    # share of each filtered generator's rows that reach the cut; the paper's 9.2% of the 2M
    # generated, all from one of two generators: 0.092 * 2 / (1 - 0.201 - 0.194) = 0.304
    # (derivation in configs/paper/scalequest.yaml)
    drop_share: float = 0.304
    apply_to: list[str] | None = field(default=None, metadata=MODEL)  # None = all

    def __post_init__(self) -> None:
        _require(0 <= self.drop_share < 1, f"drop_share={self.drop_share} not in [0, 1)")


@dataclass(frozen=True)
class DedupFilter:
    """Exact + near-duplicate removal (none in the authors' code: off; on in plus.yaml)."""

    enabled: bool = False
    normalize: bool = True  # compare case- and whitespace-folded text


@dataclass(frozen=True)
class DecontamFilter:
    """Drop questions sharing an n-gram with an evaluation set (benchmarks = eval.benchmarks).
    The paper did not filter (off; on in plus.yaml) but measured the clean ratio (Table 6),
    which the reward stage measures on the final data (reward.clean_ratio) and the filter
    stage on its kept questions, whether or not this filters."""

    enabled: bool = False
    ngram: int = 13

    def __post_init__(self) -> None:
        _check_positive(ngram=self.ngram)


@dataclass(frozen=True)
class FilterConfig:
    """Stage filter: language -> solvability -> difficulty -> dedup -> decontamination."""

    language: LanguageFilter = field(default_factory=LanguageFilter)
    solvability: SolvabilityFilter = field(default_factory=SolvabilityFilter)
    difficulty: DifficultyFilter = field(default_factory=DifficultyFilter)
    dedup: DedupFilter = field(default_factory=DedupFilter)
    decontam: DecontamFilter = field(default_factory=DecontamFilter)
    shard_size: int = 10_000

    def __post_init__(self) -> None:
        _check_positive(shard_size=self.shard_size)


RATED_STAGES = ("qpo-sample", "gen-questions", "filter")


@dataclass(frozen=True)
class RateQuestionsConfig:
    """Stage rate-questions: the paper's question-quality measurement (Figures 4, 5, 9): an
    LLM judge (paper: GPT-4o) rates a sample of each (stage, generator)'s questions for
    solvability (Figure 12 prompt, Yes/No) and difficulty level (Figure 13 prompt, very easy
    .. very hard). Sources: raw QFT output (qpo-sample), generator output (gen-questions;
    QPO output for `qpo:` generators) and filtered questions (filter). Empty judge = skip."""

    judge: str | HttpEndpoint = field(default="", metadata=MODEL)  # model name or endpoint
    sources: list[str] = field(default_factory=lambda: list(RATED_STAGES))
    questions_per_source: int = 1_000  # seeded sample per (stage, generator); sqjax choice
    solvability_prompt: str = PAPER_PROMPTS["solvability-check"]
    difficulty_prompt: str = PAPER_PROMPTS["difficulty-rating"]
    system: str | None = PAPER_SYSTEM
    temperature: float = 0.0
    max_tokens: int = 2048
    batch_size: int = 64
    shard_size: int = 1_000

    def __post_init__(self) -> None:
        unknown = [s for s in self.sources if s not in RATED_STAGES]
        _require(not unknown, f"sources {unknown} not among {list(RATED_STAGES)}")
        check_prompt(self.solvability_prompt, "solvability-check", "solvability_prompt")
        check_prompt(self.difficulty_prompt, "difficulty-rating", "difficulty_prompt")
        _check_sampling(self.temperature, 1.0, self.max_tokens)
        _check_positive(questions_per_source=self.questions_per_source)
        _check_positive(batch_size=self.batch_size, shard_size=self.shard_size)


@dataclass(frozen=True)
class GenResponsesConfig:
    """Stage gen-responses: `n` chain-of-thought answers per question from the solver."""

    solver: str = field(default="", metadata=MODEL)
    n: int = 5
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 2048
    instruction: str = BOXED_INSTRUCTION  # appended to the question in the user turn
    drop_no_answer: bool = True  # drop samples with no final answer
    shard_size: int = 2_000
    batch_size: int = 256

    def __post_init__(self) -> None:
        _check_sampling(self.temperature, self.top_p, self.max_tokens)
        _check_positive(n=self.n, shard_size=self.shard_size, batch_size=self.batch_size)


DATASET_FIELDS = ("query", "response")


@dataclass(frozen=True)
class CleanRatioMeasure:
    """The paper's Table 6 on the final data set (RUN/reward/dataset.jsonl): per evaluation
    set of eval.benchmarks, the share of rows whose `fields` share no word n-gram with any of
    its questions. A measurement only: it never drops a row (filter.decontam does that).
    The paper checked 13-gram overlap with the test sets' questions; `fields` defaults to the
    rows' questions (`query`), add `response` to check the answers too."""

    enabled: bool = True
    ngram: int = 13
    fields: list[str] = field(default_factory=lambda: ["query"])

    def __post_init__(self) -> None:
        _check_positive(ngram=self.ngram)
        bad = [f for f in self.fields if f not in DATASET_FIELDS]
        _require(bool(self.fields) and not bad, f"fields={self.fields}: pick from {DATASET_FIELDS}")


@dataclass(frozen=True)
class RewardConfig:
    """Stage reward: score every (question, response) and keep the best per question; then
    measure the final data set's clean ratio against each evaluation set (Table 6)."""

    model: str = field(default="", metadata=MODEL)
    mode: Literal["reward_model", "judge"] = "reward_model"
    max_len: int = 4096
    judge_max_tokens: int = 1024  # mode=judge only
    batch_size: int = 64
    shard_size: int = 2_000
    clean_ratio: CleanRatioMeasure = field(default_factory=CleanRatioMeasure)

    def __post_init__(self) -> None:
        _check_positive(max_len=self.max_len, batch_size=self.batch_size)
        _check_positive(shard_size=self.shard_size, judge_max_tokens=self.judge_max_tokens)


@dataclass(frozen=True)
class SftModel:
    """One base model to fine-tune and its learning rate."""

    model: str = field(default="", metadata=MODEL)
    lr: float = 1e-5


@dataclass(frozen=True)
class SftConfig:
    """Stage sft: each base model on the (query, response) pairs; writes `sft:<model>`."""

    models: list[SftModel] = field(default_factory=list)
    # The prompt of the final SFT, and of evaluating its models (`sft:<m>`), so training and
    # evaluation see the same one: the paper follows DART-Math, whose `alpaca` template wraps
    # the bare query; `model` = the tokenizer's own template. `instruction` is appended to
    # each query (after a newline) in both; DART-Math adds none.
    template: str = DART_MATH_TEMPLATE
    instruction: str = ""
    # Table 11 compares fixed-size subsets: train on `max_rows` rows drawn with
    # `subsample_seed` (None = all); `extra_data` mixes in JSONL files of {query, response}
    # (e.g. DART-Math's data) before subsampling. sqjax options, off by default.
    max_rows: int | None = None
    subsample_seed: int = 0
    extra_data: list[str] = field(default_factory=list)
    epochs: int = 3
    warmup_ratio: float = 0.03  # then cosine
    pack_len: int = 4096
    batch_size: int = 64
    loss: Literal["response", "all"] = "response"
    max_steps: int | None = None
    remat: Literal["none", "full", "dots"] = "full"  # as in QftConfig
    accum_steps: int = 8  # 8 rows of pack_len per micro-batch

    def __post_init__(self) -> None:
        _check_positive(epochs=self.epochs, pack_len=self.pack_len, batch_size=self.batch_size)
        _check_positive(max_steps=self.max_steps, max_rows=self.max_rows)
        check_template(self.template, "template")
        _check_training(self.remat, self.accum_steps)


def _paper_benchmarks() -> dict[str, str]:
    return {"gsm8k": assets.GSM8K_TEST, "math": assets.MATH_TEST}


@dataclass(frozen=True)
class EvalConfig:
    """Stage eval: zero-shot CoT, greedy; answer from the last \\boxed{}."""

    models: list[str] = field(default_factory=list, metadata=MODEL)
    benchmarks: dict[str, str] = field(default_factory=_paper_benchmarks)  # name -> JSONL
    # prompt of models the sft stage did not train (`sft:<m>` use sft.template/instruction):
    # the tokenizer's own chat template and the step-by-step / \boxed{} instruction
    template: str = MODEL_TEMPLATE
    instruction: str = BOXED_INSTRUCTION
    max_tokens: int = 2048
    limit: int | None = None  # first `limit` problems per benchmark (smoke runs)
    batch_size: int = 64

    def __post_init__(self) -> None:
        _check_positive(max_tokens=self.max_tokens, limit=self.limit, batch_size=self.batch_size)
        check_template(self.template, "template")
