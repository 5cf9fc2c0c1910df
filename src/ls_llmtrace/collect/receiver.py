"""The OTLP/HTTP receiver (Flask): ``POST /v1/traces`` and ``POST /v1/logs``.

Answers as the OTLP/HTTP specification says: 200 with the ``Export*ServiceResponse`` in
the request's encoding (``partial_success`` with the refused count and why, when some
spans or log records had bad ids); 400 a body that cannot be read; 401 a missing or wrong
bearer token; 413 a body over ``LS_LLMTRACE_COLLECT_MAX_BODY_MB`` (after gzip too); 415
an unknown content type or encoding; 429 with ``Retry-After`` while more than
``LS_LLMTRACE_COLLECT_MAX_PENDING`` items wait to be assembled; 503 with ``Retry-After``
when the store cannot take the write now. The 200 goes out only after the items are
committed to the store's spool.

Each server thread has its own store connection. ``GET /health`` needs no token.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from ls_llmtrace import settings
from ls_llmtrace.collect.payloads import (
    PayloadError,
    decode,
    media_type,
    reject_message,
    split,
    status,
    success,
    unpack,
)
from ls_llmtrace.errors import ConfigError, StoreError
from ls_llmtrace.store import Store

log = logging.getLogger("ls_llmtrace.collect")


class _Buffer:
    """How many items wait for the assembler, read from the store at most every
    ``ttl`` seconds (plus what this process accepted since)."""

    def __init__(self, ttl: float = 0.5) -> None:
        self.ttl = ttl
        self.lock = threading.Lock()
        self.count = 0
        self.read_at = 0.0

    def pending(self, store: Store) -> int:
        with self.lock:
            if time.monotonic() - self.read_at > self.ttl:
                self.count = store.spool_pending()
                self.read_at = time.monotonic()
            return self.count

    def add(self, n: int) -> None:
        with self.lock:
            self.count += n


def create_app(store_url: str | None = None, token: str | None = None,
               no_auth: bool = False, busy_timeout: float = 5.0) -> Flask:
    """The receiver. Closed by default: without ``token`` (or LS_LLMTRACE_COLLECT_TOKEN)
    it refuses to be created unless ``no_auth``. ``busy_timeout``: how long a spool write
    waits for another writer before the answer is 503."""
    token = token or settings.collect_token()
    if not token and not no_auth:
        raise ConfigError("collect needs a bearer token: set LS_LLMTRACE_COLLECT_TOKEN "
                          "(exporters send `Authorization: Bearer <token>`), or pass "
                          "--no-auth to listen on loopback without one")
    app = Flask("ls_llmtrace.collect")
    local = threading.local()
    buffer = _Buffer()
    # One spool writer at a time in this process: threads queue on this lock instead of
    # on SQLite's busy handler, which sleeps up to 100 ms between tries.
    writing = threading.Lock()
    stats = {"accepted": 0, "rejected": 0, "requests": 0}
    app.config["collect_stats"] = stats

    def store() -> Store:
        found = getattr(local, "store", None)
        if found is None:
            found = local.store = Store(store_url, busy_timeout=busy_timeout)
        return found

    def error(http_status: int, message: str, media: str | None = None,
              retry_after: int | None = None) -> Response:
        body, kind = status(media, http_status, message)
        response = Response(body, status=http_status, content_type=kind)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        return error(exc.code or 500, exc.description or exc.name)

    @app.get("/health")
    def health() -> Response:
        return Response(b'{"status":"ok"}', content_type="application/json")

    def export(signal: str) -> Response:
        media = media_type(request.content_type)
        limit = settings.collect_max_body_bytes()
        if request.content_length is not None and request.content_length > limit:
            response = error(413, f"the body ({request.content_length} bytes) is larger "
                                  f"than LS_LLMTRACE_COLLECT_MAX_BODY_MB ({limit} bytes)",
                             media)
            response.headers["Connection"] = "close"  # its body is not read
            return response
        raw = request.stream.read(limit + 1)  # a chunked body is cut at the limit too
        if token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return error(401, "missing or wrong bearer token (Authorization: Bearer "
                                  "<LS_LLMTRACE_COLLECT_TOKEN>)", media)
        if media is None:
            return error(415, f"Content-Type {request.content_type!r} is not supported: "
                              "send application/x-protobuf or application/json")
        try:
            db = store()
            if buffer.pending(db) >= settings.collect_max_pending():
                retry = settings.collect_retry_after_s()
                return error(429, "the buffer is full (LS_LLMTRACE_COLLECT_MAX_PENDING "
                                  f"items wait to be assembled): retry in {retry} s",
                             media, retry)
        except StoreError as exc:
            return error(503, f"the store is not available: {exc}", media,
                         settings.collect_retry_after_s())
        try:
            if len(raw) > limit:
                raise PayloadError(413, f"the body is larger than "
                                        f"LS_LLMTRACE_COLLECT_MAX_BODY_MB ({limit} bytes)")
            body = unpack(raw, request.headers.get("Content-Encoding"), limit)
            parts = split(signal, decode(signal, media, body))
        except PayloadError as exc:
            return error(exc.status, exc.message, media)
        try:
            with writing:
                added = db.spool(parts.items, parts.rejects, time.time())
        except StoreError as exc:
            log.warning("spool write failed: %s", exc)
            return error(503, f"the store cannot take the write now: {exc}", media,
                         settings.collect_retry_after_s())
        buffer.add(added)
        stats["requests"] += 1
        stats["accepted"] += len(parts.items)
        stats["rejected"] += len(parts.rejects)
        message = reject_message(parts.rejects) if parts.rejects else ""
        if parts.rejects:
            log.warning("%s: %s", signal, message)
        return Response(success(signal, media, len(parts.rejects), message), status=200,
                        content_type=media)

    @app.post("/v1/traces")
    def traces() -> Response:
        return export("traces")

    @app.post("/v1/logs")
    def logs() -> Response:
        return export("logs")

    return app


def describe(app: Flask) -> dict[str, Any]:
    """What the receiver did so far (requests answered 200, items kept and refused)."""
    return dict(app.config["collect_stats"])
