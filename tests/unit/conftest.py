"""Shared fixtures for the unit tests: the checked-in schema, sample traces, a temp store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ls_llmtrace.models import Trace
from ls_llmtrace.schema.model import AnnotationSchema, load_schema, parse_schema
from ls_llmtrace.store import Store

from .paths import DEFAULT_YAML, SAMPLE_TRACES

MINIMAL_SCHEMA_YAML = """\
id: mini
version: 2
title: Mini review
owner: owner@example.com
fields:
  - type: label
    values: [pass, fail]
    failing: [fail]
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees auth settings from the developer's shell. The backend app is built
    open (it refuses to start without credentials otherwise): the tests of closed by
    default unset LS_LLMTRACE_BACKEND_OPEN themselves."""
    for name in ("LS_LLMTRACE_BACKEND_USER", "LS_LLMTRACE_BACKEND_PASSWORD",
                 "LS_LLMTRACE_BACKEND_TOKEN", "LS_LLMTRACE_WEBHOOK_SECRET", "LS_LLMTRACE_DB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_OPEN", "1")


@pytest.fixture(scope="session")
def default_schema() -> AnnotationSchema:
    return load_schema(DEFAULT_YAML)


@pytest.fixture(scope="session")
def mini_schema() -> AnnotationSchema:
    return parse_schema(MINIMAL_SCHEMA_YAML, "mini.yaml")


@pytest.fixture(scope="session")
def sample_raw() -> list[dict[str, Any]]:
    lines = SAMPLE_TRACES.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="session")
def sample_traces(sample_raw: list[dict[str, Any]]) -> dict[str, Trace]:
    return {raw["trace_id"]: Trace.model_validate(raw) for raw in sample_raw}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path):
    """A blank store URL of each engine: every store test runs on both."""
    if request.param == "sqlite":
        yield "sqlite:///" + str(tmp_path / "store.sqlite")
        return
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    yield url
    cluster.drop_database(url)


@pytest.fixture()
def store(store_url: str):
    s = Store(store_url)
    yield s
    s.close()
