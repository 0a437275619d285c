"""A progress bar with row and token rates for stages that run for hours or days."""

from __future__ import annotations

import sys
import time
from typing import Self

from tqdm import tqdm


class Progress:
    """tqdm over rows, with tokens/s in the postfix; sparse updates when not on a terminal
    (log files on a TPU VM)."""

    def __init__(self, total: int, desc: str, initial: int = 0, unit: str = "row") -> None:
        tty = sys.stderr.isatty()
        self._bar = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit=unit,
            file=sys.stderr,
            mininterval=0.5 if tty else 60.0,
            dynamic_ncols=tty,
            ascii=not tty,
        )
        self._tokens = 0
        self._start = time.monotonic()

    def update(self, rows: int, tokens: int = 0) -> None:
        self._tokens += tokens
        if self._tokens:
            rate = self._tokens / max(time.monotonic() - self._start, 1e-9)
            self._bar.set_postfix_str(f"{rate:,.0f} tok/s", refresh=False)
        self._bar.update(rows)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
