"""Every call this package makes to Label Studio, through label-studio-sdk.

Label Studio's quirks are handled here and nowhere else: the only datetime format its
filters accept, ``updated_at`` arriving as ``datetime`` or ``str``, task ids it assigns
itself, the ML backend connection and the Data Manager action that asks for predictions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import requests
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from . import settings
from .errors import LabelStudioError
from .labelconfig import build_instructions, build_label_config
from .schema import AnnotationSchema
from .timeutil import format_ls_datetime


def project_title(schema: AnnotationSchema, queue: str = "review") -> str:
    return f"llmtrace {queue} | {schema.version_id}"


class LabelStudioClient:
    """A thin, typed wrapper over the SDK client."""

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        self.url = (url or settings.ls_url()).rstrip("/")
        token = token or settings.ls_token()
        if not token:
            raise LabelStudioError(
                "no Label Studio API token: start the managed one with `ls-llmtrace ls up` "
                "or set LS_LLMTRACE_LS_TOKEN"
            )
        self.token = token
        self.sdk = LabelStudio(base_url=self.url, api_key=token, timeout=600)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            raise LabelStudioError(
                f"Label Studio refused to {what} (HTTP {exc.status_code}): {exc.body}"
            ) from exc
        except (httpx.HTTPError, requests.RequestException) as exc:
            raise LabelStudioError(
                f"no Label Studio at {self.url} ({exc.__class__.__name__}): start it with "
                "`ls-llmtrace ls up` or set LS_LLMTRACE_LS_URL"
            ) from exc

    def check(self) -> None:
        self._call("identify the token's user", self.sdk.users.whoami)

    # projects ---------------------------------------------------------------------------

    def find_project(self, title: str) -> int | None:
        pager = self._call("list projects", self.sdk.projects.list, title=title, page_size=100)
        for project in pager:
            if project.title == title:
                return int(project.id)
        return None

    def push_schema(self, schema: AnnotationSchema, queue: str = "review") -> tuple[int, bool]:
        """Create or update the project of (queue, schema version). Returns (id, created)."""
        title = project_title(schema, queue)
        config = build_label_config(schema)
        common: dict[str, Any] = {
            "label_config": config,
            "expert_instruction": build_instructions(schema),
            "show_instruction": True,
            "show_collab_predictions": True,  # reviewers see the judge's proposal
            "description": f"ls-llmtrace queue '{queue}', schema {schema.version_id}",
        }
        project_id = self.find_project(title)
        if project_id is None:
            project = self._call("create the project", self.sdk.projects.create,
                                 title=title, **common)
            return int(project.id), True
        self._call("update the project", self.sdk.projects.update, id=project_id, **common)
        return project_id, False

    def project(self, project_id: int) -> Any:
        return self._call("read the project", self.sdk.projects.get, id=project_id)

    # tasks ------------------------------------------------------------------------------

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> list[int]:
        response = self._call("import tasks", self.sdk.projects.import_tasks, id=project_id,
                              request=tasks, return_task_ids=True)
        return [int(t) for t in (response.task_ids or [])]

    def task_trace_ids(self, project_id: int, after_task_id: int = 0) -> Iterator[tuple[int, str]]:
        """(task id, trace id) of every task with an id above ``after_task_id``.

        Label Studio assigns increasing ids, so this lists exactly what was created since
        the last task we know of (including by an import that crashed before recording).
        """
        query = {
            "filters": {"conjunction": "and", "items": [
                {"filter": "filter:tasks:id", "operator": "greater", "type": "Number",
                 "value": after_task_id}]},
            "ordering": ["tasks:id"],
        }
        pager = self._call("list tasks", self.sdk.tasks.list, project=project_id,
                           query=json.dumps(query), include="id,data", page_size=1000)
        for task in pager:
            trace_id = (task.data or {}).get("trace_id")
            if trace_id is not None:
                yield int(task.id), str(trace_id)

    def tasks_page_since(
        self, project_id: int, since: datetime | None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` full tasks (with annotations) updated after ``since``, oldest
        first. One request: callers page by moving ``since`` (keyset paging), so tasks
        updated while a sync runs never shift a page boundary.
        """
        items = []
        if since is not None:
            items.append({"filter": "filter:tasks:updated_at", "operator": "greater",
                          "type": "Datetime", "value": format_ls_datetime(since)})
        query = {"filters": {"conjunction": "and", "items": items},
                 "ordering": ["tasks:updated_at"]}
        pager = self._call("list tasks", self.sdk.tasks.list, project=project_id,
                           query=json.dumps(query), fields="all", page_size=limit)
        out: list[dict[str, Any]] = []
        for task in pager:  # the pager fetches the next page only if we iterate past it
            out.append(task.model_dump(mode="json"))
            if len(out) >= limit:
                break
        return out

    def users(self) -> dict[int, str]:
        """User id -> email, for naming annotation authors."""
        pager = self._call("list users", self.sdk.users.list)
        return {int(u.id): (u.email or u.username or str(u.id)) for u in pager}

    # ML backend -------------------------------------------------------------------------

    def connect_backend(
        self, project_id: int, url: str, title: str = "ls-llmtrace judge",
        basic_auth: tuple[str, str] | None = None,
    ) -> int:
        """Connect the ML backend to the project once (reuses a connection to the same URL)."""
        existing = self._call("list ML backends", self.sdk.ml.list, project=project_id)
        for backend in existing or []:
            if (backend.url or "").rstrip("/") == url.rstrip("/"):
                return int(backend.id)
        kwargs: dict[str, Any] = {"project": project_id, "url": url, "title": title,
                                  "is_interactive": True}
        if basic_auth:
            kwargs.update(auth_method="BASIC_AUTH", basic_auth_user=basic_auth[0],
                          basic_auth_pass=basic_auth[1])
        backend = self._call("connect the ML backend", self.sdk.ml.create, **kwargs)
        return int(backend.id)

    def retrieve_predictions(self, project_id: int) -> None:
        """Run the Data Manager action ``retrieve_tasks_predictions`` on every task.

        Label Studio skips tasks that already have a prediction with the model_version
        the backend reports from ``/setup``.
        """
        self._call("retrieve predictions", self.sdk.actions.create,
                   id="retrieve_tasks_predictions", project=project_id,
                   selected_items={"all": True, "excluded": []})

    # pre-annotation (issue 5) -----------------------------------------------------------

    def tasks_with_prediction_versions(self, project_id: int) -> list[tuple[int, set[str]]]:
        """(task id, model versions of its predictions) for every task of a project."""
        query = {"ordering": ["tasks:id"]}
        pager = self._call("list tasks", self.sdk.tasks.list, project=project_id,
                           query=json.dumps(query), fields="all", page_size=1000)
        out = []
        for task in pager:
            versions = set()
            for prediction in getattr(task, "predictions", None) or []:
                version = (prediction.get("model_version") if isinstance(prediction, dict)
                           else getattr(prediction, "model_version", None))
                if version:
                    versions.add(str(version))
            out.append((int(task.id), versions))
        return out

    def retrieve_predictions_for(self, project_id: int, task_ids: list[int]) -> None:
        """Run ``retrieve_tasks_predictions`` on these tasks only (one batched /predict)."""
        self._call("retrieve predictions", self.sdk.actions.create,
                   id="retrieve_tasks_predictions", project=project_id,
                   selected_items={"all": False, "included": task_ids})

    def prediction_count(self, project_id: int) -> int:
        return int(self.project(project_id).total_predictions_number or 0)

    def secure_backend_webhook(self, project_id: int, backend_url: str, header: str,
                               secret: str) -> int:
        """Add the shared-secret header to the webhook Label Studio created for the ML
        backend (it creates it without one). Returns how many webhooks were updated."""
        target = backend_url.rstrip("/") + "/webhook"
        hooks = self._call("list webhooks", self.sdk.webhooks.list, project=str(project_id))
        updated = 0
        for hook in hooks or []:
            if (hook.url or "").rstrip("/") != target:
                continue
            headers = dict(hook.headers or {}) if isinstance(hook.headers, dict) else {}
            if headers.get(header) == secret:
                continue
            headers[header] = secret
            self._call("update the webhook", self.sdk.webhooks.update, id=int(hook.id),
                       headers=headers)
            updated += 1
        return updated
