"""Datetime helpers shared by the Label Studio client and the pure mapping code."""

from __future__ import annotations

from datetime import UTC, datetime

LS_DATETIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # the only format Label Studio's filters accept


def to_utc(value: datetime | str | None) -> datetime | None:
    """Normalize a timestamp (the SDK gives a datetime or a string) to aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_ls_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime(LS_DATETIME)
