"""A local server speaking four providers' wire protocols, with one scripted conversation.

    python tests/support/fake_providers.py --port 8777

Routes: OpenAI chat completions (``POST /v1/chat/completions``), OpenAI Responses
(``POST /v1/responses``), Anthropic Messages (``POST /v1/messages``), Gemini
``POST /v1beta/models/{model}:generateContent``; ``GET /_requests`` lists the bodies received.
Any path prefix before these is accepted (SDKs differ in their base URLs).

OpenAI chat also streams (``"stream": true``: server-sent chunks) and answers
:data:`ANSWER_OBJECT` when ``response_format`` asks for JSON. The script, the same for every
protocol: while the request offers tools and holds no tool
result yet, the model calls the first offered tool with :data:`TOOL_ARGUMENTS`; otherwise
it answers :data:`ANSWER` (whitespace, indentation and non-ASCII on purpose, so an importer
that strips or re-encodes text is caught). Usage is :data:`USAGE` per call, by call number
within the conversation. A user message holding ``[[fail]]`` gets a 500 error. The fixture
generators in ``tests/fixtures/<dialect>/`` build their ground truth from these constants
and from what they sent, never from the spans.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

ANSWER = "It is 18 °C and sunny in Paris.\n\n  - wind: light\n  - rain: none  \nEnjoy!"
TOOL_ARGUMENTS = {"city": "Paris", "unit": "celsius"}
# (input tokens, output tokens) of the first and the second call of a conversation
USAGE = [(31, 12), (57, 23)]
MODEL_VERSION_SUFFIX = "-2024-08-06"
# the answer to a chat request asking for JSON (``response_format``), as the provider writes it
ANSWER_OBJECT = '{"city": "Paris", "temp_c": 18, "sky": "sunny", "note": "°C  "}'


def _has_tool_result(body: dict[str, Any]) -> bool:
    for message in body.get("messages") or []:  # OpenAI chat, Anthropic
        if not isinstance(message, dict):
            continue
        if message.get("role") in ("tool", "function"):
            return True
        content = message.get("content")
        if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result"
                                             for b in content):
            return True
    items = body.get("input")
    if isinstance(items, list) and any(isinstance(i, dict) and i.get("type")
                                       == "function_call_output" for i in items):
        return True
    for content in body.get("contents") or []:  # Gemini
        for part in (content or {}).get("parts") or [] if isinstance(content, dict) else []:
            if isinstance(part, dict) and ("functionResponse" in part
                                           or "function_response" in part):
                return True
    return False


def _tool_name(body: dict[str, Any]) -> str | None:
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        if isinstance(tool.get("function"), dict):
            return str(tool["function"].get("name"))
        if tool.get("name"):
            return str(tool["name"])
        for decl in tool.get("functionDeclarations") or tool.get("function_declarations") or []:
            return str(decl.get("name"))
    return None


def _wants_failure(body: dict[str, Any]) -> bool:
    return "[[fail]]" in json.dumps(body)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    received: deque[dict[str, Any]] = deque(maxlen=500)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/_requests"):
            self._json(200, list(self.received))
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "bad json"}})
            return
        path = self.path.split("?")[0]
        self.received.append({"path": path, "body": body})
        if _wants_failure(body):
            self._json(500, {"error": {"message": "scripted failure", "type": "server_error"}})
            return
        call = 1 if _has_tool_result(body) else 0
        tool = None if call else _tool_name(body)
        if tool is None:
            call = 1 if body.get("tools") else 0
        tin, tout = USAGE[min(call, len(USAGE) - 1)]
        if path.endswith("/chat/completions") and body.get("stream"):
            self._sse(self._chat_chunks(self._chat(body, tool, tin, tout), body))
        elif path.endswith("/chat/completions"):
            self._json(200, self._chat(body, tool, tin, tout))
        elif path.endswith("/responses"):
            self._json(200, self._responses(body, tool, tin, tout))
        elif path.endswith("/messages"):
            self._json(200, self._anthropic(body, tool, tin, tout))
        elif ":generateContent" in path:
            model = re.sub(r".*/models/([^:]+):generateContent$", r"\1", path)
            self._json(200, self._gemini(model, tool, tin, tout))
        else:
            self._json(404, {"error": {"message": f"no route {path}"}})

    def _sse(self, chunks: list[dict[str, Any]]) -> None:
        """Server-sent events, one ``data:`` line per chunk, then ``data: [DONE]``."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    @staticmethod
    def _chat_chunks(full: dict[str, Any], body: dict[str, Any]) -> list[dict[str, Any]]:
        """A chat completion as the streaming API sends it: the role, the text in pieces
        (or the tool call), the finish reason, and the usage when ``stream_options`` asks."""
        base = {"id": full["id"], "object": "chat.completion.chunk",
                "created": full["created"], "model": full["model"]}
        choice, message = full["choices"][0], full["choices"][0]["message"]
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        text = message.get("content") or ""
        deltas += [{"content": text[i:i + 7]} for i in range(0, len(text), 7)]
        for n, call in enumerate(message.get("tool_calls") or []):
            deltas.append({"tool_calls": [dict(call, index=n)]})
        chunks = [dict(base, choices=[{"index": 0, "delta": d, "finish_reason": None}])
                  for d in deltas]
        chunks.append(dict(base, choices=[{"index": 0, "delta": {},
                                           "finish_reason": choice["finish_reason"]}]))
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append(dict(base, choices=[], usage=full["usage"]))
        return chunks

    @staticmethod
    def _chat(body: dict[str, Any], tool: str | None, tin: int, tout: int) -> dict[str, Any]:
        wants_json = (body.get("response_format") or {}).get("type") in ("json_schema",
                                                                         "json_object")
        answer = ANSWER_OBJECT if wants_json else ANSWER
        message: dict[str, Any] = {"role": "assistant", "content": None if tool else answer}
        if tool:
            message["tool_calls"] = [{"id": "call_weather_1", "type": "function", "function": {
                "name": tool, "arguments": json.dumps(TOOL_ARGUMENTS)}}]
        return {"id": f"chatcmpl-{tin}", "object": "chat.completion", "created": int(time.time()),
                "model": str(body.get("model")) + MODEL_VERSION_SUFFIX,
                "choices": [{"index": 0, "message": message,
                             "finish_reason": "tool_calls" if tool else "stop"}],
                "usage": {"prompt_tokens": tin, "completion_tokens": tout,
                          "total_tokens": tin + tout}}

    @staticmethod
    def _responses(body: dict[str, Any], tool: str | None, tin: int, tout: int
                   ) -> dict[str, Any]:
        if tool:
            output: list[dict[str, Any]] = [{
                "type": "function_call", "id": "fc_1", "call_id": "call_weather_1",
                "name": tool, "arguments": json.dumps(TOOL_ARGUMENTS), "status": "completed"}]
        else:
            output = [{"type": "message", "id": "msg_1", "role": "assistant",
                       "status": "completed", "content": [
                           {"type": "output_text", "text": ANSWER, "annotations": []}]}]
        return {"id": f"resp_{tin}", "object": "response", "created_at": int(time.time()),
                "model": str(body.get("model")) + MODEL_VERSION_SUFFIX, "status": "completed",
                "output": output, "parallel_tool_calls": True, "tool_choice": "auto",
                "tools": body.get("tools") or [], "instructions": body.get("instructions"),
                "usage": {"input_tokens": tin, "output_tokens": tout, "total_tokens": tin + tout,
                          "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens_details": {"reasoning_tokens": 0}}}

    @staticmethod
    def _anthropic(body: dict[str, Any], tool: str | None, tin: int, tout: int
                   ) -> dict[str, Any]:
        content: list[dict[str, Any]] = (
            [{"type": "tool_use", "id": "toolu_weather_1", "name": tool,
              "input": TOOL_ARGUMENTS}] if tool else [{"type": "text", "text": ANSWER}])
        return {"id": f"msg_{tin}", "type": "message", "role": "assistant",
                "model": str(body.get("model")) + MODEL_VERSION_SUFFIX, "content": content,
                "stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": tin, "output_tokens": tout}}

    @staticmethod
    def _gemini(model: str, tool: str | None, tin: int, tout: int) -> dict[str, Any]:
        parts = ([{"functionCall": {"name": tool, "args": TOOL_ARGUMENTS}}] if tool
                 else [{"text": ANSWER}])
        return {"candidates": [{"content": {"role": "model", "parts": parts},
                                "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": tin, "candidatesTokenCount": tout,
                                  "totalTokenCount": tin + tout},
                "modelVersion": model + MODEL_VERSION_SUFFIX}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeProviders:
    """The server as a subprocess: ``with FakeProviders() as fake: fake.url``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FakeProviders:
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()),
                                         "--port", str(self.port)])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/_requests", timeout=1).ok:
                    return self
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("the fake providers server did not start")

    def __exit__(self, *exc: Any) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def requests(self) -> list[dict[str, Any]]:
        return list(requests.get(f"{self.url}/_requests", timeout=5).json())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8777)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
