"""The Feedback API (Flask 3): feedback signals in over HTTP, and an optional Label Studio
webhook that triggers a sync.

``POST /feedback``
    One item (a JSON object), a batch (a JSON array) or ``{"items": [...]}``; each item
    is a feedback signal of :mod:`ls_llmtrace.records.feedback` (``channel``: thumbs, support,
    qa or evaluator). Needs ``Authorization: Bearer <LS_LLMTRACE_FEEDBACK_TOKEN>``.
    Answers ``{"ids": [...], "rejected": [{"index", "reason"}], ...}``: one id per item,
    in order (``null`` for a rejected item). 200 when at least one item was accepted,
    422 when none was. Idempotent: the id is the signal's natural key.

``POST /ls-webhook``
    For a Label Studio project webhook (annotation created/updated/deleted) with the
    header ``X-LLMTrace-Secret: <LS_LLMTRACE_SYNC_WEBHOOK_SECRET>``. Answers 202 at once
    (Label Studio waits at most 1 s) and syncs that project in the background; webhooks
    that arrive during a sync coalesce into one more run. The cursor sync stays the source
    of truth: a lost webhook only delays records until the next sync.

``GET /health``
    ``{"status": "UP"}``.

Every answer is JSON, errors too (``{"error": ...}``, also for 404, 405, 413 and 500).
A body above ``LS_LLMTRACE_FEEDBACK_MAX_BODY_MB`` (chunked or not) gets 413; a body that
is not JSON, or nests deeper than Python's JSON reader goes, gets 400. Within a batch each
item stands alone: one that cannot be read, mapped or stored (a wrong type, a date out of
range, a lone surrogate, metadata nested deeper than ``LS_LLMTRACE_STORED_MAX_DEPTH``) is rejected
with its reason and the others are written.

Serve it with ``ls-llmtrace feedback serve`` or any WSGI server:
``gunicorn 'ls_llmtrace.records.feedbackapi:create_app()'``.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ls_llmtrace import settings
from ls_llmtrace.errors import LLMTraceError
from ls_llmtrace.records.feedback import FeedbackMapping, ingest, load_mapping
from ls_llmtrace.schema.model import AnnotationSchema, load_schema_dir
from ls_llmtrace.store import Store

log = logging.getLogger(__name__)
MAX_BATCH = 10_000


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class SyncTrigger:
    """Runs ``run(project_id)`` in one background thread; requests that arrive while it
    runs are coalesced (each project is synced once more, not once per webhook)."""

    def __init__(self, run: Callable[[int], None]) -> None:
        self._run = run
        self._lock = threading.Lock()
        self._pending: set[int] = set()
        self._worker: threading.Thread | None = None
        self.runs = 0
        self.failures = 0

    def request(self, project_id: int) -> None:
        with self._lock:
            self._pending.add(project_id)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._loop, daemon=True,
                                                name="llmtrace-sync")
                self._worker.start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._worker = None
                    return
                project_id = self._pending.pop()
            try:
                self._run(project_id)
                self.runs += 1
            except LLMTraceError as exc:  # says what to do: one line, no traceback
                self.failures += 1
                log.error("webhook-triggered sync of project %s failed: %s", project_id, exc)
            except Exception:  # a failed sync must not kill the worker; the cursor is safe
                self.failures += 1
                log.exception("webhook-triggered sync of project %s failed", project_id)

    def wait(self, timeout: float = 60.0) -> None:
        worker = self._worker
        if worker is not None:
            worker.join(timeout)


def default_sync_runner(store_url: str | None, schemas: dict[tuple[str, int], AnnotationSchema],
                        ) -> Callable[[int], None]:
    def run(project_id: int) -> None:
        from ls_llmtrace.labelstudio.connect import resolve_client  # (the SDK is slow to import)
        from ls_llmtrace.records.sync import sync_all

        with Store(store_url) as store:
            sync_all(resolve_client(), store, schemas, [project_id])

    return run


def _schema_for(mapping: FeedbackMapping, schemas: dict[tuple[str, int], AnnotationSchema],
                ) -> AnnotationSchema | None:
    schema = schemas.get((mapping.schema_ref.id, mapping.schema_ref.version))
    if schema is not None:
        mapping.check_against(schema)
    return schema


def create_app(store_url: str | None = None, mapping: FeedbackMapping | None = None,
               schemas_dir: str | Path = "label_configs",
               sync_runner: Callable[[int], None] | None = None) -> Flask:
    """The Feedback API. Settings (tokens, secret) are read on every request."""
    mapping = mapping or load_mapping()
    schemas = load_schema_dir(schemas_dir) if Path(schemas_dir).is_dir() else {}
    schema = _schema_for(mapping, schemas)
    trigger = SyncTrigger(sync_runner or default_sync_runner(store_url, schemas))
    app = Flask("ls_llmtrace.records.feedbackapi")
    app.extensions["llmtrace_sync"] = trigger

    def error(status: int, message: str) -> Response:
        response = jsonify({"error": message})
        response.status_code = status
        return response

    @app.before_request
    def _limit_body() -> None:
        # Werkzeug refuses a longer Content-Length (413) but cuts a chunked body short at
        # the limit without a word: one byte more tells read_json the body went past it.
        request.max_content_length = settings.feedback_max_body_bytes() + 1

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        if exc.code == 413:
            return error(413, "the body is larger than LS_LLMTRACE_FEEDBACK_MAX_BODY_MB "
                              f"({settings.feedback_max_body_bytes()} bytes): split the batch")
        return error(exc.code or 500, f"{exc.name}: {exc.description}")

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> Response:
        log.exception("the Feedback API failed on %s %s", request.method, request.path)
        return error(500, f"internal error ({type(exc).__name__}); the server log has the "
                          "details")

    def read_json() -> tuple[Any, str | None]:
        data = request.get_data(cache=False)
        if len(data) > settings.feedback_max_body_bytes():
            raise RequestEntityTooLarge()
        try:
            return json.loads(data.decode("utf-8")), None
        except UnicodeDecodeError as exc:
            return None, f"the body is not UTF-8 ({exc.reason} at byte {exc.start})"
        except json.JSONDecodeError as exc:
            return None, f"the body is not JSON ({exc.msg} at line {exc.lineno} column " \
                         f"{exc.colno})"
        except RecursionError:
            return None, "the body nests too deep to read"

    @app.get("/health")
    def health() -> Response:
        return jsonify({"status": "UP"})

    @app.post("/feedback")
    def feedback() -> Response:
        token = settings.feedback_token()
        if not token:
            return error(503, "the Feedback API has no token: set LS_LLMTRACE_FEEDBACK_TOKEN "
                              "on the server")
        given = request.headers.get("Authorization", "")
        if not given.startswith("Bearer ") or not _same(given[7:].strip(), token):
            return error(401, "missing or wrong bearer token (Authorization: Bearer <token>)")
        body, problem = read_json()
        if problem is not None or body is None:
            return error(400, f"{problem or 'the body is empty'}: send JSON (Content-Type: "
                              "application/json): one feedback object, an array of them, "
                              "or {\"items\": [...]}")
        if isinstance(body, dict) and set(body) == {"items"}:
            body = body["items"]
        items: list[Any] = body if isinstance(body, list) else [body]
        if not items:
            return error(400, "an empty batch: send at least one feedback item")
        if len(items) > MAX_BATCH:
            return error(413, f"at most {MAX_BATCH} items per request: split the batch")
        try:
            with Store(store_url) as store:
                result = ingest(store, ((f"request:{i}", item) for i, item in
                                        enumerate(items)), mapping, schema)
        except LLMTraceError as exc:
            return error(500, str(exc))
        rejected = [{"index": int(r.where.split(":")[1]), "reason": r.reason}
                    for r in result.rejected]
        response = jsonify({"ids": result.ids, "written": result.written,
                            "unchanged": result.unchanged,
                            "waiting_for_trace": result.waiting_for_trace,
                            "rejected": rejected})
        response.status_code = 200 if len(rejected) < len(items) else 422
        return response

    @app.post("/ls-webhook")
    def ls_webhook() -> Response:
        secret = settings.sync_webhook_secret()
        if not secret:
            return error(503, "webhook syncs are off: set LS_LLMTRACE_SYNC_WEBHOOK_SECRET and "
                              "send it in the X-LLMTrace-Secret header")
        if not _same(request.headers.get("X-LLMTrace-Secret", ""), secret):
            return error(401, "missing or wrong X-LLMTrace-Secret header")
        body = read_json()[0] or {}
        project = body.get("project") if isinstance(body, dict) else None
        project_id = project.get("id") if isinstance(project, dict) else project
        if isinstance(project_id, bool) or not isinstance(project_id, int):
            return error(400, "the webhook payload names no project (project.id)")
        trigger.request(project_id)
        response = jsonify({"sync": "scheduled", "project": project_id})
        response.status_code = 202
        return response

    return app
