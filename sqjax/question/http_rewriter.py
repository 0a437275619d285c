"""A minimal client for OpenAI-compatible chat endpoints (the paper's optimizer was
GPT-4o-mini), with retries and exponential backoff on 429, 5xx, connection errors and
timeouts.

The API key is read from the environment variable the config names; it goes only into the
Authorization header of requests to the configured endpoint and is masked out of every error
message (before the message is cut to length), so it never reaches logs, manifests or row
files. Redirects are never followed: a redirected request would carry the key to whatever
origin the reply names, so a 3xx is an error that asks for the final URL instead.

sqjax keeps this small stdlib client rather than adding the `openai` package (and httpx): the
endpoint contract is one POST, retries and backoff are a few lines, and tests/test_question_http.py
pins the behaviour that matters here (redirects refused, key masked, retry counts) against a
local server.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqjax.errors import SqjaxError


@dataclass(frozen=True)
class HttpEndpoint:
    """An OpenAI-compatible chat endpoint (the paper's rewriter was GPT-4o-mini)."""

    url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable, never the key


log = logging.getLogger("sqjax.http")
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
DETAIL_CHARS = 200  # of an error reply shown in the message


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Turns every 3xx into an HTTPError instead of a new request carrying the key."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_RefuseRedirects)


@dataclass(frozen=True)
class ChatClient:
    """POSTs `{"model", "messages", "temperature", "max_tokens"}` to `url` (`.../v1` gets
    `/chat/completions` appended) and returns the first choice's message content."""

    url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 120.0
    max_retries: int = 6
    backoff_s: float = 1.0  # first wait; doubles each retry
    max_backoff_s: float = 60.0

    @property
    def endpoint(self) -> str:
        url = self.url.rstrip("/")
        return url if url.endswith("/chat/completions") else url + "/chat/completions"

    def _key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    def _mask(self, text: str) -> str:
        key = self._key()
        return text.replace(key, "***") if key else text

    def _request(self, body: dict) -> urllib.request.Request:
        headers = {"Content-Type": "application/json"}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode("utf-8")
        return urllib.request.Request(self.endpoint, data=data, headers=headers, method="POST")

    def complete(
        self,
        prompt: str,
        temperature: float = 0.0,
        max_tokens: int = 2048,
        system: str | None = None,
    ) -> str:
        """The reply to one user message (after a `system` message when given), retrying
        transient failures."""
        head = [{"role": "system", "content": system}] if system is not None else []
        body = {
            "model": self.model,
            "messages": [*head, {"role": "user", "content": prompt}],
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        for attempt in range(self.max_retries + 1):
            try:
                with _OPENER.open(self._request(body), timeout=self.timeout_s) as resp:
                    return _content(json.loads(resp.read().decode("utf-8")), self.endpoint)
            except urllib.error.HTTPError as e:
                if 300 <= e.code < 400:
                    raise self._redirect_error(e) from None
                detail = self._mask(e.read().decode("utf-8", "replace"))[:DETAIL_CHARS]
                if e.code not in RETRY_STATUS or attempt == self.max_retries:
                    raise SqjaxError(
                        f"{self.endpoint}: HTTP {e.code} ({detail!r}) after {attempt + 1} "
                        f"tries; check the url, model {self.model!r} and ${self.api_key_env}"
                    ) from None
                wait = _retry_after(e) or self._wait(attempt)
                reason = f"HTTP {e.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                if attempt == self.max_retries:
                    raise SqjaxError(
                        f"{self.endpoint}: {self._mask(str(e))} after {attempt + 1} tries; "
                        f"is the server reachable?"
                    ) from None
                wait, reason = self._wait(attempt), type(e).__name__
            log.warning("%s: %s; retry %d in %.1fs", self.endpoint, reason, attempt + 1, wait)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _redirect_error(self, e: urllib.error.HTTPError) -> SqjaxError:
        target = self._mask(str(e.headers.get("Location", "?") if e.headers else "?"))
        return SqjaxError(
            f"{self.endpoint}: HTTP {e.code} redirect to {target[:DETAIL_CHARS]!r}, not followed "
            f"(the request carries ${self.api_key_env}); set the url to the final address"
        )

    def _wait(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2**attempt)

    def complete_many(
        self,
        prompts: Sequence[str],
        temperature: float,
        max_tokens: int,
        concurrency: int,
        system: str | None = None,
    ) -> list[str]:
        """Replies to many prompts, `concurrency` requests in flight, in prompt order."""
        ask = lambda p: self.complete(p, temperature, max_tokens, system)
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(ask, prompts))


def _retry_after(e: urllib.error.HTTPError) -> float | None:
    value = e.headers.get("Retry-After") if e.headers else None
    try:
        return min(60.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _content(payload: dict, endpoint: str) -> str:
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise SqjaxError(
            f"{endpoint}: reply has no choices[0].message.content ({str(payload)[:200]!r}); "
            f"is this an OpenAI-compatible chat endpoint?"
        ) from None
    return content or ""
