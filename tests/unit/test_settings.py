"""Settings read from the environment: a value that cannot be read names its variable."""

from __future__ import annotations

import pytest

from ls_llmtrace import settings
from ls_llmtrace.errors import ConfigError


@pytest.mark.parametrize(("variable", "value", "read", "expected"), [
    ("LS_LLMTRACE_SYNC_PAGE_SIZE", "many", settings.sync_page_size, "not a whole number"),
    ("LS_LLMTRACE_SYNC_PAGE_SIZE", "2.5", settings.sync_page_size, "not a whole number"),
    ("LS_LLMTRACE_SYNC_PAGE_SIZE", "0", settings.sync_page_size, "below 1"),
    ("LS_LLMTRACE_LS_PORT", "80a", settings.ls_url, "not a whole number"),
    ("LS_LLMTRACE_BACKEND_PORT", "x", settings.backend_url, "not a whole number"),
    ("LS_LLMTRACE_MAX_CHARS", "lots", settings.max_chars, "not a whole number"),
    ("LS_LLMTRACE_LLM_TIMEOUT", "soon", settings.llm_timeout, "not a number"),
    ("LS_LLMTRACE_LLM_TIMEOUT", "nan", settings.llm_timeout, "not a number"),
    ("LS_LLMTRACE_LLM_TEMPERATURE", "-1", settings.llm_temperature, "below 0"),
    ("LS_LLMTRACE_CLAIM_LEASE_S", "10m", settings.claim_lease_s, "not a number"),
    ("LS_LLMTRACE_BACKEND_MAX_REQUEST_MB", "big", settings.backend_max_request_bytes,
     "not a number"),
    ("LS_LLMTRACE_JUDGE_CONCURRENCY", "eight", settings.judge_concurrency,
     "not a whole number"),
    ("LS_LLMTRACE_LEARNED_MIN_LABELS", "20.0", settings.learned_min_labels,
     "not a whole number"),
    ("LS_LLMTRACE_SYNC_FIRST_EXPORT", "maybe", settings.sync_first_export, "not a yes/no"),
    ("LS_LLMTRACE_LLM_JSON_MODE", "2", settings.llm_json_mode, "not a yes/no"),
])
def test_a_bad_value_is_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, read: object,
    expected: str,
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        read()  # type: ignore[operator]
    message = str(caught.value)
    assert f"{variable}={value!r}" in message
    assert expected in message
    assert "\n" not in message


def test_good_values_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LS_LLMTRACE_SYNC_PAGE_SIZE", raising=False)
    assert settings.sync_page_size() == 1000
    monkeypatch.setenv("LS_LLMTRACE_SYNC_PAGE_SIZE", " 25 ")
    assert settings.sync_page_size() == 25
    monkeypatch.setenv("LS_LLMTRACE_LLM_TIMEOUT", "2.5")
    assert settings.llm_timeout() == 2.5
    for value, expected in (("0", False), ("off", False), ("YES", True), ("1", True)):
        monkeypatch.setenv("LS_LLMTRACE_SYNC_FIRST_EXPORT", value)
        assert settings.sync_first_export() is expected
    monkeypatch.setenv("LS_LLMTRACE_SYNC_FIRST_EXPORT", "")
    assert settings.sync_first_export() is True
