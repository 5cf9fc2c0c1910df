"""The managed ML backend process (gunicorn serving :func:`backend.create_app`).

The backend is closed by default, and so is the managed one: without
``LS_LLMTRACE_BACKEND_USER``/``_PASSWORD``, ``LS_LLMTRACE_BACKEND_TOKEN`` or
``LS_LLMTRACE_BACKEND_OPEN=1`` it gets a generated basic-auth login, saved (mode 0600) in
``<run dir>/credentials.json`` and used by ``predict`` and the demo to connect it to
Label Studio (:func:`client_auth`).

gunicorn runs one worker (the models and metrics live in the process) with
:data:`THREADS` threads, more than ``LS_LLMTRACE_BACKEND_PREDICT_SLOTS``: ``/health``
always finds a free one, whatever the judge is doing.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from ls_llmtrace import settings
from ls_llmtrace.errors import LLMTraceError
from ls_llmtrace.labelstudio.server import port_is_free, read_live_pid, stop_process_group

THREADS = 8
GENERATED_USER = "llmtrace"


class BackendStartError(LLMTraceError):
    """The ML backend did not come up."""


def _credentials_file(run_dir: Path | None = None) -> Path:
    return Path(run_dir or settings.home() / "backend") / "credentials.json"


def saved_credentials(run_dir: Path | None = None) -> tuple[str, str] | None:
    """The login generated for the managed backend, if there is one."""
    try:
        raw = json.loads(_credentials_file(run_dir).read_text(encoding="utf-8"))
        user, password = raw["user"], raw["password"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (user, password) if isinstance(user, str) and isinstance(password, str) else None


def generated_credentials(run_dir: Path | None = None) -> tuple[str, str]:
    """The saved generated login, made (and saved, readable by the owner only) if none."""
    found = saved_credentials(run_dir)
    if found is not None:
        return found
    path = _credentials_file(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    login = (GENERATED_USER, secrets.token_urlsafe(24))
    tmp = path.with_suffix(".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"user": login[0], "password": login[1]}, out)
    tmp.replace(path)
    return login


def client_auth(run_dir: Path | None = None) -> tuple[str, str] | None:
    """The basic auth to reach the backend with: the settings', else the managed
    backend's generated login, else None."""
    return settings.backend_basic_auth() or saved_credentials(run_dir)


def _says_open(env: dict[str, str]) -> bool:
    return env.get("LS_LLMTRACE_BACKEND_OPEN", "").strip().lower() in ("1", "true", "yes",
                                                                       "on")


class ManagedBackend:
    def __init__(self, run_dir: Path | None = None, port: int | None = None,
                 auth: tuple[str, str] | None = None) -> None:
        self.auth = auth  # basic auth the backend requires (default: settings)
        self.run_dir = Path(run_dir or settings.home() / "backend").resolve()
        self.port = port or settings.backend_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pid_file = self.run_dir / "backend.pid"
        self.log_file = self.run_dir / "backend.log"

    def pid(self) -> int | None:
        return read_live_pid(self.pid_file)

    def answers(self) -> bool:
        auth = self.auth or client_auth(self.run_dir)
        token = settings.backend_token()
        headers = {"Authorization": f"Bearer {token}"} if token and not auth else {}
        import requests  # only when a backend is asked: most commands never are

        try:
            return requests.get(f"{self.url}/health", auth=auth, headers=headers,
                                timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def start(self, timeout: float = 30.0, env: dict[str, str] | None = None) -> str:
        if self.pid() is not None and self.answers():
            self.auth = self.auth or client_auth(self.run_dir)
            return self.url
        if not port_is_free(self.port):
            raise BackendStartError(
                f"port {self.port} is in use by another program: stop it or set "
                "LS_LLMTRACE_BACKEND_PORT")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        merged = {**os.environ, **(env or {})}
        has_login = merged.get("LS_LLMTRACE_BACKEND_USER") and merged.get(
            "LS_LLMTRACE_BACKEND_PASSWORD")
        if self.auth is None and has_login:
            self.auth = (merged["LS_LLMTRACE_BACKEND_USER"],
                         merged["LS_LLMTRACE_BACKEND_PASSWORD"])
        if self.auth is None and not merged.get(
                "LS_LLMTRACE_BACKEND_TOKEN") and not _says_open(merged):
            self.auth = generated_credentials(self.run_dir)  # closed by default
        if self.auth is not None:
            merged["LS_LLMTRACE_BACKEND_USER"], merged["LS_LLMTRACE_BACKEND_PASSWORD"] = \
                self.auth
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
                 "--workers", "1", "--threads", str(THREADS), "--timeout", "120",
                 "ls_llmtrace.judging.backend:create_app()"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=merged,
            )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = self.log_file.read_text(errors="replace").splitlines()[-20:]
                raise BackendStartError(
                    f"the ML backend exited with code {process.returncode}; log "
                    f"{self.log_file}:\n" + "\n".join(tail))
            if self.answers():
                return self.url
            time.sleep(0.2)
        self.stop()
        raise BackendStartError(f"the ML backend did not answer at {self.url} in {timeout} s")

    def stop(self) -> bool:
        return stop_process_group(self.pid_file, timeout=10.0)
