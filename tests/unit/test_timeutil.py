"""timeutil.py: timestamps normalized to aware UTC, Label Studio's filter format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from ls_llmtrace.timeutil import format_ls_datetime, to_utc


def test_to_utc_strings():
    assert to_utc("2025-06-01T10:00:00Z") == datetime(2025, 6, 1, 10, tzinfo=UTC)
    assert to_utc("2025-06-01T10:00:00.5Z") == datetime(2025, 6, 1, 10, 0, 0, 500000,
                                                        tzinfo=UTC)
    converted = to_utc("2025-06-01T12:00:00+02:00")
    assert converted == datetime(2025, 6, 1, 10, tzinfo=UTC)
    assert converted.tzinfo is UTC


def test_to_utc_naive_is_taken_as_utc():
    got = to_utc(datetime(2025, 6, 1, 10))
    assert got == datetime(2025, 6, 1, 10, tzinfo=UTC)
    assert got.tzinfo is UTC
    assert to_utc("2025-06-01T10:00:00").tzinfo is UTC


def test_to_utc_aware_datetime_and_none():
    eastern = timezone(timedelta(hours=-5))
    assert to_utc(datetime(2025, 6, 1, 5, tzinfo=eastern)) == datetime(2025, 6, 1, 10, tzinfo=UTC)
    assert to_utc(None) is None


def test_format_ls_datetime():
    value = datetime(2025, 6, 1, 12, 0, 0, 1234, tzinfo=timezone(timedelta(hours=2)))
    assert format_ls_datetime(value) == "2025-06-01T10:00:00.001234Z"
    assert to_utc(format_ls_datetime(value)) == value
