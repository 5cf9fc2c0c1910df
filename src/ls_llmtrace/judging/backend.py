"""The ML backend: Label Studio's ML-backend protocol over a judge, as a Flask 3 app.

Routes: ``/health``, ``/setup``, ``/predict`` (batch and interactive), ``/webhook``,
``/versions``, ``/metrics``. Predictions are built for the controls found in the label
config Label Studio sends (not hard-coded). ``model_version`` is the judge's identity and
version plus the schema version, the same from ``/setup`` and on every prediction, so
Label Studio's "retrieve predictions" skips tasks this judge has already predicted.

Which judge (``LS_LLMTRACE_JUDGE``): the LLM judge when an endpoint is configured, else the
learned evaluator trained on the reviewers' labels in the store, which answers with the
rule judge until it has enough labels. The schema file (the rubric) of a config is found
in ``LS_LLMTRACE_SCHEMA_DIR`` by the schema version id in the config's header.

One task's failure leaves that task without a prediction (an empty list in its place, so
Label Studio keeps the batch aligned, stores nothing for it and asks again next time),
logged and counted; it never fails the batch.

Time: a ``/predict`` answers within ``LS_LLMTRACE_PREDICT_BUDGET_S`` (default 60 s; Label
Studio gives up at 100 s) whatever the provider does. Each task runs under that deadline
(the LLM client cuts an exchange when it passes, see ``judges/llm.py``); the tasks judged
by then are returned, the others get no prediction and are asked again next time. At
most ``LS_LLMTRACE_BACKEND_PREDICT_SLOTS`` requests judge at once; one more is answered at
once with no predictions, so gunicorn always has a thread for ``/health``.

Closed by default: without credentials (basic auth or a bearer token) the app refuses to
start unless ``LS_LLMTRACE_BACKEND_OPEN=1`` says otherwise (a warning at start). Bodies
are bounded (chunked ones too), and must be JSON objects no deeper than
:data:`MAX_JSON_DEPTH`: anything else is a 400 naming the problem.

A broken judge cache or learned-evaluator file never makes a 500: the judge runs
without the cache, the rule judge answers for the learned one, and ``/metrics`` says so
under ``degraded``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge

from ls_llmtrace import settings
from ls_llmtrace.errors import ConfigError, LLMTraceError
from ls_llmtrace.judging.judges import Judge, Metrics, RuleJudge, pass_fail_labels
from ls_llmtrace.judging.judges.base import deadline
from ls_llmtrace.judging.judges.cache import VerdictCache
from ls_llmtrace.judging.judges.learned import LearnedJudge, LearnedRegistry
from ls_llmtrace.judging.predictions import to_results
from ls_llmtrace.labelstudio.results import ConfigSpec, parse_config
from ls_llmtrace.schema.labelconfig import schema_version_of
from ls_llmtrace.schema.model import AnnotationSchema, find_schema_version

if TYPE_CHECKING:
    from ls_llmtrace.labelstudio.client import LabelStudioClient

log = logging.getLogger("ls_llmtrace.backend")
MAX_JSON_DEPTH = 64  # Label Studio's tasks are a few levels deep; deeper is refused (400)
WEBHOOK_SECRET_HEADER = "X-LLMTrace-Secret"
RETRAIN_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED",
                   "ANNOTATIONS_DELETED", "START_TRAINING"}
_VERSION_ID = re.compile(r"^([a-z0-9][a-z0-9_\-]*)@v(\d+)$")


def model_version(judge: Judge, config: str | None) -> str:
    schema = schema_version_of(config or "") or "unknown-schema"
    return f"{judge.name}-v{judge.version}@{schema}"


def split_version_id(version_id: str | None) -> tuple[str, int] | None:
    match = _VERSION_ID.match(version_id or "")
    return (match.group(1), int(match.group(2))) if match else None


def find_schema(version_id: str | None) -> AnnotationSchema | None:
    """The schema file of a version id (``default@v1``) in ``LS_LLMTRACE_SCHEMA_DIR``."""
    parts = split_version_id(version_id)
    if parts is None:
        return None
    try:
        return find_schema_version(settings.schema_dir(), *parts)
    except LLMTraceError as exc:
        log.warning("schema %s not usable: %s", version_id, exc)
        return None


def prediction_for(judge: Judge, task: dict[str, Any], spec: ConfigSpec,
                   version: str) -> dict[str, Any] | None:
    """One task -> one prediction in Label Studio's format, or None."""
    if spec.verdict is None:
        return None
    data = task.get("data") or {}
    verdict = judge.judge(data)
    if verdict is None:
        return None
    result = to_results(spec, verdict, data, version)
    if not result:
        return None
    return {"result": result, "score": round(verdict.confidence, 4), "model_version": version}


class JudgeProvider:
    """Picks and builds the judge for a label config; owns the cache and the models."""

    def __init__(self, metrics: Metrics, judge: Judge | None = None) -> None:
        self.metrics = metrics
        self.fixed = judge
        self._lock = threading.Lock()
        self._llm: dict[str, Judge] = {}
        self._cache: VerdictCache | None = None
        self.learned = LearnedRegistry(settings.home() / "learned", settings.learned_min_labels())
        self.degraded: dict[str, str] = {}  # part -> why it is not used (shown in /metrics)

    def _degrade(self, part: str, why: str) -> None:
        with self._lock:
            first = self.degraded.get(part) != why
            self.degraded[part] = why
        self.metrics.incr(f"degraded_{part}")
        if first:
            log.warning("%s unusable (%s); going on without it", part, why)

    def _recovered(self, part: str) -> None:
        with self._lock:
            self.degraded.pop(part, None)

    def cache(self) -> VerdictCache | None:
        """The verdict cache, or None when off or unusable (a broken file: the judge
        runs without a cache and ``degraded`` says so)."""
        path = settings.judge_cache_path()
        if path is None:
            return None
        with self._lock:
            current = self._cache
        if current is not None and current.path == path:
            return current
        try:
            opened = VerdictCache(path)
        except LLMTraceError as exc:
            self._degrade("judge_cache", str(exc))
            return None
        with self._lock:
            self._cache = opened
        self._recovered("judge_cache")
        return opened

    def judge_for(self, config: str | None, refresh: bool = False) -> Judge:
        if self.fixed is not None:
            return self.fixed
        spec = parse_config(config) if config else parse_config("<View/>")
        passing, failing = pass_fail_labels(spec.verdict_values)
        rules = RuleJudge(passing, failing)
        kind = settings.judge_kind()
        if kind == "rules" or not config:
            return rules
        if kind == "learned":
            return self._learned(spec, passing, refresh) or rules
        if kind == "llm":
            return self._llm_judge(config, spec, refresh)
        raise ConfigError(f"unknown judge {kind!r} in LS_LLMTRACE_JUDGE: use auto, llm, "
                          "learned or rules")

    def _learned(self, spec: ConfigSpec, passing: str, refresh: bool) -> Judge | None:
        from ls_llmtrace.store import Store

        parts = split_version_id(spec.schema_version)
        if parts is None:
            return None
        try:
            trained = (self.learned.refresh(Store, *parts) if refresh
                       else self.learned.get(Store, *parts))
        except Exception as exc:  # a broken model or state file: the rule judge answers
            self._degrade("learned", f"{_describe(exc)}; the rule judge answers")
            return None
        self._recovered("learned")
        if trained is None or not set(trained.model.labels) <= set(spec.verdict_values):
            return None
        return LearnedJudge(trained, passing)

    def _llm_judge(self, config: str, spec: ConfigSpec, refresh: bool) -> Judge:
        from ls_llmtrace.judging.judges.fewshot import few_shot_cases
        from ls_llmtrace.judging.judges.llm import ChatClient, LLMConfig, LLMJudge

        key = hashlib.sha256(config.encode("utf-8")).hexdigest()
        with self._lock:
            if not refresh and key in self._llm:
                return self._llm[key]
        schema = find_schema(spec.schema_version)
        calibrated = _llm_calibration(spec.schema_version)
        client = ChatClient(LLMConfig.from_settings(), self.metrics)
        if calibrated is not None:
            judge = LLMJudge(spec, schema, calibrated.get("few_shot_cases") or [], client,
                             self.cache(), len(calibrated.get("few_shot_cases") or []),
                             calibrated.get("rubric_examples") or None,
                             calibrated.get("threshold"))
        else:
            judge = LLMJudge(spec, schema, few_shot_cases(schema), client, self.cache(),
                             settings.judge_few_shot())
        with self._lock:
            self._llm[key] = judge
        return judge


def _llm_calibration(version_id: str | None) -> dict[str, Any] | None:
    """The params of the store's active LLM-judge calibration of a schema version (chosen
    few-shot cases, rubric examples, threshold), or None (also when the store is not
    reachable: the uncalibrated judge answers, and the log says why)."""
    from ls_llmtrace.store import Store

    parts = split_version_id(version_id)
    if parts is None:
        return None
    try:
        with Store() as store:
            found = store.active_calibration("llm", *parts)
    except LLMTraceError as exc:
        log.warning("no calibration read for %s: %s", version_id, exc)
        return None
    return found.params if found is not None else None


class Retrainer:
    """Retrains the learned evaluator in the background (webhooks must answer in 1 s).

    Sync first when the backend has Label Studio credentials (``LS_LLMTRACE_LS_TOKEN``),
    so the new annotation is in the store; otherwise train from what the store holds.
    """

    def __init__(self, provider: JudgeProvider, metrics: Metrics) -> None:
        self.provider = provider
        self.metrics = metrics
        self._lock = threading.Lock()
        self._running = False
        self._again = False
        self._projects: set[int] = set()
        self._versions: set[str] = set()

    def request(self, project_id: int | None, schema_version: str | None) -> None:
        with self._lock:
            if project_id is not None:
                self._projects.add(project_id)
            if schema_version:
                self._versions.add(schema_version)
            if self._running:
                self._again = True
                return
            self._running = True
        threading.Thread(target=self._run, name="retrain", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                projects, self._projects = self._projects, set()
                versions, self._versions = self._versions, set()
                self._again = False
            try:
                self._once(projects, versions)
                self.metrics.incr("learned_retrains")
            except Exception as exc:  # a failed retrain keeps the previous model
                log.warning("retraining failed: %s", _describe(exc))
                self.metrics.incr("learned_retrain_failures")
            with self._lock:
                if not self._again:
                    self._running = False
                    return

    def _once(self, projects: set[int], versions: set[str]) -> None:
        from ls_llmtrace.records.sync import sync_all
        from ls_llmtrace.store import Store

        with Store() as store:
            client = _ls_client() if projects else None
            if client is not None:
                try:
                    sync_all(client, store, project_ids=sorted(projects))
                except ConfigError as exc:  # a project without its schema file: say so
                    log.warning("sync before retraining failed: %s", exc)
                self.metrics.incr("learned_syncs")
            targets = {p for p in (split_version_id(v) for v in versions) if p}
            targets |= set(self.provider.learned.known())
            for schema_id, version in sorted(targets):
                self.provider.learned.train(store, schema_id, version)


def _ls_client() -> LabelStudioClient | None:
    """A Label Studio client for syncing, if the backend has credentials (the one resolver
    the CLI and the Feedback API use too)."""
    from ls_llmtrace.labelstudio.connect import label_studio_from_settings

    return label_studio_from_settings()


def _describe(exc: BaseException) -> str:
    """Our own errors say what happened; anything else is named by class only, since
    its message may carry a URL, a path or a secret."""
    return str(exc) if isinstance(exc, LLMTraceError) else exc.__class__.__name__


def require_credentials() -> None:
    """Refuse to serve without credentials, unless told to run open (then warn)."""
    if settings.backend_basic_auth() or settings.backend_token():
        return
    if not settings.backend_open():
        raise ConfigError(
            "the ML backend has no credentials: set LS_LLMTRACE_BACKEND_USER and "
            "LS_LLMTRACE_BACKEND_PASSWORD (the basic auth Label Studio sends) or "
            "LS_LLMTRACE_BACKEND_TOKEN; or set LS_LLMTRACE_BACKEND_OPEN=1 to let anyone who "
            "can reach it use the judge (and the LLM key)")
    log.warning("the ML backend runs OPEN (LS_LLMTRACE_BACKEND_OPEN=1): anyone who can "
                "reach it can ask for predictions and spend the LLM key")


def json_depth_over(value: Any, limit: int) -> bool:
    """Whether a decoded JSON value nests deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list))
    return False


def create_app(judge: Judge | None = None) -> Flask:
    """The backend app; raises ConfigError without credentials (see
    :func:`require_credentials`)."""
    require_credentials()
    app = Flask("ls_llmtrace.backend")
    app.config["MAX_CONTENT_LENGTH"] = settings.backend_max_request_bytes()
    metrics = Metrics()
    provider = JudgeProvider(metrics, judge)
    retrainer = Retrainer(provider, metrics)
    state: dict[str, Any] = {"config": None}
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(settings.backend_predict_slots())
    app.extensions["ls_llmtrace"] = {"metrics": metrics, "provider": provider,
                                     "retrainer": retrainer}

    def json_body() -> dict[str, Any]:
        """The body as a JSON object: empty is ``{}``; too large is 413 (chunked bodies
        are counted as they arrive); not JSON, too deep or not an object is 400."""
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        if chunked and "wsgi.input_terminated" not in request.environ:
            # this server cannot say where a chunked body ends: refuse rather than ignore
            raise BadRequest("chunked request bodies are not supported here: send "
                             "Content-Length")
        try:
            raw = request.get_data(cache=True)
            limit = request.max_content_length
            if request.content_length is None and limit is not None and len(raw) >= limit:
                # werkzeug stops reading a chunked body at the limit, silently: the cut
                # body would be read as (broken) JSON. It is over the limit: say so.
                raise RequestEntityTooLarge(f"request body over {limit} bytes "
                                            "(LS_LLMTRACE_BACKEND_MAX_REQUEST_MB)")
        except RequestEntityTooLarge:
            metrics.incr("too_large")
            raise
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except RecursionError:
            metrics.incr("bad_json")
            raise BadRequest(f"the request body nests deeper than {MAX_JSON_DEPTH} "
                             "levels") from None
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            metrics.incr("bad_json")
            where = f" at char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
            raise BadRequest(f"the request body is not JSON ({exc.__class__.__name__}"
                             f"{where})") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        if json_depth_over(body, MAX_JSON_DEPTH):
            metrics.incr("bad_json")
            raise BadRequest(f"the request body nests deeper than {MAX_JSON_DEPTH} levels")
        return body

    @app.before_request
    def _guard() -> Response | None:
        metrics.incr("requests")
        limit = settings.backend_max_request_bytes()
        if request.content_length is not None and request.content_length > limit:
            metrics.incr("too_large")
            return _error(413, f"request body over {limit} bytes "
                               "(LS_LLMTRACE_BACKEND_MAX_REQUEST_MB)")
        request.max_content_length = limit
        if request.path == "/webhook":
            secret = settings.webhook_secret()
            given = request.headers.get(WEBHOOK_SECRET_HEADER, "")
            if secret and not _same(given, secret):
                metrics.incr("auth_failures")
                return _error(401, "missing or wrong webhook secret")
            return None
        basic = settings.backend_basic_auth()
        token = settings.backend_token()
        if not basic and not token and settings.backend_open():
            return None
        credentials = _basic_credentials(request.headers.get("Authorization", ""))
        if basic and credentials is not None and _same(credentials[0], basic[0]) \
                and _same(credentials[1], basic[1]):
            return None
        if token:
            header = request.headers.get("Authorization", "")
            if header.startswith("Bearer ") and _same(header[7:].strip(), token):
                return None
        metrics.incr("auth_failures")
        response = _error(401, "authentication required")
        response.headers["WWW-Authenticate"] = ('Basic realm="ls-llmtrace"' if basic
                                                else 'Bearer realm="ls-llmtrace"')
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and exc.code is not None and exc.code < 500:
            return _error(exc.code, exc.description or "request refused")
        if isinstance(exc, ET.ParseError):
            return _error(400, "the label config is not valid XML")
        log.error("backend error on %s: %s", request.path, _describe(exc))
        metrics.incr("failures")
        return _error(500, "internal error (see the backend log)")

    @app.get("/health")
    def health() -> Response:
        return jsonify({"status": "UP", "model_class": "LLMTraceJudge"})

    @app.post("/setup")
    def setup() -> Response:
        body = json_body()
        config = body.get("schema")
        if config is not None and not isinstance(config, str):
            raise BadRequest("'schema' must be the label config as text")
        with lock:
            state["config"] = config
        judge_now = provider.judge_for(config, refresh=True)
        return jsonify({"model_version": model_version(judge_now, config)})

    @app.get("/versions")
    def versions() -> Response:
        config = state["config"]
        return jsonify({"versions": [model_version(provider.judge_for(config), config)]})

    @app.post("/predict")
    def predict() -> Response:
        started = time.monotonic()
        until = started + settings.predict_budget_s()
        body = json_body()
        config = body.get("label_config") or state["config"] or ""
        if not isinstance(config, str):
            raise BadRequest("'label_config' must be text")
        tasks = body.get("tasks") or []
        if not isinstance(tasks, list):
            raise BadRequest("'tasks' must be a list")
        metrics.incr("tasks", len(tasks))
        if not slots.acquire(blocking=False):
            # every slot is judging: "not now" at once keeps threads free for /health
            metrics.incr("predicts_busy")
            metrics.incr("tasks_without_prediction", len(tasks))
            version = model_version(provider.judge_for(config or None), config)
            return jsonify({"results": [[] for _ in tasks], "model_version": version})
        try:
            spec = parse_config(config) if config else parse_config("<View/>")
            judge_now = provider.judge_for(config or None)
            version = model_version(judge_now, config)
            results = judge_batch(judge_now, tasks, spec, version, until)
        finally:
            slots.release()
        metrics.observe_ms("predict", (time.monotonic() - started) * 1000)
        return jsonify({"results": results, "model_version": version})

    def judge_batch(judge_now: Judge, tasks: list[Any], spec: ConfigSpec, version: str,
                    until: float) -> list[dict[str, Any] | list[Any]]:
        """Judge the tasks in parallel until ``until``; a task not done by then (or
        failed) gets ``[]``: no prediction now, asked again next time."""
        def one(task: Any) -> dict[str, Any] | None:
            task_started = time.monotonic()
            task_id = task.get("id") if isinstance(task, dict) else None
            try:
                if not isinstance(task, dict):
                    raise TypeError("a task must be a JSON object")
                with deadline(until):
                    return prediction_for(judge_now, task, spec, version)
            except Exception as exc:  # one task's failure never fails the batch
                log.warning("no prediction for task %s: %s", task_id, _describe(exc))
                metrics.incr("failures")
                return None
            finally:
                metrics.observe_ms("task", (time.monotonic() - task_started) * 1000)

        if not tasks:
            return []
        workers = min(settings.judge_concurrency(), len(tasks))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge")
        try:
            futures = [pool.submit(one, task) for task in tasks]
            done, late = wait(futures, timeout=max(0.0, until - time.monotonic()))
        finally:
            # tasks not started are dropped; a running one ends by its own deadline
            pool.shutdown(wait=False, cancel_futures=True)
        if late:
            metrics.incr("tasks_over_budget", len(late))
            log.warning("%d of %d tasks not judged within the %g s budget "
                        "(LS_LLMTRACE_PREDICT_BUDGET_S): no prediction now", len(late),
                        len(tasks), settings.predict_budget_s())
        results: list[dict[str, Any] | list[Any]] = []
        for future in futures:
            prediction = future.result() if future in done else None
            if prediction is None:
                metrics.incr("tasks_without_prediction")
                results.append([])  # Label Studio stores nothing and asks again later
            else:
                metrics.incr("predictions")
                results.append(prediction)
        return results

    @app.post("/webhook")
    def webhook() -> Response:
        body = json_body()
        action = str(body.get("action", "unknown"))
        metrics.incr(f"webhook_{action.lower()}")
        retrain = action in RETRAIN_ACTIONS and judge is None \
            and settings.judge_kind() == "learned"
        if retrain:
            given = body.get("project")
            project: dict[str, Any] = given if isinstance(given, dict) else {}
            project_id = project.get("id") if isinstance(project.get("id"), int) else None
            config = project.get("label_config") or state["config"]
            retrainer.request(project_id,
                              schema_version_of(config) if isinstance(config, str) else None)
        return jsonify({"status": "ok", "retrain": "scheduled" if retrain else "no"})

    @app.get("/metrics")
    def metrics_route() -> Response:
        snapshot: dict[str, Any] = dict(metrics.snapshot())
        snapshot["learned_models"] = provider.learned.versions()
        snapshot["degraded"] = dict(provider.degraded)
        return jsonify(snapshot)

    return app


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) of a Basic header. Label Studio sends it through ``requests``,
    which encodes non-ASCII as Latin-1; browsers and curl send UTF-8: accept both."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    user, sep, password = text.partition(":")
    return (user, password) if sep else None


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that also works for non-ASCII text."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response
