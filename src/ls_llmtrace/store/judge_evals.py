"""The store's judge evaluations: one row per ``eval judge`` run (``judge_evaluations``).

A row is one judge version's agreement with the reviewers on one golden set: Cohen's
kappa with its bootstrap interval, accuracy, TPR/TNR, n, whether it passed the gate and
which evaluation it was compared with. The gate's rule lives in ``evals/judgegate.py``;
:class:`JudgeEvalStore` only stores and finds rows (mixed into
:class:`ls_llmtrace.store.Store`).
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ls_llmtrace.store.engine import Connection


@dataclass(frozen=True)
class JudgeEvaluation:
    """One recorded evaluation (``eval_id`` is None until it is recorded)."""

    judge_name: str
    judge_version: str
    set_id: str
    schema_id: str
    schema_version: int
    kappa: float
    ci_low: float
    ci_high: float
    accuracy: float
    tpr: float | None
    tnr: float | None
    n: int
    passed: bool
    evaluated_at: datetime
    reference_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    eval_id: int | None = None


_COLUMNS = ("judge_name, judge_version, set_id, schema_id, schema_version, kappa, ci_low, "
            "ci_high, accuracy, tpr, tnr, n, passed, reference_id, evaluated_at, body")


def _from_row(row: Any) -> JudgeEvaluation:
    return JudgeEvaluation(
        judge_name=row["judge_name"], judge_version=row["judge_version"], set_id=row["set_id"],
        schema_id=row["schema_id"], schema_version=int(row["schema_version"]),
        kappa=float(row["kappa"]), ci_low=float(row["ci_low"]), ci_high=float(row["ci_high"]),
        accuracy=float(row["accuracy"]),
        tpr=None if row["tpr"] is None else float(row["tpr"]),
        tnr=None if row["tnr"] is None else float(row["tnr"]),
        n=int(row["n"]), passed=bool(row["passed"]),
        evaluated_at=datetime.fromisoformat(row["evaluated_at"]),
        reference_id=None if row["reference_id"] is None else int(row["reference_id"]),
        details=json.loads(row["body"]), eval_id=int(row["eval_id"]))


class JudgeEvalStore:
    """Typed access to ``judge_evaluations`` (needs ``conn`` and ``transaction``)."""

    conn: Connection

    def transaction(self) -> AbstractContextManager[Connection]:  # pragma: no cover
        raise NotImplementedError

    def record_judge_evaluation(self, evaluation: JudgeEvaluation) -> int:
        """Insert one evaluation; returns its id (ids grow with every insert)."""
        e = evaluation
        with self.transaction() as conn:
            row = conn.execute(
                f"INSERT INTO judge_evaluations ({_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING eval_id",
                (e.judge_name, e.judge_version, e.set_id, e.schema_id, e.schema_version,
                 e.kappa, e.ci_low, e.ci_high, e.accuracy, e.tpr, e.tnr, e.n,
                 1 if e.passed else 0, e.reference_id, e.evaluated_at.isoformat(),
                 json.dumps(e.details, sort_keys=True, ensure_ascii=False))).fetchone()
        return int(row["eval_id"])

    def judge_evaluations(self, judge_name: str | None = None) -> list[JudgeEvaluation]:
        """Every evaluation (of one judge name), oldest first."""
        if judge_name is None:
            rows = self.conn.execute(
                f"SELECT eval_id, {_COLUMNS} FROM judge_evaluations ORDER BY eval_id")
        else:
            rows = self.conn.execute(
                f"SELECT eval_id, {_COLUMNS} FROM judge_evaluations WHERE judge_name=? "
                "ORDER BY eval_id", (judge_name,))
        return [_from_row(r) for r in rows]

    def reference_evaluation(self, judge_name: str, other_than: str, set_id: str,
                             schema_id: str, schema_version: int) -> JudgeEvaluation | None:
        """The newest passing evaluation of ``judge_name`` under a version other than
        ``other_than``: on the same set when there is one, else on the same schema."""
        base = (f"SELECT eval_id, {_COLUMNS} FROM judge_evaluations WHERE judge_name=? "
                "AND judge_version<>? AND passed=1 AND ")
        row = self.conn.execute(base + "set_id=? ORDER BY eval_id DESC LIMIT 1",
                                (judge_name, other_than, set_id)).fetchone()
        if row is None:
            row = self.conn.execute(
                base + "schema_id=? AND schema_version=? ORDER BY eval_id DESC LIMIT 1",
                (judge_name, other_than, schema_id, schema_version)).fetchone()
        return _from_row(row) if row is not None else None
