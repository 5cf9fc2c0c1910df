"""HaluEval "general" rows (tests/fixtures/halueval) as traces with their human labels,
and the measurement of the learned evaluator on them (used by a test and a bench script)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.metrics import accuracy_score, cohen_kappa_score

from ls_llmtrace.ingest.convert import trace_to_task
from ls_llmtrace.judging.judges.learned import LearnedJudge, LearnedRegistry
from ls_llmtrace.models import AnnotationRecord, Source, Trace
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store

HALUEVAL = Path(__file__).resolve().parents[1] / "fixtures" / "halueval" / "general_data.jsonl"


def load(path: Path = HALUEVAL) -> list[tuple[Trace, str]]:
    """(trace, human label) per row: hallucination yes -> fail, no -> pass."""
    out = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            trace = Trace(trace_id=f"halueval-general-{row['ID']}",
                          messages=[{"role": "user", "content": row["user_query"]}],
                          output=row["chatgpt_response"], source="halueval")
            out.append((trace, "fail" if row["hallucination"] == "yes" else "pass"))
    return out


@dataclass
class Measurement:
    train: int
    test: int
    accuracy: float
    kappa: float
    majority_accuracy: float
    predicted: dict[str, int]
    model_version: str

    def line(self) -> str:
        return (f"learned evaluator {self.model_version}: trained on {self.train} human labels, "
                f"tested on {self.test}: accuracy {self.accuracy:.3f} (always-majority "
                f"baseline {self.majority_accuracy:.3f}), Cohen's kappa {self.kappa:.3f}, "
                f"predicted {self.predicted}")


def measure(store: Store, schema: AnnotationSchema, state_dir: Path, n_train: int = 200,
            rows: list[tuple[Trace, str]] | None = None) -> Measurement:
    """Train through the store (reviewer records joined to stored traces), then judge the
    rest as Label Studio tasks and compare with the human labels."""
    rows = rows if rows is not None else load()
    train, test = rows[:n_train], rows[n_train:]
    store.upsert_traces(t for t, _ in train)
    with store.transaction() as conn:
        for i, (trace, label) in enumerate(train):
            store.upsert_record(conn, AnnotationRecord(
                record_key=f"halueval:{i}", trace_id=trace.trace_id, schema_id=schema.id,
                schema_version=schema.version, source=Source.reviewer, label=label,
                author="halueval-annotators"))
    registry = LearnedRegistry(state_dir, min_labels=20)
    trained = registry.train(store, schema.id, schema.version)
    if trained is None:
        raise RuntimeError("the learned evaluator did not train")
    judge = LearnedJudge(trained, "pass")
    truth, predicted = [], []
    for trace, label in test:
        data: dict[str, Any] = trace_to_task(trace, schema)["data"]
        verdict = judge.judge(data)
        if verdict is None:
            raise RuntimeError(f"no verdict for {trace.trace_id}")
        truth.append(label)
        predicted.append(verdict.label)
    majority = max(set(truth), key=truth.count)
    return Measurement(
        train=len(train), test=len(test),
        accuracy=float(accuracy_score(truth, predicted)),
        kappa=float(cohen_kappa_score(truth, predicted)),
        majority_accuracy=truth.count(majority) / len(truth),
        predicted={k: predicted.count(k) for k in sorted(set(predicted))},
        model_version=f"{judge.name}-v{judge.version}",
    )
