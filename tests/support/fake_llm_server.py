"""A local OpenAI-compatible chat-completions server with scripted answers.

Run as its own process (the tests and bench/bench_judge.py start it):

    python tests/support/fake_llm_server.py --port 8765 [--latency 0.2] [--api-key KEY]

``POST /v1/chat/completions`` answers by the marker ``[[case:NAME]]`` found in the last
user message (the trace): the replies scripted for NAME are served in order, the last one
repeating. Without a marker (or a script) it serves the default reply. Control routes:
``POST /_script {"marker", "replies": [{"status", "content" | "body", "delay", "headers"}]}``
(with ``"model"``: served only to requests for that model, before the marker's own script),
``POST /_default {"content"}``, ``GET /_stats``, ``GET /_requests`` (last 200 bodies),
``POST /_reset``. The LLM provider is the one part of the system the tests may replace.

A scripted reply may misbehave the way real providers and networks do, with ``"mode"``:

- ``trickle``: the status line and headers at once, then the body ``"chunk"`` bytes (1)
  every ``"interval"`` seconds (0.5): each read arrives well within any socket timeout;
- ``trickle_head``: the same from the first byte, status line and headers included;
- ``hang``: read the request and never answer (until the client goes away or ``"delay"``
  seconds, 600 by default, pass);
- ``reset``: close the connection at once with a TCP reset, nothing sent;
- ``cut``: the headers (with the full Content-Length) and half the body, then close;
- ``garbage``: bytes that are not HTTP, then close.

Status codes (429 with ``Retry-After``, 500, 503), malformed bodies (``"body"``) and
slow answers (``"delay"``) are scripted with the keys above.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

MARKER = re.compile(r"\[\[case:([A-Za-z0-9_\-]+)\]\]")
DEFAULT_REPLY = json.dumps({"verdict": "pass", "score": 0.9, "confidence": 0.8,
                            "explanation": "Supported by the conversation.",
                            "categories": [], "spans": []})


class State:
    def __init__(self, latency: float, api_key: str | None) -> None:
        self.latency = latency
        self.api_key = api_key
        self.lock = threading.Lock()
        self.scripts: dict[str, list[dict[str, Any]]] = {}
        self.served: Counter[str] = Counter()
        self.default = DEFAULT_REPLY
        self.requests: deque[dict[str, Any]] = deque(maxlen=200)
        self.calls = 0

    def reply_for(self, marker: str | None, model: str | None = None) -> dict[str, Any]:
        with self.lock:
            self.calls += 1
            key = marker or "(none)"
            if marker and f"{model}|{marker}" in self.scripts:
                key = f"{model}|{marker}"
            index = self.served[key]
            self.served[key] += 1
            script = self.scripts.get(key if marker else "")
            if not script:
                return {"status": 200, "content": self.default}
            return script[min(index, len(script) - 1)]


class Handler(BaseHTTPRequestHandler):
    state: State
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without this, Nagle's algorithm and the
    # client's delayed ACK add about 40 ms to every answer
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode())

    def _misbehave(self, mode: str, status: int, raw: bytes, reply: dict[str, Any]) -> None:
        """Answer (or not) the way ``mode`` says; see the module docstring."""
        head = (f"HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(raw)}\r\nConnection: close\r\n\r\n").encode()
        self.close_connection = True
        conn: socket.socket = self.connection
        interval = float(reply.get("interval", 0.5))
        chunk = max(1, int(reply.get("chunk", 1)))
        try:
            if mode in ("trickle", "trickle_head"):
                if mode == "trickle":
                    conn.sendall(head)
                    data = raw
                else:
                    data = head + raw
                for start in range(0, len(data), chunk):
                    conn.sendall(data[start:start + chunk])
                    time.sleep(interval)
            elif mode == "hang":
                conn.settimeout(float(reply.get("delay", 600)))
                with contextlib.suppress(OSError):
                    while conn.recv(1024):  # returns b"" when the client goes away
                        pass
            elif mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            elif mode == "cut":
                conn.sendall(head + raw[:len(raw) // 2])
                conn.shutdown(socket.SHUT_RDWR)
            elif mode == "garbage":
                conn.sendall(b"\x00\xffnot http at all\r\n\r\n")
                conn.shutdown(socket.SHUT_RDWR)
            else:
                raise ValueError(f"unknown mode {mode!r}")
        except OSError:  # the client gave up first: that is the point of most modes
            pass

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        return json.loads(raw or b"{}")

    def do_GET(self) -> None:
        state = self.state
        if self.path == "/_stats":
            with state.lock:
                self._json(200, {"calls": state.calls, "by_marker": dict(state.served)})
        elif self.path == "/_requests":
            with state.lock:
                self._json(200, list(state.requests))
        elif self.path == "/health":
            self._json(200, {"status": "ok"})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        state = self.state
        body = self._body()
        if self.path == "/_script":
            key = f"{body['model']}|{body['marker']}" if body.get("model") else body["marker"]
            with state.lock:
                state.scripts[key] = body["replies"]
                state.served.pop(key, None)
            self._json(200, {"ok": True})
        elif self.path == "/_default":
            with state.lock:
                state.default = body["content"]
            self._json(200, {"ok": True})
        elif self.path == "/_reset":
            with state.lock:
                state.scripts.clear()
                state.served.clear()
                state.requests.clear()
                state.calls = 0
                state.default = DEFAULT_REPLY
            self._json(200, {"ok": True})
        elif self.path == "/v1/chat/completions":
            self._chat(body)
        else:
            self._json(404, {"error": "not found"})

    def _chat(self, body: dict[str, Any]) -> None:
        state = self.state
        if state.api_key and self.headers.get("Authorization") != f"Bearer {state.api_key}":
            self._json(401, {"error": {"message": "invalid api key"}})
            return
        messages = body.get("messages") or []
        last_user = next((m.get("content", "") for m in reversed(messages)
                          if m.get("role") == "user"), "")
        found = MARKER.search(last_user)
        marker = found.group(1) if found else None
        with state.lock:
            state.requests.append({"marker": marker, "body": body})
        reply = state.reply_for(marker, body.get("model"))
        mode = reply.get("mode")
        time.sleep(state.latency + (0 if mode == "hang" else float(reply.get("delay", 0))))
        status = int(reply.get("status", 200))
        if "body" in reply:
            payload = reply["body"]
            raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        elif status == 200:
            raw = json.dumps({
                "id": "chatcmpl-fake", "object": "chat.completion", "model": body.get("model"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant",
                                         "content": reply.get("content", state.default)}}],
            }).encode()
        else:
            raw = json.dumps({"error": {"message": f"scripted HTTP {status}"}}).encode()
        if mode:
            self._misbehave(str(mode), status, raw, reply)
            return
        self._send(status, raw, reply.get("headers"))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def serve(port: int, latency: float, api_key: str | None) -> None:
    Handler.state = State(latency, api_key)
    server = Server(("127.0.0.1", port), Handler)
    print(f"fake LLM listening on {port}", flush=True)
    server.serve_forever()


# For the tests and the bench: start it as a separate process ---------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeLLM:
    """The server as a child process; ``base_url`` is what the judge is pointed at."""

    def __init__(self, latency: float = 0.0, api_key: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        args = [sys.executable, str(Path(__file__).resolve()), "--port", str(self.port),
                "--latency", str(latency)]
        if api_key:
            args += ["--api-key", api_key]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the fake LLM server did not start")

    def script(self, marker: str, *replies: dict[str, Any], model: str | None = None) -> None:
        body: dict[str, Any] = {"marker": marker, "replies": list(replies)}
        if model is not None:
            body["model"] = model
        requests.post(f"{self.url}/_script", json=body, timeout=5).raise_for_status()

    def set_default(self, content: str) -> None:
        requests.post(f"{self.url}/_default", json={"content": content},
                      timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = requests.get(f"{self.url}/_stats", timeout=5).json()
        return result

    def requests_seen(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = requests.get(f"{self.url}/_requests", timeout=5).json()
        return result

    def reset(self) -> None:
        requests.post(f"{self.url}/_reset", json={}, timeout=5).raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def __enter__(self) -> FakeLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--api-key", default=None)
    options = parser.parse_args()
    serve(options.port, options.latency, options.api_key)
