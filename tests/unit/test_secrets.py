"""Credentials never show: a password or key inside a URL setting, and the API key, appear
in no log line, no error, no ``/metrics`` answer and no file under the home directory.

Before, ``cannot connect to http://user:<password>@host/v1`` went into the backend's log
and the judge's error as it was.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from ls_llmtrace import settings
from ls_llmtrace.errors import JudgeCallError, LabelStudioError
from ls_llmtrace.judging.backend import create_app
from ls_llmtrace.judging.judges.llm import ChatClient, LLMConfig
from ls_llmtrace.labelstudio.client import LabelStudioClient

from .paths import DEFAULT_XML

SECRETS = ("sekret-pw", "sekret-q", "sekret-key")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_public_url_hides_passwords_and_secret_query_values() -> None:
    assert settings.public_url("https://u:pw@h.example/v1") == "https://u:***@h.example/v1"
    assert settings.public_url("https://tok@h.example/v1") == "https://***@h.example/v1"
    assert settings.public_url("https://h/v1?api-key=abc&x=1") == "https://h/v1?api-key=***&x=1"
    assert settings.public_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


def test_no_secret_in_logs_errors_metrics_or_home(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    home = tmp_path / "home"
    port = _closed_port()
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(home))
    monkeypatch.setenv("LS_LLMTRACE_LLM_BASE_URL",
                       f"http://judge:sekret-pw@127.0.0.1:{port}/v1?api-key=sekret-q")
    monkeypatch.setenv("LS_LLMTRACE_LLM_API_KEY", "sekret-key")
    monkeypatch.setenv("LS_LLMTRACE_LLM_MAX_RETRIES", "1")
    monkeypatch.setenv("LS_LLMTRACE_LLM_RETRY_BASE", "0")
    monkeypatch.setenv("LS_LLMTRACE_JUDGE", "llm")
    for name in ("LS_LLMTRACE_BACKEND_TOKEN", "LS_LLMTRACE_JUDGE_CACHE", "LS_LLMTRACE_LS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    config = LLMConfig.from_settings()
    seen.append(repr(config))
    with pytest.raises(JudgeCallError) as err:
        ChatClient(config).complete([{"role": "user", "content": "hi"}])
    seen.append(str(err.value))

    app = create_app().test_client()
    reply = app.post("/predict", json={"tasks": [{"id": 1, "data": {
        "trace_id": "t1", "answer": "Paris."}}], "label_config": DEFAULT_XML.read_text()})
    seen.append(reply.get_data(as_text=True))
    seen.append(app.get("/metrics").get_data(as_text=True))
    seen.append(app.get("/health").get_data(as_text=True))

    ls = LabelStudioClient(f"http://admin:sekret-pw@127.0.0.1:{port}", "token")
    with pytest.raises(LabelStudioError) as ls_err:
        ls.task_count(1)
    seen.append(str(ls_err.value))

    seen.append(caplog.text)
    for path in home.rglob("*") if home.exists() else []:
        if path.is_file():
            seen.append(path.read_bytes().decode("utf-8", "replace"))
    assert "the connection to http://judge:***@" in " ".join(seen)  # told, without the secret
    for text in seen:
        for secret in SECRETS:
            assert secret not in text, (secret, text[:500])
