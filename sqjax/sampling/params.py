"""SamplingParams: vLLM's names and defaults, validated with one-line errors."""

from __future__ import annotations

import dataclasses

from sqjax.errors import SqjaxError


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How to sample one prompt's completions (vLLM names).

    temperature 0 means greedy. top_k <= 0 (vLLM: -1) disables top-k, top_p 1.0 disables
    top-p, min_p 0.0 disables min-p. Stops: the tokenizer's and model's EOS ids (unless
    ignore_eos), `stop_token_ids` and `stop` strings; none of them can end a completion before
    `min_tokens` tokens. `logprobs`: any non-None value returns the log-probability of each
    sampled token under the model's RAW distribution (log-softmax of the logits before
    temperature and filters, as vLLM does); only the sampled token is returned, never the top
    alternatives. seed None draws a fresh seed per call; seeds are used modulo 2**32.
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    max_tokens: int = 16
    min_tokens: int = 0
    ignore_eos: bool = False
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    seed: int | None = None
    logprobs: int | None = None

    def __post_init__(self):
        checks = [
            (self.n >= 1, "n", "use n >= 1"),
            (self.temperature >= 0, "temperature", "use temperature >= 0 (0 = greedy)"),
            (0 < self.top_p <= 1, "top_p", "use 0 < top_p <= 1 (1 = off)"),
            (self.top_k == -1 or self.top_k >= 0, "top_k", "use top_k >= 1, or -1/0 for off"),
            (0 <= self.min_p <= 1, "min_p", "use 0 <= min_p <= 1 (0 = off)"),
            (self.max_tokens >= 1, "max_tokens", "use max_tokens >= 1"),
            (
                0 <= self.min_tokens <= self.max_tokens,
                "min_tokens",
                "use 0 <= min_tokens <= max_tokens",
            ),
            (self.logprobs is None or self.logprobs >= 0, "logprobs", "use None or an int >= 0"),
        ]
        for ok, key, fix in checks:
            if not ok:
                raise SqjaxError(f"SamplingParams: {key}={getattr(self, key)!r} is invalid; {fix}")
        for s in self.stop_strings:
            if not isinstance(s, str) or not s:
                raise SqjaxError(
                    f"SamplingParams: stop={self.stop!r} holds {s!r}; stop strings must be non-empty str"
                )
        for t in self.stop_token_ids or []:
            if not isinstance(t, int) or t < 0:
                raise SqjaxError(
                    f"SamplingParams: stop_token_ids holds {t!r}; use non-negative token ids"
                )

    @property
    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0
