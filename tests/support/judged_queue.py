"""A synthetic default@v2 queue with a known truth, a judge with known error rates and
several reviewers, as store records: the input of the agreement, corrected-rate and
report tests that need a whole queue (not a real producer's output: the statistics are
checked against an independent recount of the planted data).

Planted: 4 weeks of traces over two model versions, three product areas and two user
segments. The judge catches a failure with probability 0.9 and passes a good trace with
probability 0.92, except in the ``support`` area where it flips a coin on 45% of the
traces (its agreement there is significantly below the rest). ``ann`` reviews 70% of the
traces (always right); ``bob`` reviews a third of those too, later, and is wrong 15% of
the time; the schema owner adjudicates half of the traces where they disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from ls_llmtrace.models import AnnotationRecord, Message, Scope, Source, Trace, TraceMetadata

OWNER = "quality-lead@example.com"  # default.v2.yaml's owner
JUDGE_VERSION = "llmtrace-rules-v1@default@v2"
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
PROJECT = 1


@dataclass
class Planted:
    traces: list[Trace] = field(default_factory=list)
    records: list[AnnotationRecord] = field(default_factory=list)
    truth: dict[str, bool] = field(default_factory=dict)  # trace -> failing
    judge: dict[str, bool] = field(default_factory=dict)
    reviews: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)  # in time order


def _record(key: str, trace_id: str, source: Source, label: str | None, at: datetime,
            author: str, **extra: object) -> AnnotationRecord:
    return AnnotationRecord.model_validate({
        "record_key": key, "trace_id": trace_id, "schema_id": "default",
        "schema_version": 2, "source": source, "label": label, "author": author,
        "created_at": at, "updated_at": at, "ls_project_id": PROJECT, "ls_task_id": 0,
        **extra})


def _span(parent: str, trace_id: str, source: Source, start: int, end: int, text: str,
          at: datetime, author: str) -> AnnotationRecord:
    return _record(f"{parent}:s{start}", trace_id, source, None, at, author,
                   labels=["wrong_fact"],
                   scope=Scope(kind="text_range", target="answer", start=start, end=end,
                               text=text))


def planted_queue(n: int = 240, seed: int = 0) -> Planted:
    rng = np.random.default_rng(seed)
    out = Planted()
    for i in range(n):
        trace_id = f"t{i:03d}"
        model = "model-a" if i % 2 == 0 else "model-b"
        area = ("billing", "search", "support")[i % 3]
        at = START + timedelta(hours=int(i * 28 * 24 / n))
        number = int(rng.integers(10, 99))
        output = f"Your plan renews on day {number} and costs {number + 3} dollars in total."
        question = (f"Customer {i} ({area}) asks when plan {rng.integers(1000, 9999)} renews "
                    f"and what it costs after the {('spring', 'summer', 'autumn')[i % 3]} "
                    f"change to tier {rng.integers(1, 50)}.")
        out.traces.append(Trace(trace_id=trace_id, output=output,
                                messages=[Message(role="user", content=question)],
                                metadata=TraceMetadata(
            model_version=model, product_area=area,
            user_segment="pro" if i % 5 == 0 else "free", start_time=at)))
        failing = bool(rng.random() < (0.2 if model == "model-a" else 0.35))
        out.truth[trace_id] = failing
        if area == "support" and rng.random() < 0.45:
            judge = bool(rng.random() < 0.5)
        else:
            judge = bool(rng.random() < 0.9) if failing else bool(rng.random() >= 0.92)
        out.judge[trace_id] = judge
        categories = ["hallucination" if i % 4 else "incomplete"]
        judge_key = f"ls:{PROJECT}:prediction:{i}"
        judged_at = at + timedelta(minutes=5)
        out.records.append(_record(
            judge_key, trace_id, Source.judge, "fail" if judge else "pass", judged_at,
            JUDGE_VERSION, labels=categories if judge and rng.random() < 0.8 else
            (["off_topic"] if judge else []),
            metadata={"judge_version": JUDGE_VERSION}))
        amount = output.index("costs")
        if judge:
            out.records.append(_span(judge_key, trace_id, Source.judge, amount,
                                     amount + 14, output[amount:amount + 14], judged_at,
                                     JUDGE_VERSION))
        if rng.random() >= 0.7:
            continue
        reviews = [("ann", failing)]
        if rng.random() < 1 / 3:
            reviews.append(("bob", failing if rng.random() >= 0.15 else not failing))
        if len(reviews) == 2 and reviews[0][1] != reviews[1][1] and rng.random() < 0.5:
            reviews.append((OWNER, failing))
        out.reviews[trace_id] = reviews
        for step, (who, verdict) in enumerate(reviews):
            key = f"ls:{PROJECT}:{i * 10 + step}"
            when = at + timedelta(hours=2 + step)
            author = f"{who}@example.com" if who != OWNER else OWNER
            out.records.append(_record(
                key, trace_id, Source.reviewer, "fail" if verdict else "pass", when, author,
                labels=categories if verdict else [], ls_annotation_id=i * 10 + step))
            if verdict:
                start = output.index(str(number + 3))
                out.records.append(_span(key, trace_id, Source.reviewer, start - 6,
                                         start + 10, output[start - 6:start + 10], when,
                                         author))
    return out


def deciding(planted: Planted, trace_id: str) -> bool | None:
    """The human verdict the deciding-record rule must pick: the owner's, else the
    latest review."""
    reviews = planted.reviews.get(trace_id)
    if not reviews:
        return None
    owner = [v for who, v in reviews if who == OWNER]
    return owner[-1] if owner else reviews[-1][1]
