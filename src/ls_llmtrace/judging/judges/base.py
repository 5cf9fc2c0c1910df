"""The judge interface, its verdict, and the counters judges report into."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

# When the work on the current task must be over (a time.monotonic() value), or None. The
# backend sets it around each task, so that a judge's calls never outlive /predict's budget.
_DEADLINE: ContextVar[float | None] = ContextVar("judge_deadline", default=None)


@contextmanager
def deadline(at: float | None) -> Iterator[None]:
    """Run the block with ``at`` (a ``time.monotonic()`` value) as the judge deadline."""
    token = _DEADLINE.set(at)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def current_deadline() -> float | None:
    return _DEADLINE.get()


@dataclass(frozen=True)
class Quote:
    """A piece of text the judge points at, to become a span label.

    ``text`` must appear verbatim in the answer or in one conversation message; it is
    located to exact offsets later, and dropped (never guessed) when it is not there.
    """

    label: str
    text: str
    target: Literal["answer", "message"] = "answer"
    message_index: int | None = None  # for target "message": which one (None: search all)


@dataclass(frozen=True)
class StepMark:
    """An agent step the judge says went wrong: its number (from 1) and the labels."""

    step: int
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Verdict:
    label: str
    score: float  # 0.0 (worst) .. 1.0 (best), in the schema's terms
    explanation: str
    confidence: float  # how sure the judge is; becomes the prediction's score
    categories: tuple[str, ...] = ()  # failure categories, when the config has them
    quotes: tuple[Quote, ...] = ()  # suspicious spans, when the config has span labels
    steps: tuple[StepMark, ...] = ()  # failing agent steps, when the task has steps


def pass_fail_labels(values: Sequence[str]) -> tuple[str, str]:
    """(passing, failing) among a verdict control's values: ``pass`` and ``fail`` when
    present, else the first and the last value."""
    values = tuple(values) or ("pass", "fail")
    passing = next((v for v in values if v == "pass"), values[0])
    failing = next((v for v in values if v == "fail"), values[-1])
    return passing, failing


def apply_threshold(verdict: Verdict, threshold: float | None, passing: str,
                    failing: str) -> Verdict:
    """The verdict with its label decided by its score: ``failing`` below ``threshold``,
    else ``passing`` (a calibrated decision threshold). ``None`` keeps the judge's own
    label; a failing label the judge chose itself (a failure category of a richer
    verdict) is kept when the score also says fail."""
    if threshold is None:
        return verdict
    if verdict.score >= threshold:
        label = passing
    else:
        label = verdict.label if verdict.label != passing else failing
    return verdict if label == verdict.label else dataclasses.replace(verdict, label=label)


class Judge(Protocol):
    name: str

    @property
    def version(self) -> str: ...

    def judge(self, task_data: dict[str, Any]) -> Verdict | None:
        """A verdict for one task's data, or None when the judge has nothing to say.

        Raising means the judge failed on this task (counted, logged, no prediction).
        """
        ...


@dataclass
class Metrics:
    """Thread-safe counters and latency totals, served by the backend's ``/metrics``."""

    counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def incr(self, name: str, by: int = 1) -> None:
        with self._lock:
            self.counts[name] += by

    def observe_ms(self, name: str, millis: float) -> None:
        """Latency: total, count and maximum under ``<name>_ms_total|_count|_max``."""
        with self._lock:
            self.counts[f"{name}_ms_total"] += int(round(millis))
            self.counts[f"{name}_count"] += 1
            key = f"{name}_ms_max"
            self.counts[key] = max(self.counts[key], int(round(millis)))

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)
