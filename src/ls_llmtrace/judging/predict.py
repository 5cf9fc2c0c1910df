"""``ls-llmtrace predict``: have Label Studio pre-annotate every task that lacks this
judge's prediction, in batches, with progress.

Label Studio does the asking (Data Manager action ``retrieve_tasks_predictions``), so its
own bookkeeping stays right: it calls the backend's ``/setup`` and ``/predict`` and stores
the predictions. This module only decides which tasks to send, in what batches, and
reports progress. "This judge" is the ``model_version`` the backend's ``/setup`` gives for
the project's label config, the same check Label Studio makes.
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

    @property
    def created(self) -> int:
        return self.predictions_now - self.predictions_before

    def line(self) -> str:
        return (f"{self.asked}/{self.pending} tasks asked, {self.created} predictions created "
                f"({self.total_tasks} tasks in the project, judge {self.model_version})")


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
    tasks = client.tasks_with_prediction_versions(project_id)
    pending = [task_id for task_id, versions in tasks if version not in versions]
    state = PredictProgress(len(tasks), len(pending), model_version=version)
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
