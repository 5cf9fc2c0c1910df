"""Review queues: which traces are worth a reviewer's time, as rules in a YAML file (pure).

A queue fires for a trace when **any** of its triggers fires (or it has none) **and** all
of its metadata filters match **and** the trace falls in its sample. Sampling is decided
by a hash of (queue, trace id), so re-runs and parallel imports agree. Example::

    queues:
      - name: thumbs-down            # an end user said the answer was bad
        triggers: {thumbs_down: true}
      - name: judge-low              # the judge scored it low (once judge scores exist)
        triggers: {judge_score_below: 0.5}
      - name: slow-or-failing
        triggers: {latency_ms_over: 10000, error: true}
      - name: expensive
        triggers: {tokens_over: 8000, cost_usd_over: 0.05}
      - name: billing-sample         # 5 % of production billing traffic
        filters: {product_area: [billing], environment: [prod]}
        sample_rate: 0.05
      - name: model-a-vs-b           # two answers to the same input, side by side
        pairwise: {compare: model_version}
      - name: double-reviewed        # two reviewers on 30 % of the tasks (LS overlap)
        reviewers: 2
        overlap_percent: 30

Each queue is a Label Studio project on the schema version in use
(``llmtrace <queue> | <schema>@v<version>``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from ls_llmtrace.errors import ConfigError
from ls_llmtrace.models import AnnotationRecord, FileModel, Source, Trace, problems
from ls_llmtrace.yamlfiles import parse_yaml, read_text

FILTER_KEYS = ("model", "model_version", "prompt_name", "prompt_version", "product_area",
               "user_segment", "environment", "source")
NEGATIVE_LABELS = frozenset({"thumbs_down", "thumbsdown", "down", "negative", "bad", "fail",
                             "false", "no", "dislike", "-1", "0"})
# Shown in the project title "llmtrace <queue> | <schema>@v<n>": no "|", no line breaks.
_NAME = re.compile(r"[^|\s][^|\x00-\x1f\x7f]{0,59}")


class Triggers(FileModel):
    """Signals that put a trace in the queue; any one is enough."""

    thumbs_down: bool = Field(False, description="An end user gave negative feedback.")
    judge_score_below: float | None = Field(
        None, ge=0.0, le=1.0, description="A judge or evaluator score below this.")
    judge: str | None = Field(None, description="Only scores of this judge/metric name.")
    latency_ms_over: float | None = Field(None, ge=0)
    error: bool = Field(False, description="The trace or one of its spans failed.")
    tokens_over: int | None = Field(None, ge=0, description="Input + output tokens above.")
    cost_usd_over: float | None = Field(None, ge=0)

    def empty(self) -> bool:
        return not (self.thumbs_down or self.error) and all(
            v is None for v in (self.judge_score_below, self.latency_ms_over, self.tokens_over,
                                self.cost_usd_over))


class Pairwise(FileModel):
    """Pair two traces with the same input that differ in ``compare``."""

    compare: Literal["model", "model_version", "prompt_name", "prompt_version"] = "model_version"


class QueueRule(FileModel):
    name: str = Field(description="Queue name (1-60 characters, no '|').")
    description: str = ""
    triggers: Triggers = Field(default_factory=Triggers)
    filters: dict[str, list[str]] = Field(
        default_factory=dict, description=f"Metadata that must match: {', '.join(FILTER_KEYS)}.")
    sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    pairwise: Pairwise | None = None
    reviewers: int | None = Field(
        None, ge=1, le=50, description="Reviewers per task: Label Studio's overlap "
        "(project `maximum_annotations`); unset leaves the project's setting as it is.")
    overlap_percent: int = Field(
        100, ge=1, le=100, description="With `reviewers` above 1: the share of tasks that "
        "get that many reviewers (`overlap_cohort_percentage`); the rest get one.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()  # compared and shown trimmed
        if not _NAME.fullmatch(value):
            raise ValueError("use 1-60 characters, without '|', line breaks or other "
                             "control characters")
        return value

    @field_validator("filters")
    @classmethod
    def _filters(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(FILTER_KEYS))
        if unknown:
            raise ValueError(f"unknown filter {unknown[0]!r}: use {', '.join(FILTER_KEYS)}")
        return {k: [str(v) for v in vs] for k, vs in value.items()}


class QueueConfig(FileModel):
    queues: list[QueueRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> QueueConfig:
        names = [q.name for q in self.queues]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"queue names must be unique: {sorted(dup)}")
        return self

    def queue(self, name: str) -> QueueRule:
        for rule in self.queues:
            if rule.name == name:
                return rule
        raise ConfigError(f"no queue {name!r} in the rules: have {[q.name for q in self.queues]}")


def single_queue(name: str, reviewers: int | None = None) -> QueueConfig:
    """Everything into one queue: what a plain ``import --queue Q`` does."""
    return QueueConfig(queues=[QueueRule(name=name, reviewers=reviewers)])


def parse_rules(text: str, origin: str = "<string>") -> QueueConfig:
    raw = parse_yaml(text, origin, ConfigError)
    try:
        return QueueConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {problems(exc, '(file)')} (see the example at the top "
                          "of ls_llmtrace/ingest/rules.py)") from exc


def load_rules(path: str | Path) -> QueueConfig:
    path = Path(path)
    return parse_rules(read_text(path, ConfigError, "queue rules"), str(path))


# --- signals and evaluation ---------------------------------------------------------------

@dataclass
class Signals:
    """Feedback on a trace that rules look at, gathered from its records."""

    thumbs_down: bool = False
    thumbs_up: bool = False
    judge_scores: dict[str, float] = field(default_factory=dict)  # name -> lowest score

    def thumbs(self) -> str:
        """The end users' thumbs on the trace: ``down``, ``up``, both or empty."""
        return " ".join(w for w, on in (("down", self.thumbs_down), ("up", self.thumbs_up))
                        if on)

    @classmethod
    def from_records(cls, records: list[AnnotationRecord]) -> Signals:
        out = cls()
        for record in records:
            if record.deleted:
                continue
            if record.source == Source.end_user and is_negative(record):
                out.thumbs_down = True
            elif record.source == Source.end_user and record.metadata.get("thumb") == "up":
                out.thumbs_up = True
            if record.source in (Source.judge, Source.evaluator) and record.score is not None:
                name = record.feedback_name or record.author or record.source.value
                best = out.judge_scores.get(name)
                out.judge_scores[name] = record.score if best is None else min(best, record.score)
        return out


def is_negative(record: AnnotationRecord) -> bool:
    if record.label is not None and record.label.strip().lower() in NEGATIVE_LABELS:
        return True
    return record.score is not None and record.score < 0.5


def sampled(queue: str, trace_id: str, rate: float) -> bool:
    """Deterministic: the same trace is in or out of a queue's sample on every run."""
    if rate >= 1.0:
        return True
    digest = hashlib.sha256(f"{queue}\x00{trace_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def _meta_value(trace: Trace, key: str) -> Any:
    return trace.source if key == "source" else getattr(trace.metadata, key)


def reasons(rule: QueueRule, trace: Trace, signals: Signals) -> list[str]:
    """Why ``trace`` belongs in ``rule``'s queue (empty: it does not)."""
    for key, allowed in rule.filters.items():
        value = _meta_value(trace, key)
        if value is None or str(value) not in allowed:
            return []
    if not sampled(rule.name, trace.trace_id, rule.sample_rate):
        return []
    t = rule.triggers
    if t.empty():
        return ["filters" if rule.filters else "all"]
    meta = trace.metadata
    why = []
    if t.thumbs_down and signals.thumbs_down:
        why.append("thumbs down")
    if t.judge_score_below is not None:
        scores = {k: v for k, v in signals.judge_scores.items() if not t.judge or k == t.judge}
        low = [f"{k}={v:g}" for k, v in sorted(scores.items()) if v < t.judge_score_below]
        if low:
            why.append(f"judge score below {t.judge_score_below:g} ({', '.join(low)})")
    if t.latency_ms_over is not None and meta.latency_ms is not None \
            and meta.latency_ms > t.latency_ms_over:
        why.append(f"latency {meta.latency_ms:.0f} ms > {t.latency_ms_over:g}")
    if t.error and (meta.error or any(s.error for s in trace.spans)):
        why.append("error")
    tokens = (meta.input_tokens or 0) + (meta.output_tokens or 0)
    if t.tokens_over is not None and tokens > t.tokens_over:
        why.append(f"tokens {tokens} > {t.tokens_over}")
    if t.cost_usd_over is not None and meta.cost_usd is not None \
            and meta.cost_usd > t.cost_usd_over:
        why.append(f"cost {meta.cost_usd:g} > {t.cost_usd_over:g}")
    return why


def route_trace(config: QueueConfig, trace: Trace, signals: Signals) -> dict[str, str]:
    """Queue name -> reason, for every non-pairwise queue the trace belongs in."""
    out = {}
    for rule in config.queues:
        if rule.pairwise is not None:
            continue
        why = reasons(rule, trace, signals)
        if why:
            out[rule.name] = "; ".join(why)
    return out
