"""The store's schema, as an append-only list of migrations (applied by ``Store.migrate``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ls_llmtrace.store.engine import Connection

# Append only: never edit a migration that has shipped.
MIGRATIONS: list[tuple[str, str]] = [
    ("0001_initial", """
        CREATE TABLE traces (
            trace_id TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            body TEXT NOT NULL,
            imported_at TEXT NOT NULL
        );
        CREATE TABLE projects (
            project_id INTEGER PRIMARY KEY,
            queue TEXT NOT NULL,
            schema_id TEXT NOT NULL,
            schema_version INTEGER NOT NULL,
            title TEXT NOT NULL
        );
        CREATE TABLE ls_tasks (
            project_id INTEGER NOT NULL,
            trace_id TEXT NOT NULL,
            task_id INTEGER NOT NULL,
            PRIMARY KEY (project_id, trace_id)
        );
        CREATE INDEX ls_tasks_task ON ls_tasks (project_id, task_id);
        CREATE TABLE sync_cursors (
            project_id INTEGER PRIMARY KEY,
            updated_at TEXT NOT NULL,
            synced_at TEXT NOT NULL
        );
        CREATE TABLE records (
            record_key TEXT PRIMARY KEY,
            trace_id TEXT NOT NULL,
            schema_id TEXT NOT NULL,
            schema_version INTEGER NOT NULL,
            source TEXT NOT NULL,
            label TEXT,
            score REAL,
            author TEXT,
            ls_project_id INTEGER,
            ls_task_id INTEGER,
            ls_annotation_id INTEGER,
            deleted INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT,
            body TEXT NOT NULL
        );
        CREATE INDEX records_trace ON records (trace_id);
        CREATE INDEX records_annotation ON records (ls_project_id, ls_annotation_id);
        CREATE TABLE rejected_results (
            reject_key TEXT PRIMARY KEY,
            ls_project_id INTEGER,
            ls_task_id INTEGER,
            ls_annotation_id INTEGER,
            field TEXT NOT NULL,
            reason TEXT NOT NULL,
            raw TEXT NOT NULL,
            seen_at TEXT NOT NULL
        );
    """),
    # The journal of schema migrations (plan, per-annotation done-markers, review queue);
    # a run with status 'done' is the log entry of an applied migration.
    ("0300_schema_migration_journal", """
        CREATE TABLE schema_migration_runs (
            run_id TEXT PRIMARY KEY,
            project_id INTEGER NOT NULL,
            queue TEXT NOT NULL,
            schema_id TEXT NOT NULL,
            from_version INTEGER NOT NULL,
            to_version INTEGER NOT NULL,
            migration_name TEXT NOT NULL,
            migration_sha TEXT NOT NULL,
            status TEXT NOT NULL,
            planned_at TEXT NOT NULL,
            finished_at TEXT,
            summary TEXT NOT NULL
        );
        CREATE TABLE schema_migration_items (
            run_id TEXT NOT NULL,
            annotation_id INTEGER NOT NULL,
            task_id INTEGER NOT NULL,
            old_annotation TEXT NOT NULL,
            new_result TEXT NOT NULL,
            reviews TEXT NOT NULL,
            changed INTEGER NOT NULL,
            outcome TEXT,
            done_at TEXT,
            PRIMARY KEY (run_id, annotation_id)
        );
        CREATE TABLE schema_migration_reviews (
            run_id TEXT NOT NULL,
            annotation_id INTEGER NOT NULL,
            task_id INTEGER NOT NULL,
            field TEXT NOT NULL,
            value TEXT NOT NULL,
            reason TEXT NOT NULL,
            raw TEXT NOT NULL,
            PRIMARY KEY (run_id, annotation_id, field, value)
        )
    """),
    # Review queues. queue_items is the claim row per (project, trace or pair),
    # inserted before the Label Studio import so two imports at once never both import;
    # store_locks serializes project creation; pair_candidates feeds pairwise queues.
    ("0400_review_queues", """
        CREATE TABLE queue_items (
            project_id INTEGER NOT NULL,
            item_key TEXT NOT NULL,
            queue TEXT NOT NULL,
            reason TEXT NOT NULL,
            claimed_by TEXT NOT NULL,
            claimed_at TEXT NOT NULL,
            task_id INTEGER,
            PRIMARY KEY (project_id, item_key)
        );
        CREATE INDEX queue_items_queue ON queue_items (queue, task_id);
        CREATE TABLE store_locks (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            acquired_at TEXT NOT NULL
        );
        CREATE TABLE pair_candidates (
            queue TEXT NOT NULL,
            trace_id TEXT NOT NULL,
            input_hash TEXT NOT NULL,
            variant TEXT NOT NULL,
            paired INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (queue, trace_id)
        );
        CREATE INDEX pair_candidates_hash ON pair_candidates (queue, input_hash, paired);
    """),
    # Feedback channels: record dimensions and timestamps, trace links, the tasks a sync
    # has seen (to notice deleted ones) and rejected feedback.
    ("0600_feedback_channels", """
        ALTER TABLE records ADD COLUMN created_at TEXT;
        ALTER TABLE records ADD COLUMN model_version TEXT;
        ALTER TABLE records ADD COLUMN product_area TEXT;
        ALTER TABLE records ADD COLUMN user_segment TEXT;
        ALTER TABLE records ADD COLUMN trace_linked INTEGER NOT NULL DEFAULT 0;
        UPDATE records SET trace_linked=1 WHERE trace_id IN (SELECT trace_id FROM traces);
        UPDATE records SET created_at=updated_at WHERE created_at IS NULL;
        CREATE INDEX records_source ON records (source, label);
        CREATE INDEX records_created ON records (created_at);
        CREATE INDEX records_unlinked ON records (trace_linked, trace_id);
        CREATE INDEX records_task ON records (ls_project_id, ls_task_id);
        ALTER TABLE traces ADD COLUMN model_version TEXT;
        ALTER TABLE traces ADD COLUMN product_area TEXT;
        ALTER TABLE traces ADD COLUMN user_segment TEXT;
        CREATE TABLE sync_tasks (
            project_id INTEGER NOT NULL,
            task_id INTEGER NOT NULL,
            PRIMARY KEY (project_id, task_id)
        );
        CREATE TABLE rejected_feedback (
            reject_key TEXT PRIMARY KEY,
            channel TEXT,
            origin TEXT NOT NULL,
            reason TEXT NOT NULL,
            raw TEXT NOT NULL,
            seen_at TEXT NOT NULL
        )
    """),
    # One project and one current schema version per review queue (the queue registry).
    ("0700_queue_versions", """
        CREATE TABLE queues (
            queue TEXT PRIMARY KEY,
            project_id INTEGER NOT NULL,
            schema_id TEXT NOT NULL,
            schema_version INTEGER NOT NULL,
            kind TEXT NOT NULL,
            title TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
    """),
    # The regression gate: stored runs (the baselines) and the cache of generated candidates.
    ("0810_eval_runs", """
        CREATE TABLE eval_runs (
            run_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            set_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            passed INTEGER NOT NULL,
            total INTEGER NOT NULL,
            body TEXT NOT NULL
        );
        CREATE INDEX eval_runs_name ON eval_runs (name, created_at);
        CREATE TABLE eval_candidates (
            cache_key TEXT PRIMARY KEY,
            endpoint TEXT NOT NULL,
            model TEXT NOT NULL,
            output TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
    """),
    # One row per `eval judge` run: a judge version's agreement with the reviewers on a set.
    ("0820_judge_evaluations", """
        CREATE TABLE judge_evaluations (
            eval_id INTEGER PRIMARY KEY AUTOINCREMENT,
            judge_name TEXT NOT NULL,
            judge_version TEXT NOT NULL,
            set_id TEXT NOT NULL,
            schema_id TEXT NOT NULL,
            schema_version INTEGER NOT NULL,
            kappa REAL NOT NULL,
            ci_low REAL NOT NULL,
            ci_high REAL NOT NULL,
            accuracy REAL NOT NULL,
            tpr REAL,
            tnr REAL,
            n INTEGER NOT NULL,
            passed INTEGER NOT NULL,
            reference_id INTEGER,
            evaluated_at TEXT NOT NULL,
            body TEXT NOT NULL
        );
        CREATE INDEX judge_evaluations_judge ON judge_evaluations (judge_name, set_id);
    """),
    # What the reviewer did with the judge's proposal (the judge version an annotation was
    # made from, the verdict's origin), the owner's adjudications, and which review queue
    # each adjudication queue settles.
    ("0900_reviewer_origins_adjudication", """
        ALTER TABLE records ADD COLUMN judge_version TEXT;
        ALTER TABLE records ADD COLUMN label_origin TEXT;
        ALTER TABLE records ADD COLUMN adjudication INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX records_judge_version ON records (judge_version);
        CREATE TABLE adjudication_queues (
            queue TEXT PRIMARY KEY,
            source_queue TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX adjudication_queues_source ON adjudication_queues (source_queue)
    """),
    # The snapshot exports first syncs created: deleted after a crash, and an interrupted
    # export makes the next first sync page instead (see store/exports.py).
    ("0930_sync_exports", """
        CREATE TABLE sync_exports (
            project_id INTEGER NOT NULL,
            export_id INTEGER NOT NULL,
            owner TEXT NOT NULL,
            created_at TEXT NOT NULL,
            gone INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (project_id, export_id)
        )
    """),
    # When a claim's task was sent to Label Studio, and the highest task id the ledger
    # knew then (the task, if created, has a higher one): a claim of a crashed import that
    # was never sent is taken over at once; one that was sent, after one listing of the
    # tasks created since.
    ("0940_claim_sent_at", """
        ALTER TABLE queue_items ADD COLUMN sent_at TEXT;
        ALTER TABLE queue_items ADD COLUMN sent_after_task INTEGER
    """),
    # One row per `calibrate` run: the judge configuration chosen on the reviewers' labels;
    # the newest active row of a (judge, schema version) is what the backend uses.
    ("0970_judge_calibrations", """
        CREATE TABLE judge_calibrations (
            calibration_id INTEGER PRIMARY KEY AUTOINCREMENT,
            judge_kind TEXT NOT NULL,
            schema_id TEXT NOT NULL,
            schema_version INTEGER NOT NULL,
            queue TEXT,
            active INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            params TEXT NOT NULL,
            result TEXT NOT NULL
        );
        CREATE INDEX judge_calibrations_judge ON judge_calibrations
            (judge_kind, schema_id, schema_version);
    """),
    # Connectors to tracing tools: how far each pull has read, and what each push sent
    # (the remote id and a hash of what was sent, so a re-push updates or skips).
    ("0980_connector_state", """
        CREATE TABLE connector_cursors (
            system TEXT NOT NULL,
            scope TEXT NOT NULL,
            cursor TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (system, scope)
        );
        CREATE TABLE connector_pushes (
            system TEXT NOT NULL,
            scope TEXT NOT NULL,
            item_key TEXT NOT NULL,
            remote_id TEXT,
            content_hash TEXT NOT NULL,
            pushed_at TEXT NOT NULL,
            PRIMARY KEY (system, scope, item_key)
        )
    """),
    # The OTLP receiver's spool: every accepted span and log record, committed before the
    # answer goes out; per trace, what has arrived and how much of it was assembled.
    ("1020_collect_spool", """
        CREATE TABLE collect_spool (
            item_id INTEGER PRIMARY KEY AUTOINCREMENT,
            trace_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            item_key TEXT NOT NULL,
            body TEXT NOT NULL,
            received_at REAL NOT NULL,
            assembled INTEGER NOT NULL DEFAULT 0,
            UNIQUE (trace_id, kind, item_key)
        );
        CREATE INDEX collect_spool_pending ON collect_spool (assembled, trace_id);
        CREATE TABLE collect_traces (
            trace_id TEXT PRIMARY KEY,
            first_received_at REAL NOT NULL,
            last_received_at REAL NOT NULL,
            root_ended INTEGER NOT NULL DEFAULT 0,
            pending INTEGER NOT NULL DEFAULT 1,
            assemblies INTEGER NOT NULL DEFAULT 0,
            assembled_at REAL
        );
        CREATE INDEX collect_traces_pending ON collect_traces (pending, last_received_at);
        CREATE TABLE collect_rejects (
            reject_id INTEGER PRIMARY KEY AUTOINCREMENT,
            received_at REAL NOT NULL,
            signal TEXT NOT NULL,
            location TEXT NOT NULL,
            field TEXT NOT NULL,
            reason TEXT NOT NULL,
            raw TEXT
        )
    """),
]

# Names recorded by stores created before the migrations were named by what they do:
# ``Store.migrate`` renames them first, so nothing is applied twice.
RENAMED: dict[str, str] = {
    "0300_issue3_schema_migrations": "0300_schema_migration_journal",
    "0400_issue4_queues": "0400_review_queues",
    "0600_issue6_store": "0600_feedback_channels",
}


def rename_recorded(conn: Connection) -> None:
    """Rename migrations recorded under an old name (see :data:`RENAMED`)."""
    for old, new in RENAMED.items():
        conn.execute("UPDATE migrations SET name=? WHERE name=? AND NOT EXISTS "
                     "(SELECT 1 FROM migrations WHERE name=?)", (new, old, new))


def _backfill_trace_dimensions(conn: Connection) -> None:
    """Fill the trace dimension columns added by 0600 from the stored trace bodies."""
    rows = conn.execute("SELECT trace_id, body FROM traces").fetchall()
    for row in rows:
        meta = json.loads(row["body"]).get("metadata") or {}
        conn.execute(
            "UPDATE traces SET model_version=?, product_area=?, user_segment=? WHERE trace_id=?",
            (meta.get("model_version"), meta.get("product_area"), meta.get("user_segment"),
             row["trace_id"]))


def _backfill_queues(conn: Connection) -> None:
    """Each queue's current project: its newest schema version (then newest project)."""
    from datetime import UTC, datetime

    rows = conn.execute("SELECT * FROM projects").fetchall()
    pairwise = {r["queue"] for r in conn.execute("SELECT DISTINCT queue FROM pair_candidates")}
    best: dict[str, Any] = {}
    for row in rows:
        current = best.get(row["queue"])
        if current is None or (row["schema_version"], row["project_id"]) > (
                current["schema_version"], current["project_id"]):
            best[row["queue"]] = row
    now = datetime.now(UTC).isoformat()
    for queue, row in sorted(best.items()):
        conn.execute(
            "INSERT INTO queues VALUES (?, ?, ?, ?, ?, ?, ?)",
            (queue, row["project_id"], row["schema_id"], row["schema_version"],
             "pairwise" if queue in pairwise else "review", row["title"], now))


# Python steps that belong to a migration, run in its transaction.
_AFTER_MIGRATION: dict[str, Callable[[Connection], None]] = {
    "0600_feedback_channels": _backfill_trace_dimensions,
    "0700_queue_versions": _backfill_queues,
}
