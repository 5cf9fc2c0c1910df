"""The two engines behind the store: SQLite and PostgreSQL (psycopg 3), one SQL dialect.

The package writes ``?`` placeholders and ``INSERT ... ON CONFLICT``; on PostgreSQL,
:class:`PgConnection` turns ``?`` into the driver's placeholders and gives rows that index
by name like ``sqlite3.Row``. Migrations are written in that shared dialect; ``REAL`` and
``AUTOINCREMENT`` are adapted for PostgreSQL by :func:`to_pg_ddl`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ls_llmtrace.errors import StoreError

# A connection of either engine: sqlite3.Connection or PgConnection (same calls used).
Connection = Any

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

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        cursor = self.raw.cursor()
        if params:
            cursor.execute(to_pg_sql(sql), tuple(params))
        else:
            cursor.execute(sql)
        return cursor

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Any:
        cursor = self.raw.cursor()
        rows = [tuple(p) for p in seq]
        if rows:
            cursor.executemany(to_pg_sql(sql), rows)
        return cursor

    def close(self) -> None:
        self.raw.close()


def _redact(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


