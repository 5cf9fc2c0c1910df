"""The two engines behind the store: SQLite and PostgreSQL (psycopg 3), one SQL dialect.

The package writes ``?`` placeholders and ``INSERT ... ON CONFLICT``; on PostgreSQL,
:class:`PgConnection` turns ``?`` into the driver's placeholders and gives rows that index
by name like ``sqlite3.Row``. Migrations are written in that shared dialect; ``REAL`` and
``AUTOINCREMENT`` are adapted for PostgreSQL by :func:`to_pg_ddl`.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ls_llmtrace.errors import StoreError


class Cursor(Protocol):
    """What the package reads from an executed statement, on either engine. Rows index
    by column name and by position (``sqlite3.Row``, :class:`PgRow`)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection of either engine: ``sqlite3.Connection`` or :class:`PgConnection`."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...

    def close(self) -> None: ...

def sqlite_path(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise StoreError(
            f"unsupported store URL {url!r}: use sqlite:///path/to/store.sqlite "
            "or postgresql://user@host/dbname"
        )
    return Path(url.removeprefix("sqlite:///"))


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


# PostgreSQL -------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?|%")


def to_pg_sql(sql: str) -> str:
    """``?`` -> ``%s`` and ``%`` -> ``%%``, leaving quoted string literals' ``?`` alone."""

    def swap(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return token.replace("%", "%%")

    return _PLACEHOLDER.sub(swap, sql)


def to_pg_ddl(sql: str) -> str:
    """Adapt a migration written for SQLite: 8-byte floats, identity keys."""
    sql = re.sub(r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b", "BIGSERIAL PRIMARY KEY", sql,
                 flags=re.IGNORECASE)
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql, flags=re.IGNORECASE)


class PgRow(dict[str, Any]):
    """A row that answers ``row["name"]`` and ``row[0]``, like ``sqlite3.Row``."""

    def __init__(self, names: Sequence[str], values: Sequence[Any]) -> None:
        super().__init__(zip(names, values, strict=True))
        self._values = tuple(values)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            return self._values[key]
        return super().__getitem__(key)


def _pg_row_factory(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    names = [d.name for d in (cursor.description or [])]
    return lambda values: PgRow(names, values)


class PgConnection:
    """The calls the package makes on ``store.conn``, for psycopg 3 (autocommit, so
    transactions are explicit, exactly as with SQLite's ``isolation_level=None``)."""

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - psycopg is a dependency
            raise StoreError("PostgreSQL needs psycopg: pip install 'psycopg[binary]'") from exc
        try:
            self.raw = psycopg.connect(url, autocommit=True, row_factory=_pg_row_factory)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the PostgreSQL store {_redact(url)}: "
                f"{str(exc).strip()}; check LS_LLMTRACE_DB"
            ) from exc

    def execute(self, sql: str, params: Sequence[Any] | None = None, /) -> Cursor:
        cursor = self.raw.cursor()
        if params:
            cursor.execute(to_pg_sql(sql), tuple(params))
        else:
            cursor.execute(sql)
        return cursor

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]], /) -> Cursor:
        cursor = self.raw.cursor()
        rows = [tuple(p) for p in seq]
        if rows:
            cursor.executemany(to_pg_sql(sql), rows)
        return cursor

    def close(self) -> None:
        self.raw.close()


def _redact(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


# errors -------------------------------------------------------------------------------------


def _sqlite_advice(exc: sqlite3.Error, where: str, doing: str) -> str | None:
    text = str(exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return (f"the store {where} is locked by another process ({doing}): wait for the "
                "other import or sync to finish, or stop it, and run the command again")
    if "readonly" in lowered or "read-only" in lowered:
        return (f"the store {where} is read-only ({doing}): make the file and its directory "
                "writable, or point LS_LLMTRACE_DB at a store you can write")
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return (f"the store {where} is not a readable SQLite database ({text}): restore it "
                "from a backup, or move it aside and run again to start a new store")
    if "unable to open" in lowered:
        return (f"cannot open the store {where} ({text}): check that its directory exists "
                "and is writable, or set LS_LLMTRACE_DB")
    if "disk" in lowered or "full" in lowered or "i/o" in lowered:
        return f"the store {where} could not be written ({text}): check the disk and its space"
    if type(exc) in (sqlite3.DatabaseError, sqlite3.OperationalError, sqlite3.InternalError):
        return f"the store {where} failed ({doing}): {text}"
    return None  # integrity and programming errors are bugs: keep their traceback


def _pg_advice(exc: Exception, where: str, doing: str) -> str | None:
    import psycopg
    from psycopg import errors as pg

    text = " ".join(str(exc).split())
    if isinstance(exc, (pg.LockNotAvailable, pg.DeadlockDetected, pg.QueryCanceled)):
        return (f"the store {where} is locked by another session ({doing}: {text}): wait "
                "for the other import or sync to finish and run the command again")
    if isinstance(exc, (pg.ReadOnlySqlTransaction, pg.InsufficientPrivilege)):
        return (f"the store {where} refuses writes ({doing}: {text}): connect to the primary "
                "with a role that may write (LS_LLMTRACE_DB)")
    if isinstance(exc, (psycopg.OperationalError, psycopg.InternalError)):
        return (f"the PostgreSQL store {where} failed ({doing}: {text}): check that the "
                "server is up and LS_LLMTRACE_DB, and run the command again")
    return None


def store_error(exc: BaseException, where: str, doing: str) -> StoreError | None:
    """The StoreError for a database failure that is the user's to fix (a locked,
    read-only, corrupt or unreachable store), naming the store and what to do; None for
    anything else."""
    advice: str | None = None
    if isinstance(exc, sqlite3.Error):
        advice = _sqlite_advice(exc, where, doing)
    elif type(exc).__module__.startswith("psycopg") and isinstance(exc, Exception):
        advice = _pg_advice(exc, where, doing)
    return StoreError(advice) if advice else None


def redact_url(url: str) -> str:
    """The store URL without its password."""
    return _redact(url)
