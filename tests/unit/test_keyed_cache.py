"""The store's keyed cache (used by the judge's verdict cache)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ls_llmtrace.errors import StoreError
from ls_llmtrace.store.cache import KeyedCache


def test_values_survive_a_reopen_and_namespaces_are_apart(tmp_path: Path) -> None:
    cache = KeyedCache(tmp_path / "c.sqlite")
    cache.put("verdicts", "k1", '{"a": 1}')
    cache.put("verdicts", "k1", '{"a": 2}')
    cache.put("candidates", "k1", "other")
    cache.close()
    again = KeyedCache(tmp_path / "c.sqlite")
    assert again.get("verdicts", "k1") == '{"a": 2}'
    assert again.get("candidates", "k1") == "other"
    assert again.get("verdicts", "missing") is None
    assert again.count("verdicts") == 1


def test_a_file_that_is_not_a_database_is_a_store_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=str(path)):
        cache = KeyedCache(path, "judge cache", "set LS_LLMTRACE_JUDGE_CACHE")
        cache.get("verdicts", "k")
