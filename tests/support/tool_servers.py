"""Real Arize Phoenix and MLflow tracking servers for the connector tests: each installed
in its own virtualenv by ``make setup`` (``.venvs/phoenix``, ``.venvs/mlflow``), started
here on loopback with a temporary data directory, stopped after. Never mocked."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import requests
from tests.support.fake_llm_server import free_port

REPO = Path(__file__).resolve().parents[2]
PHOENIX_VENV = REPO / ".venvs" / "phoenix"
MLFLOW_VENV = REPO / ".venvs" / "mlflow"


class ToolServer:
    """A server process in its own process group, up once ``health`` answers 200."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], url: str,
                 health: str, log: Path, timeout: float = 300.0) -> None:
        self.name = name
        self.url = url
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(args, env={**os.environ, **env}, stdout=self._log_file,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}{health}", timeout=2).status_code == 200:
                    return
            if self.process.poll() is not None:
                break
            time.sleep(1)
        self.stop()
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{name} did not start at {url}; its log ends:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log_file.close()


def _require(venv: Path, what: str) -> Path:
    if not (venv / ".installed").exists():
        raise RuntimeError(f"{what} is not installed in {venv}: run `make setup` first")
    return venv / "bin"


def start_phoenix(workdir: Path) -> ToolServer:
    bin_dir = _require(PHOENIX_VENV, "Arize Phoenix")
    port, grpc = free_port(), free_port()
    env = {"PHOENIX_WORKING_DIR": str(workdir), "PHOENIX_HOST": "127.0.0.1",
           "PHOENIX_PORT": str(port), "PHOENIX_GRPC_PORT": str(grpc),
           "PHOENIX_TELEMETRY_ENABLED": "false"}
    return ToolServer("Phoenix", [str(bin_dir / "phoenix"), "serve"], env,
                      f"http://127.0.0.1:{port}", "/healthz", workdir / "phoenix.log")


def start_mlflow(workdir: Path) -> ToolServer:
    bin_dir = _require(MLFLOW_VENV, "MLflow")
    port = free_port()
    args = [str(bin_dir / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
            "--default-artifact-root", str(workdir / "artifacts"), "--workers", "1"]
    return ToolServer("MLflow", args, {}, f"http://127.0.0.1:{port}", "/health",
                      workdir / "mlflow.log")


def tool_python(venv: Path) -> str:
    return str(venv / "bin" / "python")
