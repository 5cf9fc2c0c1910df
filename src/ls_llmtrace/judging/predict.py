"""``ls-llmtrace predict``: have Label Studio pre-annotate every task that lacks this
judge's prediction, in batches, with progress.

Label Studio does the asking (Data Manager action ``retrieve_tasks_predictions``), so its
own bookkeeping stays right: it calls the backend's ``/setup`` and ``/predict`` and stores
the predictions. This module only decides which tasks to send, in what batches, and
reports progress. "This judge" is the ``model_version`` the backend's ``/setup`` gives for
the project's label config, the same check Label Studio makes.

After a schema push the judge's ``model_version`` names the new schema version, and each
task would show two judge tabs (the labeling UI and the Data Manager list every
prediction). So the predictions made for another version of the same schema are deleted
(not hidden) from a task before it is predicted again; predictions that name no version
of this schema (another model's) are left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import requests

from ls_llmtrace import settings
from ls_llmtrace.errors import LabelStudioError, LLMTraceError
from ls_llmtrace.labelstudio.client import LabelStudioClient


@dataclass
class PredictProgress:
    total_tasks: int
    pending: int
    asked: int = 0
    predictions_before: int = 0
    predictions_now: int = 0
    model_version: str = ""
    removed: int = 0  # predictions of another version of the schema, deleted

    @property
    def created(self) -> int:
        return self.predictions_now - self.predictions_before

    def line(self) -> str:
        removed = f", {self.removed} of an older schema version removed" if self.removed else ""
        return (f"{self.asked}/{self.pending} tasks asked, {self.created} predictions created"
                f"{removed} ({self.total_tasks} tasks in the project, judge "
                f"{self.model_version})")


def backend_model_version(backend_url: str, label_config: str,
                          basic_auth: tuple[str, str] | None = None) -> str:
    """What the backend calls itself for this config (what Label Studio compares with)."""
    try:
        response = requests.post(f"{backend_url.rstrip('/')}/setup", json={
            "project": "ls-llmtrace-cli", "schema": label_config}, auth=basic_auth, timeout=30)
    except requests.RequestException as exc:
        raise LLMTraceError(f"no ML backend at {backend_url} ({exc.__class__.__name__}): start "
                            "it with `ls-llmtrace backend up` or set LS_LLMTRACE_BACKEND_URL"
                            ) from None
    if response.status_code != 200:
        raise LLMTraceError(f"the ML backend at {backend_url} answered HTTP "
                            f"{response.status_code} to /setup: check LS_LLMTRACE_BACKEND_USER "
                            "and LS_LLMTRACE_BACKEND_PASSWORD")
    version = (response.json() or {}).get("model_version")
    if not isinstance(version, str) or not version:
        raise LLMTraceError(f"the ML backend at {backend_url} gave no model_version")
    return version


def schema_part(model_version: str) -> str | None:
    """The schema version a model version of this package's judges names
    (``<judge>@<schema>@v<n>`` -> ``<schema>@v<n>``), or None."""
    head, sep, version = model_version.partition("@")
    schema, at, number = version.rpartition("@v")
    return version if sep and head and at and schema and number.isdigit() else None


def stale(model_version: str, current: str) -> bool:
    """Whether a prediction's ``model_version`` is for another version of the schema the
    ``current`` judge answers (same schema id, other version number)."""
    mine, theirs = schema_part(current), schema_part(model_version)
    return (mine is not None and theirs is not None and theirs != mine
            and theirs.rpartition("@v")[0] == mine.rpartition("@v")[0])


def remove_stale_predictions(client: LabelStudioClient, project_id: int,
                             tasks: list[tuple[int, list[tuple[int, str]]]],
                             current: str) -> int:
    """Delete the predictions made for another version of the schema (see the module
    docstring): in one call for the tasks whose every prediction is such, one by one
    where a task also has others. Returns how many were deleted."""
    whole: list[int] = []
    single: list[int] = []
    for task_id, predictions in tasks:
        old = [pid for pid, v in predictions if stale(v, current)]
        if old and len(old) == len(predictions):
            whole.append(task_id)
        else:
            single.extend(old)
    for start in range(0, len(whole), 1000):
        client.delete_task_predictions(project_id, whole[start:start + 1000])
    for prediction_id in single:
        client.delete_prediction(prediction_id)
    counts = dict(tasks)
    return sum(len(counts[t]) for t in whole) + len(single)


def preannotate(client: LabelStudioClient, project_id: int, backend_url: str,
                basic_auth: tuple[str, str] | None = None, batch_size: int = 100,
                progress: Callable[[PredictProgress], None] | None = None) -> PredictProgress:
    """Connect the backend (once), then ask Label Studio for the missing predictions."""
    client.connect_backend(project_id, backend_url, basic_auth=basic_auth)
    secret = settings.webhook_secret()
    if secret:  # Label Studio's own webhook to the backend has no secret header: add it
        from ls_llmtrace.judging.backend import (
            WEBHOOK_SECRET_HEADER,  # (flask, scikit-learn: only if needed)
        )

        client.secure_backend_webhook(project_id, backend_url, WEBHOOK_SECRET_HEADER, secret)
    config = client.project(project_id).label_config or ""
    version = backend_model_version(backend_url, config, basic_auth)
    tasks = client.tasks_with_predictions(project_id)
    pending = [task_id for task_id, predictions in tasks
               if version not in {v for _, v in predictions}]
    state = PredictProgress(len(tasks), len(pending), model_version=version)
    state.removed = remove_stale_predictions(client, project_id, tasks, version)
    state.predictions_before = state.predictions_now = client.prediction_count(project_id)
    for start in range(0, len(pending), max(1, batch_size)):
        chunk = pending[start:start + batch_size]
        client.retrieve_predictions_for(project_id, chunk)
        state.asked += len(chunk)
        state.predictions_now = client.prediction_count(project_id)
        if progress:
            progress(state)
    if state.predictions_now > 0 or len(pending) < len(tasks):
        # the Data Manager's prediction score column: this judge's (Label Studio refuses a
        # version it has no prediction of)
        with contextlib.suppress(LabelStudioError):
            client.set_model_version(project_id, version)
    return state
