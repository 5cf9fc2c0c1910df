"""A store that cannot be used is a StoreError naming it and saying what to do; reading
records leaves the caller's filter alone."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from ls_llmtrace.cli import main
from ls_llmtrace.errors import StoreError
from ls_llmtrace.models import AnnotationRecord, Source, Trace
from ls_llmtrace.store import RecordFilter, Store

NOBODY = 65534


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the unprivileged child below can reach (pytest's tmp_path is private)."""
    directory = Path(tempfile.mkdtemp(prefix="ls-llmtrace-store-"))
    directory.chmod(0o777)
    yield directory
    directory.chmod(0o700)
    shutil.rmtree(directory)


def _sqlite_store(directory: Path) -> Path:
    path = directory / "store.sqlite"
    Store(f"sqlite:///{path}").close()
    return path


def _as_unprivileged(action: Callable[[], str]) -> str:
    """Run ``action`` in a forked child without root (root ignores file modes); return
    what it answered."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            if os.geteuid() == 0:
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            try:
                answer = action()
            except BaseException as exc:  # report anything to the parent
                answer = f"{exc.__class__.__name__}: {exc}"
            os.write(write, answer.encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    return b"".join(chunks).decode()


def test_a_corrupt_store_file_is_a_store_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    path.write_bytes(b"not a database at all " * 200)
    with pytest.raises(StoreError) as caught:
        Store(f"sqlite:///{path}")
    assert str(path) in str(caught.value)
    assert "not a readable SQLite database" in str(caught.value)
    assert "move it aside" in str(caught.value)


def test_a_corrupt_store_is_one_line_from_the_cli(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "store.sqlite"
    path.write_bytes(b"garbage" * 500)
    monkeypatch.setenv("LS_LLMTRACE_DB", f"sqlite:///{path}")
    monkeypatch.delenv("LS_LLMTRACE_DEBUG", raising=False)
    result = CliRunner().invoke(main, ["records", "--json"])
    assert result.exit_code == StoreError.exit_code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: the store {path} "), result.stderr


@pytest.mark.parametrize("directory_writable", [True, False])
def test_a_read_only_store_file_is_a_store_error_naming_it(
    shared_dir: Path, directory_writable: bool
) -> None:
    path = _sqlite_store(shared_dir)
    path.chmod(0o444)
    if not directory_writable:
        path.parent.chmod(0o555)

    def open_and_write() -> str:
        with Store(f"sqlite:///{path}") as store:
            store.upsert_traces([Trace(trace_id="t-ro")])
        return "written"

    answer = _as_unprivileged(open_and_write)
    assert answer.startswith(f"StoreError: the store {path} is read-only"), answer
    assert "make the file and its directory writable" in answer


def test_a_locked_store_is_a_store_error_naming_it(tmp_path: Path) -> None:
    path = _sqlite_store(tmp_path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        with Store(f"sqlite:///{path}", busy_timeout=0.1) as store:  # opening needs no lock
            with pytest.raises(StoreError) as caught:
                store.upsert_traces([Trace(trace_id="t-locked")])
            assert str(caught.value).startswith(f"the store {path} is locked by another")
            assert "wait for the other import or sync" in str(caught.value)
            # the failed write left no transaction open: the store works once unlocked
            other.execute("ROLLBACK")
            store.upsert_traces([Trace(trace_id="t-locked")])
            assert store.has_trace("t-locked")
    finally:
        other.close()


def test_a_store_locked_while_migrating_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "blank.sqlite"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match=rf"the store {path} is locked"):
            Store(f"sqlite:///{path}", busy_timeout=0.1)
    finally:
        other.close()


def test_postgresql_read_only_and_locked_are_store_errors(pg_cluster) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    url = pg_cluster.create_database()
    try:
        Store(url).close()
        name = url.split("?")[0].rsplit("/", 1)[-1]
        with psycopg.connect(url, autocommit=True) as admin:
            with admin.transaction():
                admin.execute("LOCK TABLE traces IN ACCESS EXCLUSIVE MODE")
                with Store(url, busy_timeout=0.2) as store, pytest.raises(StoreError) as locked:
                    store.upsert_traces([Trace(trace_id="t-pg")])
            assert "is locked by another session" in str(locked.value)
            assert name in str(locked.value)
            admin.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        with pytest.raises(StoreError) as read_only:
            Store(url)
        assert "refuses writes" in str(read_only.value) and name in str(read_only.value)
    finally:
        pg_cluster.drop_database(url)


def test_records_leaves_the_callers_filter_untouched(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        when = datetime(2025, 6, 1, tzinfo=UTC)
        with store.transaction() as conn:
            for key, source, deleted in (("a", Source.reviewer, False),
                                         ("b", Source.qa, False),
                                         ("c", Source.reviewer, True)):
                Store.upsert_record(conn, AnnotationRecord(
                    record_key=key, trace_id="t1", schema_id="default", schema_version=1,
                    source=source, label="fail", created_at=when, updated_at=when,
                    deleted=deleted))
        where = RecordFilter(schema_id="default")
        before = dataclasses.replace(where)
        found = store.records(include_deleted=True, source="reviewer", where=where)
        assert [r.record_key for r in found] == ["a", "c"]
        assert where == before
        # the same filter, reused, still means what it said
        assert [r.record_key for r in store.records(where=where)] == ["a", "b"]
