"""A loopback HTTP proxy that drops connections mid-answer, to test what a client does when
Label Studio goes away halfway through a listing or a download.

It runs as a thread in the test process, forwards each request to the real upstream server
(one request per connection: it answers with ``Connection: close``) and, for the requests
its rule picks, sends the status line, the headers and only half of the body before closing
the connection: the client sees a connection that broke mid-stream, as when a server is
killed or a network drops.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

# (index of the request among all the proxy saw, starting at 1; request line) -> cut it?
CutRule = Callable[[int, str], bool]


def cut_from_nth(fragment: str, n: int) -> CutRule:
    """Cut the ``n``-th request whose request line contains ``fragment`` and every later
    one (the SDK retries a broken request: the retries must break too)."""
    seen = 0
    lock = threading.Lock()

    def rule(_index: int, line: str) -> bool:
        nonlocal seen
        if fragment not in line:
            return False
        with lock:
            seen += 1
            return seen >= n

    return rule


def _read_head(sock: socket.socket, buffer: bytes = b"") -> tuple[bytes, bytes]:
    """(head up to and including the blank line, what was read after it)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return buffer, b""
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def _with_close(head: bytes) -> bytes:
    """The same head with ``Connection: close`` instead of any Connection header."""
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    kept = [lines[0]] + [h for h in lines[1:]
                         if not h.lower().startswith((b"connection:", b"keep-alive:"))]
    return b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n"


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
        if name.strip().lower() == b"transfer-encoding":
            raise NotImplementedError("chunked request bodies are not forwarded")
    return 0


class CuttingProxy:
    """``with CuttingProxy("http://127.0.0.1:8080", rule) as proxy: ... proxy.url``.

    ``requests`` lists every request line seen, ``cut`` the ones whose answer was cut.
    """

    def __init__(self, upstream: str, rule: CutRule) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rule = rule
        self.requests: list[str] = []
        self.cut: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="cutting-proxy")

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, client: socket.socket) -> None:
        head, body = _read_head(client)
        if not head.endswith(b"\r\n\r\n"):
            return
        length = _content_length(head)
        while len(body) < length:
            chunk = client.recv(65536)
            if not chunk:
                return
            body += chunk
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        with self._lock:
            self.requests.append(line)
            index = len(self.requests)
        cut = self.rule(index, line)
        with socket.create_connection(self.upstream, timeout=120) as upstream:
            upstream.sendall(_with_close(head) + body)
            answer = b""
            while True:
                chunk = upstream.recv(65536)
                if not chunk:
                    break
                answer += chunk
        answer_head, blank, answer_body = answer.partition(b"\r\n\r\n")
        answer_head += blank
        if not cut:
            client.sendall(_with_close(answer_head) + answer_body)
            return
        with self._lock:
            self.cut.append(line)
        if len(answer_body) > 1:
            client.sendall(_with_close(answer_head) + answer_body[:len(answer_body) // 2])
        else:
            client.sendall(answer_head[:len(answer_head) // 2])
        client.shutdown(socket.SHUT_RDWR)

