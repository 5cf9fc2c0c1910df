"""The judge's verdicts: every prediction on a queue's tasks as ``judge`` records.

Label Studio keeps the judge's predictions (one per task and judge version, with its
``model_version``); the agreement, corrected-rate and report figures need them next to
the reviewers' records, so they are read through the task list (which returns them
without asking the ML backend) and stored as records with ``source = judge``:

- ``record_key`` ``ls:<project>:prediction:<prediction id>`` (span results
  ``...:<result id>``), ``author`` and ``metadata.judge_version`` the prediction's
  ``model_version``, ``metadata.confidence`` its score;
- the fields are read by the same mapping as an annotation's (:func:`map_annotation`), so a
  prediction result the schema does not know is kept aside with the reason, never used;
  the judge's explanation, in its own control (``judge_explanation``) since the review
  screen shows it apart from the reviewer's, is the judge record's ``explanation``;
- a prediction removed from Label Studio marks its records deleted.

Re-reading is idempotent (upserts by key; unchanged records are not rewritten).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.results import TextArea, read_results
from ls_llmtrace.models import Source
from ls_llmtrace.records.mapping import Mapped, map_annotation
from ls_llmtrace.schema.labelconfig import JUDGE_EXPLANATION, judge_words
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store

JUDGE_VERSION = "judge_version"


def prediction_key(project_id: int, prediction_id: int) -> str:
    return f"ls:{project_id}:prediction:{prediction_id}"


def map_prediction(task: dict[str, Any], prediction: dict[str, Any],
                   schema: AnnotationSchema, project_id: int) -> Mapped:
    """One prediction -> its judge records (trace-level, then spans) and rejects (pure)."""
    prediction_id = int(prediction["id"])
    version = str(prediction.get("model_version") or "") or None
    as_annotation = {"id": prediction_id, "result": prediction.get("result") or [],
                     "created_at": prediction.get("created_at"),
                     "updated_at": prediction.get("updated_at")}
    mapped = map_annotation(task, as_annotation, schema, project_id)
    words = next((judge_words(list(e.lines)) for e in read_results(prediction.get("result"))
                  if isinstance(e, TextArea) and e.from_name == JUDGE_EXPLANATION), None)
    base = prediction_key(project_id, prediction_id)
    own = f"ls:{project_id}:{prediction_id}"
    records = []
    for record in mapped.records:
        key = base + record.record_key[len(own):]
        metadata = {**record.metadata, JUDGE_VERSION: version,
                    "confidence": prediction.get("score")}
        update = {"record_key": key, "source": Source.judge, "author": version,
                  "ls_annotation_id": None, "lead_time_s": None, "metadata": metadata}
        if words and record.scope.kind == "trace" and record.explanation is None:
            update["explanation"] = words
        records.append(record.model_copy(update=update))
    return Mapped(records=records, rejects=mapped.rejects)


@dataclass
class VerdictSummary:
    project_id: int
    tasks: int = 0
    predictions: int = 0
    records_written: int = 0
    records_deleted: int = 0
    rejected: int = 0

    def line(self) -> str:
        return (f"project {self.project_id}: {self.predictions} judge predictions on "
                f"{self.tasks} tasks, {self.records_written} records written, "
                f"{self.records_deleted} marked deleted, {self.rejected} results kept aside")


def _reject_key(project_id: int, task_id: int, prediction_id: int, field: str,
                raw: Any) -> str:
    digest = hashlib.sha256(json.dumps([field, raw], sort_keys=True, default=str)
                            .encode()).hexdigest()[:16]
    return f"ls:{project_id}:{task_id}:prediction:{prediction_id}:{digest}"


def sync_verdicts(client: LabelStudioClient, store: Store, project_id: int,
                  schema: AnnotationSchema) -> VerdictSummary:
    """Read every prediction of a project into the store as judge records (one pass over
    the task list; written in one transaction)."""
    summary = VerdictSummary(project_id)
    seen: set[str] = set()
    with store.transaction() as conn:
        for task in client.all_tasks(project_id):
            summary.tasks += 1
            for prediction in task.get("predictions") or []:
                if not isinstance(prediction, dict) or prediction.get("id") is None:
                    continue
                summary.predictions += 1
                mapped = map_prediction(task, prediction, schema, project_id)
                for record in mapped.records:
                    seen.add(record.record_key)
                    summary.records_written += store.upsert_record(conn, record)
                for reject in mapped.rejects:
                    store.reject_result(
                        conn, _reject_key(project_id, int(task["id"]), int(prediction["id"]),
                                          reject.field, reject.raw),
                        project_id, int(task["id"]), None, reject.field, reject.reason,
                        reject.raw)
                    summary.rejected += 1
        summary.records_deleted = store.retire_judge_records_except(conn, project_id, seen)
    return summary
