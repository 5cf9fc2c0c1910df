"""A managed local Label Studio: installed in its own virtualenv, started and stopped here.

Used by ``make demo``, by ``ls-llmtrace ls up|down|status`` and by the test-suite. It
binds to loopback only, keeps its data in a chosen directory, creates the admin user and
a legacy API token non-interactively on first start, and turns off every outbound call.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ls_llmtrace import settings
from ls_llmtrace.errors import LabelStudioError, LabelStudioStartError

# Inherited variables Label Studio would pick up as its own settings (it reads
# LABEL_STUDIO_X, then HEARTEX_X, then bare X).
_LEAKY = ("USERNAME", "PASSWORD", "PORT", "HOST", "DATA_DIR", "DJANGO_DB", "DEBUG")


@dataclass(frozen=True)
class Credentials:
    email: str
    password: str
    token: str


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; treat it as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
    return True


def read_live_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process is still alive."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def stop_process_group(pid_file: Path, timeout: float = 20.0) -> bool:
    """SIGTERM the process group started with ``pid_file``, SIGKILL it after ``timeout``;
    True if one was running."""
    pid = read_live_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return True


class ManagedLabelStudio:
    """One Label Studio server process with its data directory."""

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        executable: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir or settings.home() / "labelstudio").resolve()
        self.port = port or settings.ls_port()
        self.executable = Path(executable or settings.ls_bin()).absolute()
        self.url = f"http://127.0.0.1:{self.port}"

    # files kept in the data dir
    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "llmtrace-credentials.json"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "llmtrace-labelstudio.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "labelstudio.log"

    def credentials(self) -> Credentials:
        """The admin login and API token, created on first use and kept (mode 0600)."""
        if self.credentials_file.exists():
            return Credentials(**json.loads(self.credentials_file.read_text()))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        creds = Credentials(
            email=settings.admin_email(),
            password=settings.admin_password() or secrets.token_urlsafe(12),
            token=secrets.token_hex(20),
        )
        self.credentials_file.write_text(json.dumps(creds.__dict__, indent=2))
        self.credentials_file.chmod(0o600)
        return creds

    def pid(self) -> int | None:
        return read_live_pid(self.pid_file)

    def answers(self, timeout: float = 2.0) -> bool:
        """True when this server answers an authenticated API call."""
        import requests  # not at the top: most commands never start Label Studio

        token = self.credentials().token
        try:
            r = requests.get(f"{self.url}/api/current-user/whoami",
                             headers={"Authorization": f"Token {token}"}, timeout=timeout)
        except requests.RequestException:
            return False
        return r.status_code == 200

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _environment(self, creds: Credentials) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items()
            if not k.startswith(("LABEL_STUDIO_", "HEARTEX_")) and k not in _LEAKY
        }
        env.update({
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
            "LABEL_STUDIO_USERNAME": creds.email,
            "LABEL_STUDIO_PASSWORD": creds.password,
            "LABEL_STUDIO_USER_TOKEN": creds.token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            # Our webhooks and ML backend live on loopback too.
            "SSRF_PROTECTION_ENABLED": "false",
            "ML_BLOCK_LOCAL_IP": "false",
        })
        # Label Studio gives an ML backend's /setup 3 s by default and then refuses to connect
        # it; a judge that loads a learned model on a busy machine can take longer.
        env.setdefault("ML_TIMEOUT_SETUP", "30")
        return env

    def start(self, timeout: float | None = None) -> Credentials:
        """Start the server (or find it running) and wait until the API answers."""
        timeout = settings.ls_start_timeout() if timeout is None else timeout
        creds = self.credentials()
        if self.pid() is not None and self.answers():
            return creds
        if not self.executable.exists():
            raise LabelStudioStartError(
                f"Label Studio is not installed at {self.executable}: run `make setup` "
                "(it creates .venvs/labelstudio) or set LS_LLMTRACE_LS_BIN"
            )
        if not port_is_free(self.port):
            raise LabelStudioStartError(
                f"port {self.port} is already in use by another program, so Label Studio "
                "would silently move to another port: stop that program or set "
                "LS_LLMTRACE_LS_PORT"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        process = subprocess.Popen(
            [str(self.executable), "start", "--no-browser", "--internal-host", "127.0.0.1",
             "-p", str(self.port), "--data-dir", str(self.data_dir)],
            env=self._environment(creds), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.data_dir,
        )
        log.close()
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LabelStudioStartError(
                    f"Label Studio exited with code {process.returncode} while starting; "
                    f"log {self.log_file}:\n{self.log_tail()}"
                )
            if self.answers():
                self._check_port()
                return creds
            time.sleep(0.5)
        self.stop()
        raise LabelStudioStartError(
            f"Label Studio did not answer at {self.url} within {timeout:.0f} s "
            f"(raise LS_LLMTRACE_LS_START_TIMEOUT if the machine is slow); "
            f"log {self.log_file}:\n{self.log_tail()}"
        )

    def _check_port(self) -> None:
        # Label Studio moves to another port when the one asked for is busy. We checked it
        # was free; confirm from its own log line which port it announced.
        ports = re.findall(r"http://[\w.]+:(\d+)/?", self.log_tail(200))
        if ports and int(ports[-1]) != self.port:
            self.stop()
            raise LabelStudioStartError(
                f"Label Studio started on port {ports[-1]} instead of {self.port}; "
                f"log {self.log_file}"
            )

    def user_token(self, email: str, timeout: float = 300.0) -> str:
        """The legacy API token of a user of this Label Studio, read with its own CLI
        (``label-studio user --username EMAIL``): the API shows a user's token only to
        that user, and a user created through the API has no password to log in with."""
        env = self._environment(self.credentials())
        try:
            done = subprocess.run(
                [str(self.executable), "user", "--username", email, "--data-dir",
                 str(self.data_dir)], env=env, capture_output=True, text=True,
                stdin=subprocess.DEVNULL, cwd=self.data_dir, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LabelStudioError(f"`label-studio user` failed for {email}: {exc}") from exc
        match = re.search(r"'token': '([0-9a-f]+)'", done.stdout)
        if done.returncode != 0 or match is None:
            tail = " ".join((done.stdout + done.stderr).split()[-30:])
            raise LabelStudioError(f"Label Studio has no user {email} or did not show its "
                                   f"token (exit {done.returncode}): {tail}")
        return match.group(1)

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the server; True if one was running."""
        return stop_process_group(self.pid_file, timeout)

    def status(self) -> dict[str, object]:
        pid = self.pid()
        return {"url": self.url, "pid": pid, "running": pid is not None,
                "answers": pid is not None and self.answers(), "data_dir": str(self.data_dir)}
