"""Redaction against a real Label Studio: a span a reviewer marks on the redacted answer is
stored with the offsets and quote Label Studio holds, and with its range in the original."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ls_llmtrace.cli import main
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.store import Store

ANSWER = ("Your refund is on its way: reply to maria.garcia@example.com with the order "
          "number if it has not arrived by Friday.")


def test_span_on_redacted_answer_keeps_true_offsets(
    ls_env: Path, ls_client: LabelStudioClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LS_LLMTRACE_REDACT", "email")
    path = ls_env / "pii.jsonl"
    path.write_text(json.dumps({"trace_id": "pii-1", "output": ANSWER}) + "\n",
                    encoding="utf-8")
    runner = CliRunner()
    imported = runner.invoke(main, ["import", str(path), "--queue", "redacted",
                                    "--schema", "label_configs/default.v2.yaml"])
    assert imported.exit_code == 0, imported.output
    project_id = ls_client.find_project("llmtrace redacted | default@v2")
    assert project_id is not None
    [(task_id, trace_id)] = list(ls_client.task_trace_ids(project_id))
    assert trace_id == "pii-1"
    shown = ls_client.sdk.tasks.get(id=task_id).data["answer"]
    assert "maria.garcia" not in shown and "[email]" in shown  # what the reviewer sees

    quote = "reply to [email] with"
    start = shown.index(quote)
    ls_client.sdk.annotations.create(id=task_id, result=[
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["fail"]}},
        {"id": "span1", "from_name": "answer_spans", "to_name": "answer", "type": "labels",
         "value": {"start": start, "end": start + len(quote), "text": quote,
                   "labels": ["unsafe_content"]}},
    ])
    synced = runner.invoke(main, ["sync"])
    assert synced.exit_code == 0, synced.output

    with Store() as store:
        [span] = [r for r in store.records(source="reviewer") if r.scope.kind == "text_range"]
        trace = store.trace("pii-1")
    assert trace is not None and trace.output == ANSWER  # the store keeps the original
    scope = span.scope
    assert (scope.start, scope.end, scope.text) == (start, start + len(quote), quote)
    assert shown[scope.start:scope.end] == quote
    assert scope.original_start is not None and scope.original_end is not None
    assert ANSWER[scope.original_start:scope.original_end] == \
        "reply to maria.garcia@example.com with"
