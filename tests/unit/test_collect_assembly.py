"""From the spool to traces: when a trace is ready, and that the assembled trace is the
one ``import`` reads from the same export (the OTLP importer, log records attached)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.otlp_payloads import sdk_requests, to_otlp_json

from ls_llmtrace.collect.assembler import SOURCE, assemble
from ls_llmtrace.collect.payloads import decode, split
from ls_llmtrace.collect.receiver import create_app
from ls_llmtrace.errors import StoreError
from ls_llmtrace.ingest.importers import read_any
from ls_llmtrace.models import Trace
from ls_llmtrace.store import Store
from ls_llmtrace.store.collect import SpoolItem


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'store.sqlite'}")


def test_assembled_trace_is_what_import_reads_from_the_same_export(
        tmp_path: Path, sqlite_store: Store) -> None:
    store = sqlite_store
    produced = sdk_requests(2)
    http = create_app(store.url, no_auth=True).test_client()
    # logs first, as a separate exporter may deliver them
    assert http.post("/v1/logs", data=to_otlp_json(produced.logs),
                     headers={"Content-Type": "application/json"}).status_code == 200
    assert http.post("/v1/traces", data=produced.traces.SerializeToString(),
                     headers={"Content-Type": "application/x-protobuf"}).status_code == 200
    spans, logs = tmp_path / "spans.pb", tmp_path / "logs.pb"
    spans.write_bytes(produced.traces.SerializeToString())
    logs.write_bytes(produced.logs.SerializeToString())
    imported = {t.trace_id: t for t in read_any(spans, "otlp", logs=[logs])
                if isinstance(t, Trace)}
    for expected in produced.truth:
        trace = assemble(expected["trace_id"], store.spooled(expected["trace_id"]))
        assert isinstance(trace, Trace) and trace.source == SOURCE
        assert [(m.role, m.content) for m in trace.messages] == [("user", expected["question"])]
        assert trace.output == expected["answer"]
        assert trace.metadata.model == "gpt-4o-mini" and len(trace.spans) == 2
        same = imported[expected["trace_id"]].model_copy(update={"source": SOURCE})
        assert trace.model_dump() == same.model_dump()


def test_only_log_records_is_nothing_to_assemble_yet(sqlite_store: Store) -> None:
    store = sqlite_store
    produced = sdk_requests(1)
    parts = split("logs", decode("logs", "application/json", to_otlp_json(produced.logs)))
    store.spool(parts.items, [], 100.0)
    trace_id = produced.truth[0]["trace_id"]
    assert assemble(trace_id, store.spooled(trace_id)) is None


def _item(trace: str, span: str, root: bool = False) -> SpoolItem:
    return SpoolItem(trace, "span", span, "{}", ends_trace=root)


def test_ready_after_the_root_settles_or_after_quiet(store: Store) -> None:
    """On both engines (the ``store`` fixture)."""
    rooted, rootless = "a" * 32, "b" * 32
    store.spool([_item(rooted, "1" * 16), _item(rootless, "2" * 16)], [], 100.0)
    store.spool([_item(rooted, "3" * 16, root=True)], [], 101.0)
    # settle 2 s, quiet 30 s
    assert store.ready_traces(quiet_before=102 - 30, settle_before=102 - 2) == []
    assert store.ready_traces(quiet_before=103.5 - 30, settle_before=103.5 - 2) == [rooted]
    assert store.ready_traces(quiet_before=131 - 30, settle_before=131 - 2) == [rootless, rooted]
    # assembled: no longer ready; a late span makes it pending again
    [(_, upto)] = [(i, i) for i, _, _ in store.spooled(rooted)][-1:]
    store.mark_assembled([(rooted, upto)], 132.0)
    assert store.ready_traces(1e9, 1e9) == [rootless]
    assert store.spool_pending() == 1
    store.spool([_item(rooted, "4" * 16)], [], 140.0)
    assert store.ready_traces(1e9, 1e9) == [rootless, rooted]
    state = store.collect_trace_state(rooted)
    assert state is not None and state["assemblies"] == 1 and state["root_ended"] == 1
    # a retried span adds nothing and does not touch the trace's clock
    assert store.spool([_item(rooted, "4" * 16)], [], 150.0) == 0
    assert store.collect_trace_state(rooted)["last_received_at"] == 140.0  # type: ignore[index]


def test_a_killed_holders_store_lock_is_taken_over_at_once(sqlite_store: Store) -> None:
    """A collect (or import) killed while creating a queue's project leaves its lock: the
    next one must not wait out the lease."""
    import socket
    import subprocess
    import sys
    from datetime import UTC, datetime, timedelta

    from ls_llmtrace.ingest import claimant
    from ls_llmtrace.ingest.routing import store_lock

    gone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    start = claimant.process_start(gone.pid)
    gone.kill()
    gone.wait()
    dead = f"{socket.gethostname()}:{gone.pid}:{start}:deadbeef"
    assert claimant.is_running(dead) is False
    assert sqlite_store.try_lock("project:q", dead, datetime.now(UTC) - timedelta(hours=1)) \
        is None
    began = datetime.now(UTC)
    with store_lock(sqlite_store, "project:q", claimant.own_name(), timeout=5.0):
        pass
    assert (datetime.now(UTC) - began).total_seconds() < 2
    # a live holder is waited for (here: until the timeout)
    me = claimant.own_name()
    assert sqlite_store.try_lock("project:r", me, datetime.now(UTC) - timedelta(hours=1)) is None
    with pytest.raises(StoreError, match="is held by"), store_lock(
            sqlite_store, "project:r", claimant.own_name(), timeout=0.3):
        pass
