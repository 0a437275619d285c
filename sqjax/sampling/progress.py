"""A tqdm bar over finished samples with generated tokens/s (sparse when not on a terminal)."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class TokenProgress:
    def __init__(self, total: int, desc: str) -> None:
        tty = sys.stderr.isatty()
        self._bar = tqdm(
            total=total,
            desc=desc,
            unit="sample",
            file=sys.stderr,
            mininterval=0.5 if tty else 30.0,
            dynamic_ncols=tty,
            ascii=not tty,
        )
        self._tokens = 0
        self._start = time.monotonic()

    def update(self, samples: int, tokens: int) -> None:
        self._tokens += tokens
        rate = self._tokens / max(time.monotonic() - self._start, 1e-9)
        self._bar.set_postfix_str(f"{rate:,.0f} tok/s", refresh=False)
        self._bar.update(samples)

    def close(self) -> None:
        self._bar.close()
