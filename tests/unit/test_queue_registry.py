"""The queue registry: titles parsed, versions checked, the store's queue table and its
backfill from the projects of an existing store, claims taken once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ls_llmtrace import settings
from ls_llmtrace.errors import ConfigError
from ls_llmtrace.ingest import queues
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]


def test_titles_parse_and_the_newest_version_wins() -> None:
    assert queues.parse_title("llmtrace review | default@v2") == ("review", "default", 2)
    assert queues.parse_title("llmtrace my queue | triage@v10") == ("my queue", "triage", 10)
    assert queues.parse_title("llm-judge-dm") is None
    assert queues.parse_title("llmtrace review | itest@v1 (cli)") is None
    found = queues.from_label_studio([
        {"id": 3, "title": "llmtrace review | default@v1"},
        {"id": 9, "title": "llmtrace review | default@v2"},
        {"id": 4, "title": "llmtrace pairs | default@v1",
         "description": "ls-llmtrace pairwise queue 'pairs', schema default@v1"},
        {"id": 5, "title": "someone else's project"},
    ])
    assert found == {
        "review": queues.Queue("review", 9, "default", 2),
        "pairs": queues.Queue("pairs", 4, "default", 1, "pairwise"),
    }


def test_an_older_version_is_refused_in_one_line(default_schema: AnnotationSchema) -> None:
    at_v2 = queues.Queue("review", 12, "default", 2)
    with pytest.raises(ConfigError) as refused:
        queues.check_version(at_v2, default_schema)
    message = str(refused.value)
    assert "\n" not in message
    assert "queue 'review' is at default@v2 (project 12)" in message
    assert "--queue review-v1" in message
    newer = queues.Queue("review", 12, "default", 0)
    with pytest.raises(ConfigError, match="schema push"):
        queues.check_version(newer, default_schema)
    queues.check_version(queues.Queue("review", 12, "default", 1), default_schema)


def test_schema_of_reads_the_current_version_or_names_what_is_missing(tmp_path: Path) -> None:
    schema = queues.schema_of(queues.Queue("review", 1, "default", 2), REPO / "label_configs")
    assert schema.version_id == "default@v2"
    with pytest.raises(ConfigError) as missing:
        queues.schema_of(queues.Queue("review", 7, "default", 9), tmp_path)
    assert "queue 'review' (project 7) is at default@v9" in str(missing.value)
    assert str(tmp_path) in str(missing.value)


def test_default_queue_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.default_queue() == "review"
    monkeypatch.setenv("LS_LLMTRACE_QUEUE", "triage")
    assert settings.default_queue() == "triage"


def test_queue_registry_round_trip(store: Store) -> None:
    assert queues.known(store, "review") is None
    queues.record(store, queues.Queue("review", 4, "default", 1))
    queues.record(store, queues.Queue("review", 4, "default", 2))
    assert queues.known(store, "review") == queues.Queue("review", 4, "default", 2)
    assert [(p["project_id"], p["schema_version"], p["title"]) for p in store.projects()] == [
        (4, 2, "llmtrace review | default@v2")]


def test_backfill_from_the_projects_of_an_existing_store(store_url: str) -> None:
    with Store(store_url) as store:
        # a store from before the registry: projects only, one queue with a v1 twin
        store.conn.execute("DROP TABLE queues")
        store.conn.execute("DELETE FROM migrations WHERE name='0700_queue_versions'")
        for row in [(1, "review", "default", 1, "llmtrace review | default@v1"),
                    (5, "review", "default", 2, "llmtrace review | default@v2"),
                    (6, "review", "default", 1, "llmtrace review | default@v1"),
                    (3, "slow", "default", 1, "llmtrace slow | default@v1"),
                    (7, "pairs", "default", 1, "llmtrace pairs | default@v1")]:
            store.remember_project(*row)
        store.conn.execute("INSERT INTO pair_candidates VALUES ('pairs', 't1', 'h', 'a', 0)")
    with Store(store_url) as store:
        got = {q["queue"]: (q["project_id"], q["schema_version"], q["kind"])
               for q in store.queues()}
    assert got == {"review": (5, 2, "review"), "slow": (3, 1, "review"),
                   "pairs": (7, 1, "pairwise")}


def test_a_claim_is_held_by_one_owner_until_taken_over(store: Store) -> None:
    now = datetime.now(UTC)
    items = [("t1", "why"), ("t2", "why")]
    assert store.claim(1, "q", items, "a") == {"t1", "t2"}
    assert store.claim(1, "q", items, "b") == set()
    store.close_claims(1, [(10, "t1")])
    assert [c["item_key"] for c in store.open_claims(1, ["t1", "t2"], "b")] == ["t2"]
    assert store.open_claims(1, ["t1", "t2"], "a") == []  # a's own claims are not "open"
    assert store.claim(1, "q", items, "b", take_over=["t2"]) == {"t2"}
    store.release_claims(1, ["t2"], "b")
    assert [(i["item_key"], i["task_id"]) for i in store.queue_items("q")] == [("t1", 10)]
    # taking over a sent claim clears its sent mark; a finished claim is never taken
    assert store.claim(1, "q", [("t3", "why")], "c") == {"t3"}
    store.record_tasks(1, [(7, "t0")])
    store.mark_sent(1, ["t3"], "c")
    [claim] = store.open_claims(1, ["t3"], "d")
    assert claim["claimed_by"] == "c" and claim["sent_at"] is not None
    assert claim["sent_after_task"] == 7
    assert store.claim(1, "q", [("t3", "why")], "d") == set()
    assert store.claim(1, "q", [("t3", "why")], "d", take_over=["t3"]) == {"t3"}
    assert store.open_claims(1, ["t3"], "c")[0]["sent_at"] is None  # d has not sent it
    store.finish_claims(1, [(11, "t3")])
    assert store.known_trace_ids(1) == {"t0", "t3"}
    assert store.claim(1, "q", [("t3", "why")], "e", take_over=["t3"]) == set()
    assert store.try_lock("x", "a", now - timedelta(seconds=600)) is None
    assert store.try_lock("x", "b", now - timedelta(seconds=600)) == "a"
    store.release_lock("x", "a")
    assert store.try_lock("x", "b", now - timedelta(seconds=600)) is None


def test_a_new_queue_starts_at_the_newest_version_other_queues_are_at(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("LS_LLMTRACE_SCHEMA", raising=False)
    assert queues.default_schema(store).version_id == "default@v1"
    queues.record(store, queues.Queue("review", 7, "default", 2))
    assert queues.default_schema(store).version_id == "default@v2"
    monkeypatch.setenv("LS_LLMTRACE_SCHEMA", str(REPO / "label_configs" / "default.v1.yaml"))
    assert queues.default_schema(store).version_id == "default@v1"  # as the user set it
