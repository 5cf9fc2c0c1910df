"""The managed backend's generated login (closed by default without configured ones)."""

from __future__ import annotations

from ls_llmtrace.judging.managed import client_auth, generated_credentials, saved_credentials


def test_a_login_is_generated_once_and_kept_owner_only(tmp_path) -> None:
    assert saved_credentials(tmp_path) is None
    login = generated_credentials(tmp_path)
    assert login[0] == "llmtrace" and len(login[1]) >= 24
    assert generated_credentials(tmp_path) == login == saved_credentials(tmp_path)
    assert (tmp_path / "credentials.json").stat().st_mode & 0o777 == 0o600


def test_configured_credentials_win_over_the_generated_ones(tmp_path, monkeypatch) -> None:
    generated = generated_credentials(tmp_path)
    assert client_auth(tmp_path) == generated
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_USER", "ls")
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_PASSWORD", "pw")
    assert client_auth(tmp_path) == ("ls", "pw")


def test_a_broken_credentials_file_is_no_login(tmp_path) -> None:
    (tmp_path / "credentials.json").write_text("{not json")
    assert saved_credentials(tmp_path) is None
    (tmp_path / "credentials.json").write_text('{"user": 1, "password": "x"}')
    assert saved_credentials(tmp_path) is None
