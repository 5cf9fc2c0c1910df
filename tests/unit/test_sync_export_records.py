"""How the sync recognizes its own snapshot exports, and the store's notes of them (both
engines). The sync against the real Label Studio is tests/integration/test_sync_exports.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from ls_llmtrace.labelstudio.client import EXPORT_TITLE_PREFIX, export_owner, export_title
from ls_llmtrace.records.sync import STALE_EXPORT_S, export_abandoned

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
HOST = socket.gethostname()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_title_names_host_and_pid() -> None:
    title = export_title()
    assert title == f"{EXPORT_TITLE_PREFIX} {HOST} pid {os.getpid()}"
    assert export_owner(title) == (HOST, os.getpid())
    assert export_owner(EXPORT_TITLE_PREFIX) is None
    assert export_owner(f"{EXPORT_TITLE_PREFIX} h pid x") is None


def test_which_exports_are_abandoned() -> None:
    recent = NOW - timedelta(seconds=60)
    old = NOW - timedelta(seconds=STALE_EXPORT_S + 1)
    dead = f"{EXPORT_TITLE_PREFIX} {HOST} pid {_dead_pid()}"
    live = f"{EXPORT_TITLE_PREFIX} {HOST} pid {os.getppid()}"
    mine = export_title()
    elsewhere = f"{EXPORT_TITLE_PREFIX} another-host pid 12"
    assert export_abandoned(dead, recent, NOW)
    assert not export_abandoned(live, recent, NOW)
    assert not export_abandoned(mine, recent, NOW)  # this very process is syncing
    assert not export_abandoned(elsewhere, recent, NOW)
    assert export_abandoned(elsewhere, old, NOW)  # no sync waits that long
    assert export_abandoned(live, old, NOW)
    assert export_abandoned(EXPORT_TITLE_PREFIX, recent, NOW)  # an earlier version's
    assert not export_abandoned(f"{EXPORT_TITLE_PREFIX}ish report", old, NOW)


def test_the_store_notes_exports_until_the_sync_finishes(store) -> None:
    assert store.sync_export_attempts(7) == 0
    store.note_sync_export(7, 41, "ls-llmtrace sync h pid 1")
    store.note_sync_export(7, 41, "ls-llmtrace sync h pid 1")  # a repeat changes nothing
    store.note_sync_export(7, 42, "ls-llmtrace sync h pid 2")
    store.note_sync_export(8, 50, "ls-llmtrace sync h pid 3")
    assert [(e, o) for e, o, _ in store.sync_exports_left(7)] == [
        (41, "ls-llmtrace sync h pid 1"), (42, "ls-llmtrace sync h pid 2")]
    store.mark_sync_export_gone(7, 41)
    assert [e for e, _, _ in store.sync_exports_left(7)] == [42]
    assert store.sync_export_attempts(7) == 2  # gone or not, each was an attempt
    store.forget_sync_exports(7)
    assert store.sync_export_attempts(7) == 1  # the one still maybe in Label Studio stays
    assert [e for e, _, _ in store.sync_exports_left(8)] == [50]
