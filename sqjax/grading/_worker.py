"""Symbolic-equivalence worker, run as a script in a child process by `symbolic.py`.

Protocol (one JSON object per line): the worker first writes {"ready": true}; then for each
request {"gold": str, "pred": str, "cpu_s": float} on stdin it writes {"equal": bool} or
{"equal": false, "error": str}. math-verify's own signal timeouts are turned off: the parent
kills this process when a request runs too long. A CPU-time limit per request and an
address-space limit make an orphaned worker die on its own if the parent disappears mid-request.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import sys

MEMORY_LIMIT_BYTES = 4 * 1024**3


def _limit_cpu(seconds: float) -> None:
    """Makes the kernel kill this process once this request used `seconds` of CPU (+2 s)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(used.ru_utime + used.ru_stime + seconds) + 2
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _wrap(answer: str) -> str:
    return "\\boxed{" + answer + "}"


def main() -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray prints from libraries must not corrupt the protocol
    try:
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        soft = (
            MEMORY_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(hard, MEMORY_LIMIT_BYTES)
        )
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (ValueError, OSError):  # best effort: the parent's wall-clock kill still applies
        pass
    logging.disable(logging.CRITICAL)
    try:
        from math_verify import parse, verify
    except Exception as e:  # noqa: BLE001 (reported to the parent, which raises with it)
        proto.write(json.dumps({"ready": False, "error": f"{type(e).__name__}: {e}"}) + "\n")
        return
    proto.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        _limit_cpu(request["cpu_s"])
        try:
            gold = parse(_wrap(request["gold"]), parsing_timeout=None)
            pred = parse(_wrap(request["pred"]), parsing_timeout=None)
            reply = {"equal": bool(verify(gold, pred, timeout_seconds=None))}
        except Exception as e:  # noqa: BLE001 (a failure means "not shown equal")
            reply = {"equal": False, "error": f"{type(e).__name__}: {e}"[:200]}
        proto.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
