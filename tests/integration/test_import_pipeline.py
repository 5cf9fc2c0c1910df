"""The import road against a real Label Studio: the batches ramp up (a small first
request, each next one as big as can be prepared meanwhile, up to --batch-size), every
batch's tasks are recorded with the ids Label Studio gave them, and an import makes no
more fixed requests than it needs (a new queue: one project lookup and one create before
its first batch; a known one: one listing; besides, only the queue's review tab in the
Data Manager)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ls_llmtrace.ingest.importers import read_any
from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.store import Store


class CountingClient(LabelStudioClient):
    """The real client, noting every request it sends (method, path, tasks sent)."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(url, token)
        self.sent: list[tuple[str, str, int]] = []

    def _request(self, what: str, method: str, path: str, params: dict[str, Any] | None = None,
                 content: bytes | None = None, body: Any = None) -> Any:
        tasks = len(json.loads(content)) if path.endswith("/import") and content else 0
        self.sent.append((method, path, tasks))
        return super()._request(what, method, path, params, content, body)


def _traces(path: Path, n: int, prefix: str) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            out.write(json.dumps({"trace_id": f"{prefix}-{i:04d}", "output": f"answer {i}.",
                                  "messages": [{"role": "user", "content": f"q {i}"}]}) + "\n")
    return path


def test_batches_ramp_up_and_each_is_recorded_with_its_task_ids(
        ls_env: Path, ls_client: LabelStudioClient) -> None:
    client = CountingClient(ls_client.url, ls_client.token)
    path = _traces(ls_env / "ramp.jsonl", 1650, "ramp")
    with Store() as store:
        result = import_traces(client, store, read_any(path, "native"), queue="ramp",
                               batch_size=1000)
        project_id = result.project_id
        assert result.summary.imported == 1650
        # a new queue: one lookup by title, one create, then only the import requests
        assert [(m, p) for m, p, _ in client.sent[:2]] == [
            ("GET", "api/projects/"), ("POST", "api/projects/")]
        imports = [(m, p, n) for m, p, n in client.sent[2:] if p.endswith("/import")]
        assert client.sent[2:2 + len(imports)] == imports  # nothing before or between
        assert all(m == "POST" and p == f"api/projects/{project_id}/import"
                   for m, p, _ in imports), imports
        assert [n for _, _, n in imports] == [100, 540, 1000, 10]
        # after them only the review tab of the new project (Data Manager requests)
        assert all(p.startswith("api/dm/") for _, p, _ in client.sent[2 + len(imports):])

        # every claim finished with the id Label Studio gave the task, each trace once
        in_ls = dict((trace, task) for task, trace in ls_client.task_trace_ids(project_id))
        assert len(in_ls) == 1650 == len(list(ls_client.task_trace_ids(project_id)))
        items = store.queue_items("ramp")
        assert len(items) == 1650
        assert {i["item_key"]: i["task_id"] for i in items} == in_ls
        assert all(i["sent_at"] is not None for i in items)

        # again: the queue is known (no lookup), one listing of new tasks, nothing sent
        client.sent.clear()
        again = import_traces(client, store, read_any(path, "native"), queue="ramp")
        assert again.summary.imported == 0 and again.summary.duplicates == 1650
        assert client.sent[0][:2] == ("GET", "api/tasks/")
        assert all(p.startswith("api/dm/") for _, p, _ in client.sent[1:]), client.sent
    assert len(list(ls_client.task_trace_ids(project_id))) == 1650
