"""The OpenAI-compatible rewriter against a local fake server: retries a 500 and a 429, then
succeeds; gives up with a one-line error; never lets the API key reach logs or errors."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from sqjax.errors import SqjaxError
from sqjax.question.http_rewriter import ChatClient

KEY = "sk-test-SECRET-0123456789"


class FakeServer:
    """Answers POST /v1/chat/completions from a script of (status, reply) per request, or
    from a function of the request body returning (status, reply)."""

    def __init__(self, script):
        self.script = script if callable(script) else list(script)
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, dict(self.headers), body))
                status, text = outer.next_reply(body)
                if status == 200:
                    payload = {"choices": [{"message": {"role": "assistant", "content": text}}]}
                else:
                    payload = {
                        "error": {"message": f"{text} (key {KEY})"}
                    }  # a server echoing the key
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def next_reply(self, body: dict) -> tuple[int, str]:
        if callable(self.script):
            return self.script(body)
        return self.script.pop(0) if self.script else (500, "script ended")

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("SQJAX_TEST_KEY", KEY)
    return "SQJAX_TEST_KEY"


def test_retries_500_and_429_then_succeeds(key_env, caplog):
    script = [(500, "overloaded"), (429, "slow down"), (200, "### Final Question:\nWhat is 6 x 7?")]
    with FakeServer(script) as url, caplog.at_level(logging.WARNING, logger="sqjax.http"):
        client = ChatClient(url, "gpt-4o-mini", key_env, backoff_s=0.01)
        reply = client.complete("Rewrite: what is 6 x 7", temperature=0.0, max_tokens=64)
    assert reply == "### Final Question:\nWhat is 6 x 7?"
    assert len(caplog.records) == 2 and "HTTP 500" in caplog.text and "HTTP 429" in caplog.text
    assert KEY not in caplog.text


def test_request_shape_and_auth_header(key_env):
    fake = FakeServer([(200, "ok")])
    with fake as url:
        ChatClient(url, "m1", key_env).complete("hello", temperature=0.0, max_tokens=7)
    path, headers, body = fake.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert body == {
        "model": "m1",
        "messages": [{"role": "user", "content": "hello"}],
        "temperature": 0.0,
        "max_tokens": 7,
    }


def test_gives_up_after_max_retries_without_leaking_the_key(key_env, caplog):
    fake = FakeServer([(503, "down")] * 3)
    with fake as url, caplog.at_level(logging.DEBUG):
        client = ChatClient(url, "m", key_env, max_retries=2, backoff_s=0.01)
        with pytest.raises(SqjaxError) as err:
            client.complete("q")
    assert len(fake.requests) == 3
    assert "HTTP 503" in str(err.value) and "***" in str(err.value)
    assert KEY not in str(err.value) and KEY not in caplog.text


def test_client_error_is_not_retried(key_env):
    fake = FakeServer([(401, "bad key"), (200, "never")])
    with fake as url, pytest.raises(SqjaxError, match="HTTP 401"):
        ChatClient(url, "m", key_env, backoff_s=0.01).complete("q")
    assert len(fake.requests) == 1


def test_many_prompts_keep_their_order(key_env):
    fake = FakeServer([(200, "r")] * 6)
    with fake as url:
        out = ChatClient(url, "m", key_env).complete_many([f"p{i}" for i in range(6)], 0.0, 8, 3)
    assert out == ["r"] * 6 and len(fake.requests) == 6
    assert sorted(b["messages"][0]["content"] for _, _, b in fake.requests) == [
        f"p{i}" for i in range(6)
    ]


def test_unreachable_server_is_retried_then_reported(key_env):
    client = ChatClient(
        "http://127.0.0.1:9/v1", "m", key_env, max_retries=1, backoff_s=0.01, timeout_s=2
    )
    with pytest.raises(SqjaxError, match="after 2 tries"):
        client.complete("q")


class _Recorder(BaseHTTPRequestHandler):
    """Another origin: records whatever reaches it (it must never see the key)."""

    seen: ClassVar[list] = []

    def _record(self):
        _Recorder.seen.append((self.command, dict(self.headers)))
        data = json.dumps({"choices": [{"message": {"content": "from elsewhere"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _record

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_another_origin_never_gets_the_key(key_env, status):
    other = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    _Recorder.seen = []
    elsewhere = f"http://127.0.0.1:{other.server_address[1]}/v1/chat/completions"

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            self.send_header("Location", elsewhere)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    start = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=start.serve_forever, daemon=True).start()
    try:
        client = ChatClient(f"http://127.0.0.1:{start.server_address[1]}/v1", "m", key_env)
        with pytest.raises(SqjaxError, match=f"HTTP {status}.*redirect") as err:
            client.complete("q")
    finally:
        start.shutdown(), other.shutdown(), start.server_close(), other.server_close()
    assert _Recorder.seen == []
    assert "\n" not in str(err.value) and KEY not in str(err.value)


def test_key_is_masked_before_the_message_is_cut(key_env):
    """A server echoing the key where the 200-character cut falls inside it: no prefix of the
    key may survive (masking after cutting left 'sk-test-SE...')."""
    pad = "x" * 161  # the key starts at character 190 of the error body

    with FakeServer([(400, pad)]) as url, pytest.raises(SqjaxError) as err:
        ChatClient(url, "m", key_env).complete("q")
    message = str(err.value)
    assert KEY[:8] not in message and "***" in message
