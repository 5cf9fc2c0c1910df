"""Every setting in one place.

Precedence is: explicit argument > environment variable > default. Values are read at
call time (never frozen at import), so tests and long-running processes see changes.
A value that cannot be read (``LS_LLMTRACE_SYNC_PAGE_SIZE=many``) is a ``ConfigError``
that names the variable and the value expected.

| variable | default | meaning |
|---|---|---|
| ``LS_LLMTRACE_HOME`` | ``./.ls-llmtrace`` | working directory: Label Studio data, store, pid files, logs |
| ``LS_LLMTRACE_DB`` | ``sqlite:///<home>/store.sqlite`` | record store URL: ``sqlite:///path`` or ``postgresql://user:pw@host/db`` (shared) |
| ``LS_LLMTRACE_LS_URL`` | ``http://127.0.0.1:8080`` | Label Studio base URL |
| ``LS_LLMTRACE_LS_TOKEN`` | token of the managed Label Studio | API token (legacy token or personal access token) |
| ``LS_LLMTRACE_LS_PORT`` | ``8080`` | port of the managed Label Studio |
| ``LS_LLMTRACE_LS_BIN`` | ``.venvs/labelstudio/bin/label-studio`` | the ``label-studio`` executable (own virtualenv) |
| ``LS_LLMTRACE_LS_START_TIMEOUT`` | ``180`` | seconds to wait for Label Studio to answer |
| ``LS_LLMTRACE_ADMIN_EMAIL`` | ``admin@llmtrace.local`` | admin login of the managed Label Studio |
| ``LS_LLMTRACE_ADMIN_PASSWORD`` | generated on first start | admin password of the managed Label Studio |
| ``LS_LLMTRACE_BACKEND_URL`` | ``http://127.0.0.1:9090`` | ML backend URL as Label Studio reaches it |
| ``LS_LLMTRACE_BACKEND_PORT`` | ``9090`` | port of the managed ML backend |
| ``LS_LLMTRACE_BACKEND_USER`` / ``_PASSWORD`` | unset | basic auth required by the backend (Label Studio sends it) |
| ``LS_LLMTRACE_WEBHOOK_SECRET`` | unset | shared secret expected in the ``X-LLMTrace-Secret`` header on ``/webhook`` |
| ``LS_LLMTRACE_SCHEMA`` | ``label_configs/default.v1.yaml`` (searched from the current directory upwards) | schema file used when none is given |
| ``LS_LLMTRACE_SYNC_PAGE_SIZE`` | ``1000`` | tasks per page the sync reads (each page is one transaction with its cursor) |
| ``LS_LLMTRACE_SYNC_FIRST_EXPORT`` | ``1`` | ``1``: the first sync of a project reads it through a snapshot export (faster); ``0``: pages through the task list |
| ``LS_LLMTRACE_FEEDBACK_TOKEN`` | unset | bearer token the Feedback API requires (``Authorization: Bearer <token>``); the API refuses every request without it |
| ``LS_LLMTRACE_FEEDBACK_MAPPING`` | the packaged ``feedback_mapping.yaml`` | the file that maps each feedback channel onto records (copy the packaged one and edit) |
| ``LS_LLMTRACE_SYNC_WEBHOOK_SECRET`` | unset | shared secret expected in the ``X-LLMTrace-Secret`` header on the Feedback API's ``/ls-webhook`` (a Label Studio webhook that triggers a sync) |
| ``LS_LLMTRACE_BACKEND_TOKEN`` | unset | bearer token the backend also accepts (``Authorization: Bearer <token>``) on every route but ``/webhook`` |
| ``LS_LLMTRACE_BACKEND_MAX_REQUEST_MB`` | ``50`` | largest request body the backend accepts (HTTP 413 above, chunked bodies included) |
| ``LS_LLMTRACE_BACKEND_OPEN`` | ``0`` | ``1``: the backend may run without credentials (anyone who reaches it can spend the LLM key; a warning is logged at start); otherwise it refuses to start without ``LS_LLMTRACE_BACKEND_USER``/``_PASSWORD`` or ``LS_LLMTRACE_BACKEND_TOKEN`` |
| ``LS_LLMTRACE_PREDICT_BUDGET_S`` | ``60`` | seconds one ``/predict`` may take, everything included (Label Studio gives up at 100 s); tasks not judged by then get no prediction and are asked again next time |
| ``LS_LLMTRACE_BACKEND_PREDICT_SLOTS`` | ``6`` | ``/predict`` requests judged at once; one more is answered at once with no predictions ("not now"), so ``/health`` always finds one of gunicorn's 8 threads free |
| ``LS_LLMTRACE_JUDGE`` | ``auto`` | which judge the backend runs: ``llm``, ``learned`` (falls back to ``rules`` below the minimum of labels), ``rules``; ``auto`` = ``llm`` when ``LS_LLMTRACE_LLM_BASE_URL`` is set, else ``learned`` |
| ``LS_LLMTRACE_JUDGE_CONCURRENCY`` | ``8`` | tasks judged at once within one ``/predict`` batch (thread pool) |
| ``LS_LLMTRACE_JUDGE_CACHE`` | ``<home>/judge_cache.sqlite`` | verdict cache keyed by (trace content, schema version, judge version); ``off`` disables it |
| ``LS_LLMTRACE_SCHEMA_DIR`` | ``label_configs`` (searched from the current directory upwards) | where the schema files of every version live, as ``<id>.v<version>.yaml``: a queue's current version, the backend's rubric, what ``sync`` maps with |
| ``LS_LLMTRACE_QUEUE`` | ``review`` | the queue (Label Studio project) ``import``, ``predict``, ``schema push``, ``golden export`` and the demo use when no ``--queue`` is given |
| ``LS_LLMTRACE_LLM_BASE_URL`` | unset | OpenAI-compatible API base, e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1``; ``/chat/completions`` is appended |
| ``LS_LLMTRACE_LLM_MODEL`` | ``gpt-4o-mini`` | model name sent to the endpoint (part of the judge's identity) |
| ``LS_LLMTRACE_LLM_API_KEY`` | unset | sent as ``Authorization: Bearer``; never logged |
| ``LS_LLMTRACE_LLM_TEMPERATURE`` | ``0`` | sampling temperature (part of the judge's identity) |
| ``LS_LLMTRACE_LLM_TIMEOUT`` | ``30`` | seconds for one whole LLM exchange (connect, wait, reading the answer, however slowly it trickles), never beyond the ``/predict`` budget |
| ``LS_LLMTRACE_LLM_MAX_RETRIES`` | ``3`` | retries after a 429, a 5xx, a timeout or a connection error (exponential backoff; ``Retry-After`` honoured), only while they fit in the time left |
| ``LS_LLMTRACE_LLM_RETRY_BASE`` | ``0.5`` | first backoff in seconds (doubles each retry, capped at 30 s) |
| ``LS_LLMTRACE_LLM_JSON_MODE`` | ``1`` | send ``response_format: {"type": "json_object"}``; ``0`` for servers that refuse it |
| ``LS_LLMTRACE_JUDGE_GOLDEN`` | unset | golden JSONL (``ls-llmtrace golden export``) whose cases become the LLM judge's few-shot examples; unset: the store's golden cases |
| ``LS_LLMTRACE_JUDGE_FEW_SHOT`` | ``3`` | how many golden cases the LLM judge sees (``0``: none) |
| ``LS_LLMTRACE_LEARNED_MIN_LABELS`` | ``20`` | reviewer labels (with both verdicts present) the learned evaluator needs; below it the rule judge answers |
| ``LS_LLMTRACE_CALIBRATE_MIN_LABELS`` | ``100`` | human-labelled traces ``calibrate`` needs before it splits them into train/dev/test (below it: exit 4) |
| ``LS_LLMTRACE_CANDIDATE_API_KEY`` | ``LS_LLMTRACE_LLM_API_KEY`` | API key (``Authorization: Bearer``) of the endpoint ``eval run --endpoint`` generates candidates with; never logged |
| ``LS_LLMTRACE_DEBUG`` | unset | ``1`` shows tracebacks instead of one-line errors |
| ``LS_LLMTRACE_MAX_CHARS`` | ``20000`` | longest text a reviewer sees per field; longer ones are cut with a visible marker |
| ``LS_LLMTRACE_REDACT`` | unset | comma-separated redactions applied before anything goes to Label Studio: ``email,phone,api_key`` (or ``all``) |
| ``LS_LLMTRACE_REDACT_PATTERNS`` | unset | JSON list of extra regular expressions to replace with ``[redacted]`` |
| ``LS_LLMTRACE_MAX_RECORD_BYTES`` | ``67108864`` (64 MiB) | largest trace record an importer reads (a line, an array item, a whole-file JSON document or protobuf file); a larger one is rejected and the import goes on |
| ``LS_LLMTRACE_MAX_DEPTH`` | ``100`` | deepest nesting of arrays and objects in a trace record; a deeper one is rejected (memory stays bounded on adversarial input) |
| ``LS_LLMTRACE_CLAIM_LEASE_S`` | ``600`` | seconds after which an unfinished queue claim may be taken over when its import cannot be checked (another host) |
| ``LS_LLMTRACE_CLAIM_SENT_GRACE_S`` | ``30`` | how long an import waits for Label Studio to finish a crashed import's last request before taking its claims over |
| ``LS_LLMTRACE_STORED_MAX_DEPTH`` | ``32`` | deepest JSON nesting kept in anything stored (feedback metadata, Label Studio results); deeper items are rejected with the reason |
| ``LS_LLMTRACE_STORED_MAX_KB`` | ``256`` | largest record (its JSON) the store keeps; larger items are rejected with the reason, kept aside cut short |
| ``LS_LLMTRACE_REGEX_TIMEOUT_S`` | ``1`` | time limit of one regular-expression match of a migration's split rule (the ``regex`` package's timeout); past it the migration stops with an error naming the rule |
| ``LS_LLMTRACE_FEEDBACK_MAX_BODY_MB`` | ``10`` | largest request body the Feedback API reads, chunked or not (HTTP 413 above) |
| ``LS_LLMTRACE_PHOENIX_URL`` | ``http://127.0.0.1:6006`` | Arize Phoenix server that ``pull phoenix`` / ``push phoenix`` talk to |
| ``LS_LLMTRACE_PHOENIX_API_KEY`` | unset | sent as ``Authorization: Bearer`` to Phoenix (when its auth is on); never logged |
| ``LS_LLMTRACE_MLFLOW_URL`` | ``http://127.0.0.1:5000`` | MLflow tracking server that ``pull mlflow`` / ``push mlflow`` talk to |
| ``LS_LLMTRACE_MLFLOW_TOKEN`` | unset | sent as ``Authorization: Bearer`` to MLflow (a token-protected server or proxy); never logged |
| ``LS_LLMTRACE_MLFLOW_USERNAME`` / ``LS_LLMTRACE_MLFLOW_PASSWORD`` | unset | HTTP basic auth for MLflow's ``basic-auth`` app (used when no token is set); never logged |
| ``LS_LLMTRACE_OTLP_HEADERS`` | unset | extra headers of ``push otel``, ``key=value,key2=value2`` (e.g. an ``authorization`` header) |
| ``LS_LLMTRACE_COLLECT_TOKEN`` | unset | bearer token ``collect`` requires on ``/v1/traces`` and ``/v1/logs`` (``Authorization: Bearer <token>``); without it ``collect`` refuses to start unless ``--no-auth`` (loopback only) |
| ``LS_LLMTRACE_COLLECT_PORT`` | ``4318`` | port ``collect`` listens on (the OTLP/HTTP default) |
| ``LS_LLMTRACE_COLLECT_MAX_BODY_MB`` | ``20`` | largest request body ``collect`` reads, after gzip too (HTTP 413 above) |
| ``LS_LLMTRACE_COLLECT_MAX_PENDING`` | ``200000`` | spans and log records accepted but not assembled yet; above it ``collect`` answers 429 with ``Retry-After`` |
| ``LS_LLMTRACE_COLLECT_RETRY_AFTER_S`` | ``5`` | the ``Retry-After`` of a 429 (buffer full) or 503 (store busy) |
| ``LS_LLMTRACE_COLLECT_QUIET_S`` | ``30`` | a trace whose root span has not arrived is assembled once it got nothing new for this long |
| ``LS_LLMTRACE_COLLECT_SETTLE_S`` | ``2`` | a trace whose root span has arrived is assembled once it got nothing new for this long (its log records and last children come with it) |
| ``LS_LLMTRACE_COLLECT_POLL_S`` | ``0.5`` | how often the assembler looks for traces ready to assemble |
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ls_llmtrace.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

# Traces per import request once an import's batches have ramped up. Label Studio spends
# about 90 ms on each import request beyond its tasks (10 requests of 1,000 tasks took
# 4.3 s where one of 10,000 took 3.4 s), so fewer requests save time. A cap of 5,000
# measured the same within the noise; 2,500 keeps each body (~10 MB) and the claims in
# flight at a crash smaller.
IMPORT_BATCH = 2500


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _int(name: str, default: int, minimum: int | None = None) -> int:
    """A whole number from the environment; a value that is not one is a ConfigError
    naming the variable (never a bare ValueError from deep inside a command)."""
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number: set it to one, "
                          f"e.g. {name}={default}, or unset it") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={raw!r} is below {minimum}: set it to {minimum} or more, "
                          "or unset it")
    return value


def _float(name: str, default: float, minimum: float | None = None) -> float:
    """A number from the environment (ConfigError naming the variable if it is not one)."""
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"{name}={raw!r} is not a number: set it to one, "
                          f"e.g. {name}={default:g}, or unset it")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={raw!r} is below {minimum:g}: set it to {minimum:g} or "
                          "more, or unset it")
    return value


def _flag(name: str, default: bool) -> bool:
    """A yes/no setting: 1/true/yes/on or 0/false/no/off (ConfigError otherwise)."""
    raw = _env(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a yes/no value: use 1 or 0 (true/false, "
                      "yes/no, on/off), or unset it")


def home() -> Path:
    return Path(_env("LS_LLMTRACE_HOME", ".ls-llmtrace") or ".ls-llmtrace").resolve()


def db_url() -> str:
    return _env("LS_LLMTRACE_DB") or f"sqlite:///{home() / 'store.sqlite'}"


def ls_port() -> int:
    return _int("LS_LLMTRACE_LS_PORT", 8080, minimum=1)


def ls_url() -> str:
    return (_env("LS_LLMTRACE_LS_URL") or f"http://127.0.0.1:{ls_port()}").rstrip("/")


def ls_token() -> str | None:
    return _env("LS_LLMTRACE_LS_TOKEN")


def ls_bin() -> Path:
    explicit = _env("LS_LLMTRACE_LS_BIN")
    if explicit:
        return Path(explicit)
    # The project's setup installs Label Studio beside the checkout; look upwards from cwd.
    for base in [Path.cwd(), *Path.cwd().parents]:
        candidate = base / ".venvs" / "labelstudio" / "bin" / "label-studio"
        if candidate.exists():
            return candidate
    return Path(".venvs/labelstudio/bin/label-studio").resolve()


def ls_start_timeout() -> float:
    return _float("LS_LLMTRACE_LS_START_TIMEOUT", 180.0, minimum=0.0)


def admin_email() -> str:
    return _env("LS_LLMTRACE_ADMIN_EMAIL", "admin@llmtrace.local") or "admin@llmtrace.local"


def admin_password() -> str | None:
    return _env("LS_LLMTRACE_ADMIN_PASSWORD")


def backend_port() -> int:
    return _int("LS_LLMTRACE_BACKEND_PORT", 9090, minimum=1)


def backend_url() -> str:
    return (_env("LS_LLMTRACE_BACKEND_URL") or f"http://127.0.0.1:{backend_port()}").rstrip("/")


def backend_basic_auth() -> tuple[str, str] | None:
    user = _env("LS_LLMTRACE_BACKEND_USER")
    password = _env("LS_LLMTRACE_BACKEND_PASSWORD")
    return (user, password) if user and password else None


def webhook_secret() -> str | None:
    return _env("LS_LLMTRACE_WEBHOOK_SECRET")


def schema_path_is_explicit() -> bool:
    """True when ``LS_LLMTRACE_SCHEMA`` names the default schema file."""
    return bool(_env("LS_LLMTRACE_SCHEMA"))


def default_schema_path() -> Path:
    explicit = _env("LS_LLMTRACE_SCHEMA")
    if explicit:
        return Path(explicit)
    for base in [Path.cwd(), *Path.cwd().parents]:
        candidate = base / "label_configs" / "default.v1.yaml"
        if candidate.exists():
            return candidate
    return Path("label_configs/default.v1.yaml")


def sync_page_size() -> int:
    return _int("LS_LLMTRACE_SYNC_PAGE_SIZE", 1000, minimum=1)


def sync_first_export() -> bool:
    return _flag("LS_LLMTRACE_SYNC_FIRST_EXPORT", True)


def feedback_token() -> str | None:
    return _env("LS_LLMTRACE_FEEDBACK_TOKEN")


def feedback_mapping_path() -> Path:
    explicit = _env("LS_LLMTRACE_FEEDBACK_MAPPING")
    return Path(explicit) if explicit else PACKAGE_DIR / "data" / "feedback_mapping.yaml"


def sync_webhook_secret() -> str | None:
    return _env("LS_LLMTRACE_SYNC_WEBHOOK_SECRET")


def debug() -> bool:
    return _env("LS_LLMTRACE_DEBUG") not in (None, "0", "false")


def max_chars() -> int:
    return _int("LS_LLMTRACE_MAX_CHARS", 20000, minimum=1)


def redactions() -> tuple[str, ...]:
    raw = _env("LS_LLMTRACE_REDACT") or ""
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    return ("email", "phone", "api_key") if names == ("all",) else names


def redaction_patterns() -> tuple[str, ...]:
    raw = _env("LS_LLMTRACE_REDACT_PATTERNS")
    if not raw:
        return ()
    try:
        patterns = json.loads(raw)
    except ValueError:
        patterns = None
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ConfigError('LS_LLMTRACE_REDACT_PATTERNS must be a JSON list of regular '
                          'expressions, e.g. ["ACME-\\d+"]')
    return tuple(patterns)


def max_record_bytes() -> int:
    return _int("LS_LLMTRACE_MAX_RECORD_BYTES", 64 * 1024 * 1024, minimum=1024)


def max_depth() -> int:
    return _int("LS_LLMTRACE_MAX_DEPTH", 100, minimum=8)


def claim_lease_s() -> float:
    return _float("LS_LLMTRACE_CLAIM_LEASE_S", 600.0, minimum=0.0)


def claim_sent_grace_s() -> float:
    return _float("LS_LLMTRACE_CLAIM_SENT_GRACE_S", 30.0, minimum=0.0)


# ML backend and judges ---------------------------------------------------------------------


def backend_token() -> str | None:
    return _env("LS_LLMTRACE_BACKEND_TOKEN")


def backend_max_request_bytes() -> int:
    return int(_float("LS_LLMTRACE_BACKEND_MAX_REQUEST_MB", 50.0, minimum=0.0) * 1024 * 1024)


def backend_open() -> bool:
    """Whether the backend may serve without credentials (explicit opt-in only)."""
    return _flag("LS_LLMTRACE_BACKEND_OPEN", False)


def predict_budget_s() -> float:
    return _float("LS_LLMTRACE_PREDICT_BUDGET_S", 60.0, minimum=0.1)


def backend_predict_slots() -> int:
    return _int("LS_LLMTRACE_BACKEND_PREDICT_SLOTS", 6, minimum=1)


def judge_kind() -> str:
    kind = (_env("LS_LLMTRACE_JUDGE", "auto") or "auto").lower()
    if kind == "auto":
        return "llm" if llm_base_url() else "learned"
    return kind


def judge_concurrency() -> int:
    return max(1, _int("LS_LLMTRACE_JUDGE_CONCURRENCY", 8))


def judge_cache_path() -> Path | None:
    value = _env("LS_LLMTRACE_JUDGE_CACHE")
    if value is not None and value.lower() in ("off", "0", "none", "false"):
        return None
    return Path(value) if value else home() / "judge_cache.sqlite"


def schema_dir() -> Path:
    explicit = _env("LS_LLMTRACE_SCHEMA_DIR")
    if explicit:
        return Path(explicit)
    for base in [Path.cwd(), *Path.cwd().parents]:
        candidate = base / "label_configs"
        if candidate.is_dir():
            return candidate
    return Path("label_configs")


def default_queue() -> str:
    return _env("LS_LLMTRACE_QUEUE", "review") or "review"


def llm_base_url() -> str | None:
    value = _env("LS_LLMTRACE_LLM_BASE_URL")
    return value.rstrip("/") if value else None


def llm_model() -> str:
    return _env("LS_LLMTRACE_LLM_MODEL", "gpt-4o-mini") or "gpt-4o-mini"


def llm_api_key() -> str | None:
    return _env("LS_LLMTRACE_LLM_API_KEY")


def candidate_api_key() -> str | None:
    return _env("LS_LLMTRACE_CANDIDATE_API_KEY") or llm_api_key()


def llm_temperature() -> float:
    return _float("LS_LLMTRACE_LLM_TEMPERATURE", 0.0, minimum=0.0)


def llm_timeout() -> float:
    return _float("LS_LLMTRACE_LLM_TIMEOUT", 30.0, minimum=0.1)


def llm_max_retries() -> int:
    return max(0, _int("LS_LLMTRACE_LLM_MAX_RETRIES", 3))


def llm_retry_base() -> float:
    return max(0.0, _float("LS_LLMTRACE_LLM_RETRY_BASE", 0.5))


def llm_json_mode() -> bool:
    return _flag("LS_LLMTRACE_LLM_JSON_MODE", True)


def judge_golden_path() -> Path | None:
    value = _env("LS_LLMTRACE_JUDGE_GOLDEN")
    return Path(value) if value else None


def judge_few_shot() -> int:
    return max(0, _int("LS_LLMTRACE_JUDGE_FEW_SHOT", 3))


def calibrate_min_labels() -> int:
    return max(6, _int("LS_LLMTRACE_CALIBRATE_MIN_LABELS", 100))


def learned_min_labels() -> int:
    return max(2, _int("LS_LLMTRACE_LEARNED_MIN_LABELS", 20))


def stored_max_depth() -> int:
    return _int("LS_LLMTRACE_STORED_MAX_DEPTH", 32, minimum=2)


def stored_max_bytes() -> int:
    return _int("LS_LLMTRACE_STORED_MAX_KB", 256, minimum=1) * 1024


def feedback_max_body_bytes() -> int:
    return int(_float("LS_LLMTRACE_FEEDBACK_MAX_BODY_MB", 10.0, minimum=0.0) * 1024 * 1024)


def regex_timeout_s() -> float:
    return _float("LS_LLMTRACE_REGEX_TIMEOUT_S", 1.0, minimum=0.001)


_SECRET_QUERY = re.compile(r"key|token|secret|pass|sig|auth|cred", re.IGNORECASE)


def public_url(url: str) -> str:
    """``url`` as it may be shown in logs, errors, metrics and files: a password in it
    (``https://user:pw@host``) and the values of query parameters that look like secrets
    (``?api-key=...``) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unreadable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}" if ":" in user else f"***@{host}"
    query = parts.query
    if query:
        query = urlencode([(k, "***" if _SECRET_QUERY.search(k) else v)
                           for k, v in parse_qsl(query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
def phoenix_url() -> str:
    return (_env("LS_LLMTRACE_PHOENIX_URL") or "http://127.0.0.1:6006").rstrip("/")


def phoenix_api_key() -> str | None:
    return _env("LS_LLMTRACE_PHOENIX_API_KEY")


def mlflow_url() -> str:
    return (_env("LS_LLMTRACE_MLFLOW_URL") or "http://127.0.0.1:5000").rstrip("/")


def mlflow_token() -> str | None:
    return _env("LS_LLMTRACE_MLFLOW_TOKEN")


def mlflow_basic_auth() -> tuple[str, str] | None:
    user = _env("LS_LLMTRACE_MLFLOW_USERNAME")
    return (user, _env("LS_LLMTRACE_MLFLOW_PASSWORD") or "") if user else None


def otlp_headers() -> dict[str, str]:
    """``LS_LLMTRACE_OTLP_HEADERS`` (``k=v,k2=v2``, as OTEL_EXPORTER_OTLP_HEADERS)."""
    out: dict[str, str] = {}
    for part in (_env("LS_LLMTRACE_OTLP_HEADERS") or "").split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def collect_token() -> str | None:
    return _env("LS_LLMTRACE_COLLECT_TOKEN")


def collect_port() -> int:
    return _int("LS_LLMTRACE_COLLECT_PORT", 4318, minimum=1)


def collect_max_body_bytes() -> int:
    return int(_float("LS_LLMTRACE_COLLECT_MAX_BODY_MB", 20.0, minimum=1e-6) * 1024 * 1024)


def collect_max_pending() -> int:
    return _int("LS_LLMTRACE_COLLECT_MAX_PENDING", 200000, minimum=1)


def collect_retry_after_s() -> int:
    return _int("LS_LLMTRACE_COLLECT_RETRY_AFTER_S", 5, minimum=1)


def collect_quiet_s() -> float:
    return _float("LS_LLMTRACE_COLLECT_QUIET_S", 30.0, minimum=0.0)


def collect_settle_s() -> float:
    return _float("LS_LLMTRACE_COLLECT_SETTLE_S", 2.0, minimum=0.0)


def collect_poll_s() -> float:
    return _float("LS_LLMTRACE_COLLECT_POLL_S", 0.5, minimum=0.01)
