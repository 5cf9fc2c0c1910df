"""The managed ML backend process (gunicorn serving :func:`mlbackend.create_app`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ls_llmtrace import settings
from ls_llmtrace.errors import LLMTraceError
from ls_llmtrace.labelstudio.server import port_is_free, read_live_pid, stop_process_group


class BackendStartError(LLMTraceError):
    """The ML backend did not come up."""


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
        auth = self.auth or settings.backend_basic_auth()
        import requests  # only when a backend is asked: most commands never are

        try:
            return requests.get(f"{self.url}/health", auth=auth, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def start(self, timeout: float = 30.0, env: dict[str, str] | None = None) -> str:
        if self.pid() is not None and self.answers():
            return self.url
        if not port_is_free(self.port):
            raise BackendStartError(
                f"port {self.port} is in use by another program: stop it or set "
                "LS_LLMTRACE_BACKEND_PORT")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
                 "--workers", "1", "--threads", "8", "--timeout", "120",
                 "ls_llmtrace.judging.backend:create_app()"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env={**os.environ, **(env or {})},
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
