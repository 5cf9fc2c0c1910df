"""Who holds a queue claim, and whether that import is still running.

An importer names itself ``host:pid:start:nonce``: the machine, its process id, the
process's start time (from ``/proc``, so a recycled pid is not taken for the importer
that died) and a random nonce (two routers in one process differ). On the same host the
name answers "is it still running?" at once; on another host it cannot, and the claim
lease (``LS_LLMTRACE_CLAIM_LEASE_S``) decides. Names written before the start time was
recorded (``host:pid:nonce``) are checked by pid alone.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from ls_llmtrace.labelstudio.server import pid_alive


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' when unknown)."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else ""


def own_name() -> str:
    """A new importer name for this process."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid)}:{uuid.uuid4().hex[:8]}"



def is_running(name: str) -> bool | None:
    """True: the importer runs; False: it is gone (crashed or killed); None: it cannot
    be told from here (another host, or a name that is not an importer's)."""
    parts = name.rsplit(":", 3)
    if len(parts) == 4 and parts[1].isdigit():
        host, pid, start = parts[0], int(parts[1]), parts[2]
    else:
        legacy = name.rsplit(":", 2)
        if len(legacy) != 3 or not legacy[1].isdigit():
            return None
        host, pid, start = legacy[0], int(legacy[1]), ""
    if host != socket.gethostname():
        return None
    if not pid_alive(pid):
        return False
    return not start or process_start(pid) == start


def records_sent_state(name: str) -> bool:
    """Whether this importer marks claims as sent before posting them (names with a start
    time do); a claim of an older importer may have been sent even without the mark."""
    parts = name.rsplit(":", 3)
    return len(parts) == 4 and parts[1].isdigit()
