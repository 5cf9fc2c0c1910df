"""The store's judge calibrations: one row per ``calibrate`` run (``judge_calibrations``).

A row holds what calibration chose for one judge kind (``learned``, ``llm``) and schema
version (``params``: threshold, features and regularization, few-shot and rubric
examples) and the measurements behind it (``result``, the JSON ``calibrate`` writes).
Recording a row makes it the active one of its (judge, schema version) and retires the
one before, in one transaction; the backend builds its judge from the active row. The
choosing lives in ``evals/calibrate.py``.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ls_llmtrace.store.engine import Connection


@dataclass(frozen=True)
class Calibration:
    """One recorded calibration (``calibration_id`` is None until it is recorded)."""

    judge_kind: str
    schema_id: str
    schema_version: int
    created_at: datetime
    params: dict[str, Any]
    result: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    active: bool = True
    calibration_id: int | None = None


_COLUMNS = ("judge_kind, schema_id, schema_version, queue, active, created_at, params, "
            "result")


def _from_row(row: Any) -> Calibration:
    return Calibration(
        judge_kind=row["judge_kind"], schema_id=row["schema_id"],
        schema_version=int(row["schema_version"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        params=json.loads(row["params"]), result=json.loads(row["result"]),
        queue=row["queue"], active=bool(row["active"]),
        calibration_id=int(row["calibration_id"]))


class CalibrationStore:
    """Typed access to ``judge_calibrations`` (needs ``conn`` and ``transaction``)."""

    conn: Connection

    def transaction(self) -> AbstractContextManager[Connection]:  # pragma: no cover
        raise NotImplementedError

    def record_calibration(self, calibration: Calibration) -> int:
        """Insert ``calibration`` as the active one of its judge and schema version (the
        previous active row is kept, inactive); returns its id."""
        c = calibration
        with self.transaction() as conn:
            conn.execute("UPDATE judge_calibrations SET active=0 WHERE judge_kind=? AND "
                         "schema_id=? AND schema_version=? AND active=1",
                         (c.judge_kind, c.schema_id, c.schema_version))
            row = conn.execute(
                f"INSERT INTO judge_calibrations ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING calibration_id",
                (c.judge_kind, c.schema_id, c.schema_version, c.queue, 1,
                 c.created_at.isoformat(), json.dumps(c.params, sort_keys=True,
                                                      ensure_ascii=False),
                 json.dumps(c.result, sort_keys=True, ensure_ascii=False))).fetchone()
        return int(row["calibration_id"])

    def active_calibration(self, judge_kind: str, schema_id: str, schema_version: int
                           ) -> Calibration | None:
        """The calibration the backend uses for this judge and schema version, if any."""
        row = self.conn.execute(
            f"SELECT calibration_id, {_COLUMNS} FROM judge_calibrations WHERE judge_kind=? "
            "AND schema_id=? AND schema_version=? AND active=1 "
            "ORDER BY calibration_id DESC LIMIT 1",
            (judge_kind, schema_id, schema_version)).fetchone()
        return _from_row(row) if row is not None else None

    def calibrations(self, judge_kind: str | None = None) -> list[Calibration]:
        """Every calibration (of one judge kind), oldest first."""
        if judge_kind is None:
            rows = self.conn.execute(
                f"SELECT calibration_id, {_COLUMNS} FROM judge_calibrations "
                "ORDER BY calibration_id")
        else:
            rows = self.conn.execute(
                f"SELECT calibration_id, {_COLUMNS} FROM judge_calibrations WHERE "
                "judge_kind=? ORDER BY calibration_id", (judge_kind,))
        return [_from_row(r) for r in rows]
