"""The ML backend: Label Studio's ML-backend protocol over a judge, as a Flask 3 app.

Routes: ``/health``, ``/setup``, ``/predict``, ``/webhook``, ``/versions``, ``/metrics``.
Predictions are built for the controls found in the label config Label Studio sends (not
hard-coded). ``model_version`` is the judge's identity and version plus the schema
version, the same from ``/setup`` and on every prediction, so Label Studio's "retrieve
predictions" skips tasks this judge has already predicted.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException

from . import settings
from .judges import Judge, RuleJudge
from .labelconfig import (
    EXPLANATION,
    SCORE,
    VERDICT,
    Control,
    parse_controls,
    schema_version_of,
)

log = logging.getLogger("ls_llmtrace.backend")
MAX_REQUEST_BYTES = 50 * 1024 * 1024
WEBHOOK_SECRET_HEADER = "X-LLMTrace-Secret"


def model_version(judge: Judge, config: str | None) -> str:
    schema = schema_version_of(config or "") or "unknown-schema"
    return f"{judge.name}-v{judge.version}@{schema}"


def prediction_for(judge: Judge, task: dict[str, Any], controls: dict[str, Control],
                   version: str) -> dict[str, Any] | None:
    """One task -> one prediction in Label Studio's format, or None."""
    verdict_control = controls.get(VERDICT)
    if verdict_control is None:
        return None
    verdict = judge.judge(task.get("data") or {})
    if verdict is None or verdict.label not in verdict_control.values:
        return None
    result: list[dict[str, Any]] = [{
        "from_name": VERDICT, "to_name": verdict_control.to_name, "type": "choices",
        "value": {"choices": [verdict.label]},
    }]
    if SCORE in controls:
        result.append({"from_name": SCORE, "to_name": controls[SCORE].to_name,
                       "type": "number", "value": {"number": round(verdict.score, 4)}})
    if EXPLANATION in controls:
        result.append({"from_name": EXPLANATION, "to_name": controls[EXPLANATION].to_name,
                       "type": "textarea", "value": {"text": [verdict.explanation]}})
    return {"result": result, "score": round(verdict.confidence, 4), "model_version": version}


def _judge_labels(controls: dict[str, Control]) -> tuple[str, str]:
    values = controls[VERDICT].values if VERDICT in controls else ("pass", "fail")
    passing = next((v for v in values if v == "pass"), values[0])
    failing = next((v for v in values if v == "fail"), values[-1])
    return passing, failing


def create_app(judge: Judge | None = None) -> Flask:
    app = Flask("ls_llmtrace.backend")
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    state: dict[str, Any] = {"judge": judge, "config": None}
    metrics: Counter[str] = Counter()
    lock = threading.Lock()

    def current_judge(config: str | None) -> Judge:
        if state["judge"] is not None:
            given: Judge = state["judge"]
            return given
        # The default rule judge answers in the labels of the config it is asked about.
        passing, failing = _judge_labels(parse_controls(config) if config else {})
        return RuleJudge(passing, failing)

    def json_body() -> dict[str, Any]:
        body = request.get_json(force=True, silent=True)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        return body

    @app.before_request
    def _auth() -> Response | None:
        metrics["requests"] += 1
        if request.path == "/webhook":
            secret = settings.webhook_secret()
            given = request.headers.get(WEBHOOK_SECRET_HEADER, "")
            if secret and not _same(given, secret):
                metrics["auth_failures"] += 1
                return _error(401, "missing or wrong webhook secret")
            return None
        expected = settings.backend_basic_auth()
        if expected:
            auth = request.authorization
            if (auth is None or not _same(auth.username or "", expected[0])
                    or not _same(auth.password or "", expected[1])):
                metrics["auth_failures"] += 1
                response = _error(401, "authentication required")
                response.headers["WWW-Authenticate"] = 'Basic realm="ls-llmtrace"'
                return response
        return None

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and exc.code is not None and exc.code < 500:
            return _error(exc.code, exc.description or "request refused")
        if isinstance(exc, ET.ParseError):
            return _error(400, "the label config is not valid XML")
        log.error("backend error on %s: %s", request.path, exc.__class__.__name__)
        metrics["failures"] += 1
        return _error(500, "internal error (see the backend log)")

    @app.get("/health")
    def health() -> Response:
        return jsonify({"status": "UP", "model_class": "LLMTraceJudge"})

    @app.post("/setup")
    def setup() -> Response:
        body = json_body()
        config = body.get("schema")
        with lock:
            state["config"] = config
        return jsonify({"model_version": model_version(current_judge(config), config)})

    @app.get("/versions")
    def versions() -> Response:
        judge_now = current_judge(state["config"])
        return jsonify({"versions": [model_version(judge_now, state["config"])]})

    @app.post("/predict")
    def predict() -> Response:
        started = time.monotonic()
        body = json_body()
        config = body.get("label_config") or state["config"] or ""
        controls = parse_controls(config) if config else {}
        judge_now = current_judge(config)
        version = model_version(judge_now, config)
        results = []
        for task in body.get("tasks") or []:
            try:
                if not isinstance(task, dict):
                    raise TypeError("a task must be a JSON object")
                prediction = prediction_for(judge_now, task, controls, version)
            except Exception as exc:  # one task's failure never fails the batch
                task_id = task.get("id") if isinstance(task, dict) else None
                log.warning("no prediction for task %s: %s", task_id, exc.__class__.__name__)
                metrics["failures"] += 1
                prediction = None
            if prediction is None:
                metrics["tasks_without_prediction"] += 1
                # keep one entry per task so Label Studio keeps the batch aligned
                prediction = {"result": [], "score": 0.0, "model_version": version}
            else:
                metrics["predictions"] += 1
            results.append(prediction)
        metrics["predict_seconds_ms"] += int((time.monotonic() - started) * 1000)
        return jsonify({"results": results, "model_version": version})

    @app.post("/webhook")
    def webhook() -> Response:
        body = json_body()
        metrics[f"webhook_{str(body.get('action', 'unknown')).lower()}"] += 1
        return jsonify({"status": "ok"})

    @app.get("/metrics")
    def metrics_route() -> Response:
        return jsonify(dict(metrics))

    return app


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that also works for non-ASCII text."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response
