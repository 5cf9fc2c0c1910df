"""Every call this package makes to Label Studio, through label-studio-sdk.

Label Studio's quirks are handled here and nowhere else: the only datetime format its
filters accept, ``updated_at`` arriving as ``datetime`` or ``str``, task ids it assigns
itself, the ML backend connection and the Data Manager action that asks for predictions.

The calls an import, a count and a sync page make are plain JSON requests
(:meth:`LabelStudioClient._request`): with a legacy token through ``requests`` alone, so
an import never loads the SDK (and pandas, ~0.8 s); with a personal access token through
the SDK's HTTP client, which refreshes it. Everything else goes through the SDK, loaded
when first used.

Every request runs inside one error guard (:meth:`LabelStudioClient._guard`), which turns
whatever the SDK, httpx or requests raise into a one-line :class:`LabelStudioError`. The
SDK fetches the later pages of a listing lazily, while its pager is iterated, and streams
export downloads: both are read through :meth:`LabelStudioClient._pages` and
:meth:`LabelStudioClient._download`, so those requests are guarded too.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

from ls_llmtrace import settings
from ls_llmtrace.errors import LabelStudioError
from ls_llmtrace.schema.labelconfig import build_instructions, build_label_config
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.timeutil import format_ls_datetime, to_utc

# The task fields the sync reads. Label Studio applies ``include`` to the nested
# annotations and predictions too, so their fields are listed here as well; left out are
# only the costly computed extras (annotators, comment authors, prediction and annotation
# summaries). The predictions say which judge version an annotation was made from.
SYNC_TASK_FIELDS = ",".join([
    "id", "data", "meta", "created_at", "updated_at", "inner_id", "project", "annotations",
    "predictions", "model_version", "score",
    # annotation fields
    "result", "completed_by", "lead_time", "was_cancelled", "ground_truth", "task",
    "last_action", "parent_prediction", "parent_annotation", "unique_id", "updated_by",
    "draft_created_at", "bulk_created", "import_id", "last_created_by", "result_count",
])


# Every snapshot export the sync creates is titled "<prefix> <host> pid <pid>": how a
# later sync recognizes its own leftovers and tells a dead run's from a live one's.
EXPORT_TITLE_PREFIX = "ls-llmtrace sync"


def export_title() -> str:
    return f"{EXPORT_TITLE_PREFIX} {socket.gethostname()} pid {os.getpid()}"


def export_owner(title: str) -> tuple[str, int] | None:
    """(host, pid) of a title made by :func:`export_title`, else None."""
    rest = title[len(EXPORT_TITLE_PREFIX):].split()
    if len(rest) == 3 and rest[1] == "pid" and rest[2].isdigit():
        return rest[0], int(rest[2])
    return None


def project_title(schema: AnnotationSchema, queue: str | None = None) -> str:
    """The title of a queue's project at a schema version (the queue registry parses it)."""
    return f"llmtrace {queue or settings.default_queue()} | {schema.version_id}"


def encode_tasks(tasks: list[dict[str, Any]]) -> bytes:
    """The body of an import request: the tasks as one JSON array (ASCII, so a lone
    surrogate in a trace is escaped rather than failing to encode). ujson writes it in
    about half the time of ``json.dumps``; anything it refuses goes through ``json``."""
    import ujson

    try:
        return ujson.dumps(tasks, ensure_ascii=True, escape_forward_slashes=False
                           ).encode("ascii")
    except (TypeError, ValueError, OverflowError):
        return json.dumps(tasks, separators=(",", ":")).encode("ascii")


def _one_line(value: Any, limit: int = 300) -> str:
    """An answer body (an HTML error page, a JSON object) squeezed into one short line."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


class HttpStatusError(Exception):
    """A plain request answered with an error status (the guard words it)."""

    def __init__(self, status_code: int, body: str) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.body = body


class _Never(Exception):
    """Stands for an exception type of a library that is not loaded (never raised)."""


def _is_personal_access_token(token: str) -> bool:
    """Label Studio's personal access tokens are JWTs (three dot-separated parts); legacy
    tokens are 40 hex digits."""
    return token.count(".") == 2


class LabelStudioClient:
    """A thin, typed wrapper over the SDK client. Which Label Studio, with which token,
    is decided by :mod:`ls_llmtrace.labelstudio.connect` from the settings."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.shown_url = settings.public_url(self.url)  # in errors: no password
        if not token:
            raise LabelStudioError(
                "no Label Studio API token: start the managed one with `ls-llmtrace ls up` "
                "or set LS_LLMTRACE_LS_TOKEN"
            )
        self.token = token
        self._sdk: Any = None
        self._local = threading.local()  # one plain HTTP session per thread

    @property
    def sdk(self) -> Any:
        """The SDK client, created (and label_studio_sdk imported: it brings pandas,
        ~0.8 s) when first used."""
        if self._sdk is None:
            from label_studio_sdk import LabelStudio

            self._sdk = LabelStudio(base_url=self.url, api_key=self.token, timeout=600)
        return self._sdk

    def _request(self, what: str, method: str, path: str, params: dict[str, Any] | None = None,
                 content: bytes | None = None, body: Any = None) -> Any:
        """One request answered with JSON, read as plain JSON (no SDK models): ``content``
        is sent as it is (JSON already), ``body`` encoded here."""
        if body is not None:
            content = json.dumps(body).encode("ascii")
        headers = {"Content-Type": "application/json"} if content is not None else {}
        with self._guard(what):
            if _is_personal_access_token(self.token):  # the SDK refreshes its access token
                http = self.sdk._client_wrapper.httpx_client
                response = http.request(path, method=method, params=params, content=content,
                                        headers=headers)
            else:
                session = getattr(self._local, "session", None)
                if session is None:
                    import requests

                    session = requests.Session()
                    session.headers["Authorization"] = f"Token {self.token}"
                    self._local.session = session
                response = session.request(method, f"{self.url}/{path}", params=params,
                                           data=content, headers=headers, timeout=600)
            if not 200 <= response.status_code < 300:
                raise HttpStatusError(response.status_code, response.text)
            return response.json() if response.content else None

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Turn any failure of a request into one LabelStudioError saying what to do."""
        import requests

        # The SDK's and httpx's errors can only happen once they are loaded.
        api_error: type[Exception] = _Never
        parsing_error: type[Exception] = _Never
        if "label_studio_sdk" in sys.modules:
            from label_studio_sdk.core.api_error import ApiError as api_error
            from label_studio_sdk.core.parse_error import ParsingError as parsing_error
        connect: tuple[type[Exception], ...] = (requests.ConnectionError,)
        timeout: tuple[type[Exception], ...] = (requests.Timeout,)
        broken: tuple[type[Exception], ...] = (requests.RequestException,)
        if "httpx" in sys.modules:
            import httpx

            connect += (httpx.ConnectError, httpx.ConnectTimeout)
            timeout += (httpx.TimeoutException,)
            broken += (httpx.HTTPError, httpx.StreamError)

        try:
            yield
        except (api_error, HttpStatusError) as exc:
            code = getattr(exc, "status_code", None)
            body = _one_line(getattr(exc, "body", None))
            if code in (401, 403):
                raise LabelStudioError(
                    f"Label Studio at {self.shown_url} refused the API token to {what} (HTTP "
                    f"{code}): check LS_LLMTRACE_LS_TOKEN") from exc
            if code is not None and 200 <= code < 300:
                raise LabelStudioError(
                    f"Label Studio at {self.shown_url} sent an unreadable answer to {what} "
                    f"(HTTP {code}): {body or 'empty body'}") from exc
            raise LabelStudioError(
                f"Label Studio at {self.shown_url} refused to {what} (HTTP {code}): {body}"
            ) from exc
        except (parsing_error, json.JSONDecodeError) as exc:
            raise LabelStudioError(
                f"Label Studio at {self.shown_url} sent an unreadable answer to {what} "
                f"({exc.__class__.__name__}): check that LS_LLMTRACE_LS_URL points at "
                "Label Studio 1.23") from exc
        except connect as exc:
            raise LabelStudioError(
                f"no Label Studio at {self.shown_url} to {what} ({exc.__class__.__name__}): "
                "start it with `ls-llmtrace ls up` or set LS_LLMTRACE_LS_URL") from exc
        except timeout as exc:
            raise LabelStudioError(
                f"Label Studio at {self.shown_url} did not answer in time to {what} "
                f"({exc.__class__.__name__}): check that it is not overloaded and run the "
                "command again") from exc
        except broken as exc:
            raise LabelStudioError(
                f"the connection to Label Studio at {self.shown_url} broke while trying to {what} "
                f"({exc.__class__.__name__}: {_one_line(str(exc), 120)}): check that it is "
                "still running (`ls-llmtrace ls status`) and run the command again") from exc

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._guard(what):
            return fn(*args, **kwargs)

    def _pages(self, what: str, fn: Callable[..., Iterable[Any]], *args: Any,
               **kwargs: Any) -> Iterator[Any]:
        """The items of an SDK listing. The SDK fetches page 2 onwards while its pager is
        iterated: each of those fetches runs inside the guard as well."""
        with self._guard(what):
            items = iter(fn(*args, **kwargs))
        while True:
            with self._guard(what):
                try:
                    item = next(items)
                except StopIteration:
                    return
            yield item

    def _download(self, what: str, fn: Callable[..., Iterable[bytes]], *args: Any,
                  **kwargs: Any) -> bytes:
        """A streamed download read to the end inside the guard (the SDK's download
        methods are generators: nothing is requested until they are iterated)."""
        with self._guard(what):
            return b"".join(fn(*args, **kwargs))

    def check(self) -> None:
        self._call("identify the token's user", self.sdk.users.whoami)

    # projects ---------------------------------------------------------------------------

    def find_project(self, title: str) -> int | None:
        for project in self.project_summaries(title):
            if project.get("title") == title:
                return int(project["id"])
        return None

    def push_schema(self, schema: AnnotationSchema, queue: str | None = None,
                    lookup: bool = True) -> tuple[int, bool]:
        """Create or update the project of (queue, schema version). Returns (id, created)."""
        queue = queue or settings.default_queue()
        return self.push_config(
            project_title(schema, queue), build_label_config(schema),
            description=f"ls-llmtrace queue '{queue}', schema {schema.version_id}",
            instructions=build_instructions(schema), lookup=lookup)

    def project_summaries(self, title: str | None = None) -> list[dict[str, Any]]:
        """id, title, description, task and annotation counts of the projects (those
        whose title contains ``title``): the cheap listing (``include=``), which computes
        no other per-project counters."""
        params: dict[str, Any] = {
            "include": "id,title,description,task_number,total_annotations_number",
            "page_size": 1000}
        if title:
            params["title"] = title
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self._request("list projects", "GET", "api/projects/",
                                 {**params, "page": page})
            out.extend(body.get("results", []) if isinstance(body, dict) else body)
            if not isinstance(body, dict) or not body.get("next"):
                return out
            page += 1

    def project(self, project_id: int) -> Any:
        return self._call("read the project", self.sdk.projects.get, id=project_id)

    # tasks ------------------------------------------------------------------------------

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]] | bytes) -> list[int]:
        """Create tasks in one ``POST /api/projects/{id}/import``; returns their ids, in
        order. ``tasks`` may be the JSON array already encoded (:func:`encode_tasks`): it
        is sent as it is (:meth:`_request`), not through ``projects.import_tasks``, whose
        ``jsonable_encoder`` walk of every task cost about 4x a ``json.dumps`` of the same
        payload."""
        body = tasks if isinstance(tasks, bytes) else encode_tasks(tasks)
        answer = self._request("import tasks", "POST", f"api/projects/{int(project_id)}/import",
                               {"return_task_ids": "true"}, content=body)
        ids = answer.get("task_ids") if isinstance(answer, dict) else None
        return [int(t) for t in (ids or [])]

    def task_trace_ids(self, project_id: int, after_task_id: int = 0) -> Iterator[tuple[int, str]]:
        """(task id, trace id) of every task with an id above ``after_task_id``.

        Label Studio assigns increasing ids, so this lists exactly what was created since
        the last task we know of (including by an import that crashed before recording).
        """
        page_size = 1000
        while True:  # keyset paging: each page starts after the last id seen
            query = {
                "filters": {"conjunction": "and", "items": [
                    {"filter": "filter:tasks:id", "operator": "greater", "type": "Number",
                     "value": after_task_id}]},
                "ordering": ["tasks:id"],
            }
            body = self._request("list tasks", "GET", "api/tasks/", {
                "project": project_id, "query": json.dumps(query), "include": "id,data",
                "page": 1, "page_size": page_size})
            tasks = body.get("tasks", []) if isinstance(body, dict) else body
            for task in tasks:
                trace_id = (task.get("data") or {}).get("trace_id")
                if trace_id is not None:
                    yield int(task["id"]), str(trace_id)
            if len(tasks) < page_size:
                return
            after_task_id = max(int(t["id"]) for t in tasks)

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
        # Only the fields the sync reads: with everything, Label Studio computes per-task
        # extras (annotators, comment authors, prediction results...) and pages take ~3x
        # longer. The page is read as plain JSON through the SDK's own HTTP client (same
        # auth, PAT refresh included): building SDK models for 1,000 tasks and dumping them
        # back to dicts cost more than the sync's own work (measured in bench/bench_sync.py).
        params = {"project": project_id, "query": json.dumps(query), "fields": "all",
                  "include": SYNC_TASK_FIELDS, "page": 1, "page_size": limit}
        body = self._request("list tasks", "GET", "api/tasks/", params)
        tasks = body.get("tasks", []) if isinstance(body, dict) else body
        return list(tasks)[:limit]

    def sync_exports(self, project_id: int) -> list[dict[str, Any]]:
        """The project's snapshot exports made by a sync (titled :func:`export_title`):
        ``id``, ``title``, ``created_at`` (UTC) and ``status`` of each."""
        found = self._call("list the exports", self.sdk.projects.exports.list, id=project_id)
        return [{"id": int(e.id), "title": e.title or "", "created_at": to_utc(e.created_at),
                 "status": e.status} for e in found or []
                if e.id is not None and (e.title or "").startswith(EXPORT_TITLE_PREFIX)]

    def delete_export(self, project_id: int, export_id: int) -> bool:
        """Delete one export; False if it was not there (any more)."""
        try:
            self._call(f"delete export {export_id}", self.sdk.projects.exports.delete,
                       id=project_id, export_pk=export_id)
        except LabelStudioError as exc:
            cause = exc.__cause__
            if getattr(cause, "status_code", None) == 404:  # the SDK's ApiError
                return False
            raise
        return True

    def snapshot_tasks(self, project_id: int, timeout: float = 1800.0,
                       on_created: Callable[[int], None] | None = None,
                       on_deleted: Callable[[int], None] | None = None,
                       ) -> tuple[datetime, list[dict[str, Any]], int]:
        """Every task of the project, with all its annotations (cancelled and ground truth
        included), through Label Studio's own JSON snapshot export: the fastest way to
        read a whole project. Returns (when the snapshot began, on Label Studio's clock;
        the tasks; the API calls made). ``on_created(export_id)`` is called as soon as
        the export exists, ``on_deleted(export_id)`` once it is deleted (the sync notes
        both in the store).

        The export is deleted whatever happens (``finally``: also on KeyboardInterrupt, and
        on SIGTERM where the caller turns it into an exception); only a SIGKILL leaves it,
        for the next sync to find.
        """
        exports = self.sdk.projects.exports
        snap = self._call(
            "create a snapshot export", exports.create, id=project_id,
            title=export_title(),
            annotation_filter_options={"usual": True, "ground_truth": True, "skipped": True},
            serialization_options={"drafts": {"only_id": True},
                                   "predictions": {"only_id": False}})
        calls = 1
        began = to_utc(snap.created_at)
        what = f"download export {snap.id} of project {project_id}"
        deleted = False
        try:
            if on_created is not None:
                on_created(int(snap.id))
            status = snap.status
            deadline = time.monotonic() + timeout
            while status != "completed":
                if status == "failed" or time.monotonic() > deadline:
                    raise LabelStudioError(
                        f"Label Studio's snapshot export {snap.id} of project {project_id} "
                        f"{status or 'did not finish'}: set LS_LLMTRACE_SYNC_FIRST_EXPORT=0 "
                        "to page instead")
                time.sleep(0.2)
                status = self._call("read the export", exports.get, id=project_id,
                                    export_pk=snap.id).status
                calls += 1
            data = self._download(what, exports.download, id=project_id, export_pk=snap.id,
                                  export_type="JSON")
            self.delete_export(project_id, int(snap.id))
            deleted = True
        finally:
            if not deleted:
                # An export left behind keeps its file in Label Studio: try to remove it,
                # but report the failure that stopped the download, not this one.
                with suppress(LabelStudioError):
                    self.delete_export(project_id, int(snap.id))
                    deleted = True
            if deleted and on_deleted is not None:
                on_deleted(int(snap.id))
        if began is None:
            raise LabelStudioError(f"snapshot export {snap.id} has no created_at")
        try:
            tasks = json.loads(data)
        except json.JSONDecodeError as exc:
            # The download has no Content-Length (Label Studio streams the file until it
            # closes the connection): a connection lost midway looks like a short file.
            raise LabelStudioError(
                f"export {snap.id} of project {project_id} from Label Studio at {self.shown_url} "
                f"is cut short or not JSON ({len(data)} bytes; {exc.msg} at byte {exc.pos}): "
                "check that Label Studio is still running and sync again, or set "
                "LS_LLMTRACE_SYNC_FIRST_EXPORT=0 to page instead") from exc
        return began, tasks, calls + 2

    def task_count(self, project_id: int) -> int:
        """How many tasks the project has now (one request, constant cost: the project
        list with only ``task_number``; ``projects.get`` computes every counter of the
        project and grows with it, 216-269 ms at 50,000 tasks against 17-19 ms)."""
        body = self._request("count the project's tasks", "GET", "api/projects/",
                              {"ids": project_id, "include": "id,task_number"})
        rows = body.get("results", []) if isinstance(body, dict) else body
        for row in rows or []:
            if isinstance(row, dict) and row.get("id") == project_id:
                return int(row.get("task_number") or 0)
        raise LabelStudioError(
            f"Label Studio at {self.url} has no project {project_id} (deleted?): check "
            "`ls-llmtrace queues`, or import into the queue again to create it")

    def task_ids(self, project_id: int) -> Iterator[int]:
        """Every task id of the project (ids only: cheap even for large projects)."""
        for task in self._pages("list tasks", self.sdk.tasks.list, project=project_id,
                                include="id", page_size=5000):
            yield int(task.id)

    def users(self) -> dict[int, str]:
        """User id -> email, for naming annotation authors."""
        return {int(u.id): (u.email or u.username or str(u.id))
                for u in self._pages("list users", self.sdk.users.list)}

    def create_user(self, email: str) -> int:
        """Create a user in the token user's organization (or find it by email) and make
        that organization its active one (else it sees no projects). Returns its id. The
        user has no password and gets its own legacy API token, which only Label
        Studio's CLI can read (``ManagedLabelStudio.user_token``)."""
        for user in self._pages("list users", self.sdk.users.list):
            if (user.email or "").lower() == email.lower():
                user_id = int(user.id)
                break
        else:
            created = self._call("create a user", self.sdk.users.create,
                                 username=email.split("@")[0], email=email)
            user_id = int(created.id)
        me = self._call("identify the token's user", self.sdk.users.whoami)
        http = self.sdk._client_wrapper.httpx_client
        response = self._call("set the user's organization", http.request,
                              f"api/users/{user_id}/", method="PATCH",
                              json={"active_organization": me.active_organization})
        if not 200 <= response.status_code < 300:
            raise LabelStudioError(f"Label Studio refused to put user {email} into "
                                   f"organization {me.active_organization} (HTTP "
                                   f"{response.status_code}): {_one_line(response.text)}")
        return user_id

    def set_overlap(self, project_id: int, reviewers: int, percent: int = 100,
                    show_overlap_first: bool = True) -> None:
        """Label Studio's own overlap settings: ``reviewers`` annotations make a task
        complete, on ``percent`` of the tasks (the rest need one); tasks that need more
        than one are served first."""
        self._call("set the project's overlap", self.sdk.projects.update, id=project_id,
                   maximum_annotations=reviewers, overlap_cohort_percentage=percent,
                   show_overlap_first=show_overlap_first)

    def overlap(self, project_id: int) -> tuple[int, int, bool]:
        """(maximum_annotations, overlap_cohort_percentage, show_overlap_first)."""
        project = self.project(project_id)
        return (int(project.maximum_annotations or 1),
                int(project.overlap_cohort_percentage or 100),
                bool(project.show_overlap_first))

    def task_overlaps(self, project_id: int) -> dict[int, tuple[int, bool]]:
        """Task id -> (annotations it needs, whether Label Studio counts it complete)."""
        out = {}
        for task in self._pages("list tasks", self.sdk.tasks.list, project=project_id,
                                include="id,overlap,is_labeled", page_size=1000):
            out[int(task.id)] = (int(task.overlap or 1), bool(task.is_labeled))
        return out

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

    # schema migrations -------------------------------------------------------------------

    def all_tasks(self, project_id: int, page_size: int = 500) -> Iterator[dict[str, Any]]:
        """Every task of a project with its annotations, by task id (read through the list
        endpoint, which does not ask the ML backend for predictions)."""
        query = {"filters": {"conjunction": "and", "items": []}, "ordering": ["tasks:id"]}
        for task in self._pages("list tasks", self.sdk.tasks.list, project=project_id,
                                query=json.dumps(query), fields="all", page_size=page_size):
            yield task.model_dump(mode="json")

    def update_annotation(self, annotation_id: int, result: list[dict[str, Any]]) -> dict[str, Any]:
        """Replace an annotation's result; returns the annotation as stored."""
        annotation = self._call("update an annotation", self.sdk.annotations.update,
                                id=annotation_id, result=result)
        return dict(annotation.model_dump(mode="json"))

    def replace_unannotated_task(self, project_id: int, task_id: int,
                                 task: dict[str, Any]) -> str:
        """Replace a task's data and meta with ``task``'s while it has no annotation
        (submitted, skipped or draft): ``"updated"``, ``"unchanged"``, ``"annotated"``
        (left as it is) or ``"missing"``. Read through the list endpoint (no prediction
        request to the ML backend); an annotation saved between the read and the write is
        not seen."""
        query = {"filters": {"conjunction": "and", "items": [
            {"filter": "filter:tasks:id", "operator": "equal", "type": "Number",
             "value": int(task_id)}]}}
        body = self._request("read a task", "GET", "api/tasks/", {
            "project": int(project_id), "query": json.dumps(query), "fields": "all",
            "include": "id,data,meta,total_annotations,cancelled_annotations,drafts",
            "page": 1, "page_size": 1})
        found = body.get("tasks", []) if isinstance(body, dict) else body
        current = next((t for t in found or [] if int(t.get("id", -1)) == int(task_id)), None)
        if current is None:
            return "missing"
        if int(current.get("total_annotations") or 0) or int(
                current.get("cancelled_annotations") or 0) or current.get("drafts"):
            return "annotated"
        if current.get("data") == task["data"] and (current.get("meta") or {}) == task["meta"]:
            return "unchanged"
        self._request("update a task", "PATCH", f"api/tasks/{int(task_id)}/",
                      body={"data": task["data"], "meta": task["meta"]})
        return "updated"

    def update_task_data(self, task_id: int, data: dict[str, Any]) -> None:
        """Replace a task's data (its annotations and meta are kept)."""
        self._request("update a task", "PATCH", f"api/tasks/{int(task_id)}/",
                      body={"data": data})

    def merge_task_fields(self, task_id: int, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into a task's data (the Data Manager filters and shows them as
        columns) and its meta; the other keys are kept."""
        task = self._call("read a task", self.sdk.tasks.get, id=str(task_id))
        meta = task.meta if isinstance(task.meta, dict) else {}
        self._call("update a task", self.sdk.tasks.update, id=str(task_id),
                   data={**(task.data or {}), **fields}, meta={**meta, **fields})

    def set_project_schema(self, project_id: int, schema: AnnotationSchema,
                           queue: str | None = None) -> None:
        """Move an existing project to another schema version: title, config, rubric."""
        queue = queue or settings.default_queue()
        self._call("update the project's label config", self.sdk.projects.update,
                   id=project_id, title=project_title(schema, queue),
                   label_config=build_label_config(schema),
                   expert_instruction=build_instructions(schema),
                   description=f"ls-llmtrace queue '{queue}', schema {schema.version_id}")

    # projects with a config not built from the schema (pairwise queues) -----------------

    def push_config(self, title: str, label_config: str, description: str = "",
                    instructions: str = "", lookup: bool = True) -> tuple[int, bool]:
        """Create or update a project with this exact config. Returns (id, created).
        ``lookup=False``: the caller knows no project has the title (one request less)."""
        common: dict[str, Any] = {
            "label_config": label_config, "description": description,
            "expert_instruction": instructions, "show_instruction": bool(instructions),
            "show_collab_predictions": True,  # reviewers see the judge's proposal
        }
        project_id = self.find_project(title) if lookup else None
        if project_id is None:
            project = self._request("create the project", "POST", "api/projects/",
                                    body={"title": title, **common})
            return int(project["id"]), True
        self._request("update the project", "PATCH", f"api/projects/{project_id}/", body=common)
        return project_id, False

    # Data Manager views -----------------------------------------------------------------

    def ensure_view(self, project_id: int, title: str, shown: Iterable[str]) -> str:
        """A Data Manager tab ``title`` of the project showing only the columns ``shown``
        (``tasks:data.<key>`` or ``tasks:<column>``): created, updated (its filters and
        ordering kept) or left as it is; returns which. Data columns exist once a task
        has the key."""
        pid = int(project_id)
        answer = self._request("list the Data Manager columns", "GET", "api/dm/columns/",
                               {"project": pid}) or {}
        ids = [f"tasks:data.{c['id']}" if c.get("parent") == "data" else f"tasks:{c['id']}"
               for c in answer.get("columns") or []
               if isinstance(c, dict) and c.get("id") and not c.get("children")]
        wanted = set(shown)
        hidden = sorted(i for i in ids if i not in wanted)
        views = self._request("list the Data Manager tabs", "GET", "api/dm/views/",
                              {"project": pid}) or []
        mine = next((v for v in views if isinstance(v, dict)
                     and (v.get("data") or {}).get("title") == title), None)
        columns = {"explore": hidden, "labeling": hidden}
        if mine is None:
            self._request("create a Data Manager tab", "POST", "api/dm/views/", body={
                "project": pid, "data": {
                    "title": title, "type": "list", "target": "tasks", "ordering": [],
                    "filters": {"conjunction": "and", "items": []},
                    "hiddenColumns": columns}})
            return "created"
        data = dict(mine.get("data") or {})
        if data.get("hiddenColumns") == columns:
            return "unchanged"
        self._request("update a Data Manager tab", "PATCH", f"api/dm/views/{int(mine['id'])}/",
                      body={"project": pid, "data": {**data, "hiddenColumns": columns}})
        return "updated"

    # pre-annotation ------------------------------------------------------------------------

    def set_model_version(self, project_id: int, model_version: str) -> None:
        """The project's current model version: Label Studio's "prediction score" column
        (and filter) averages the predictions of this version."""
        self._request("set the project's model version", "PATCH",
                      f"api/projects/{int(project_id)}/", body={"model_version": model_version})

    def tasks_with_predictions(self, project_id: int) -> list[tuple[int, list[tuple[int, str]]]]:
        """(task id, [(prediction id, model version), ...]) for every task of a project."""
        query = {"ordering": ["tasks:id"]}
        out = []
        for task in self._pages("list tasks", self.sdk.tasks.list, project=project_id,
                                query=json.dumps(query), fields="all", page_size=1000):
            predictions = []
            for prediction in getattr(task, "predictions", None) or []:
                get = (prediction.get if isinstance(prediction, dict)
                       else lambda key, p=prediction: getattr(p, key, None))
                version, pid = get("model_version"), get("id")
                if isinstance(pid, int) and not isinstance(pid, bool):
                    predictions.append((pid, str(version or "")))
            out.append((int(task.id), predictions))
        return out

    def tasks_with_prediction_versions(self, project_id: int) -> list[tuple[int, set[str]]]:
        """(task id, model versions of its predictions) for every task of a project."""
        return [(task_id, {v for _, v in predictions if v})
                for task_id, predictions in self.tasks_with_predictions(project_id)]

    def delete_task_predictions(self, project_id: int, task_ids: list[int]) -> None:
        """Delete every prediction of these tasks (Data Manager action, one call)."""
        self._call("delete predictions", self.sdk.actions.create,
                   id="delete_tasks_predictions", project=project_id,
                   selected_items={"all": False, "included": task_ids})

    def delete_prediction(self, prediction_id: int) -> None:
        self._call(f"delete prediction {prediction_id}", self.sdk.predictions.delete,
                   id=prediction_id)

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
