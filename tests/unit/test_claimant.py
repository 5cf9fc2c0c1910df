"""Who holds a claim: an importer's name tells, on its host, whether it still runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from ls_llmtrace.ingest import claimant


def test_this_process_runs_and_two_names_differ():
    name = claimant.own_name()
    assert claimant.is_running(name) is True
    assert name != claimant.own_name()
    assert claimant.records_sent_state(name)


def test_a_finished_process_is_gone():
    done = subprocess.run([sys.executable, "-c", "from ls_llmtrace.ingest import claimant; "
                           "print(claimant.own_name())"], capture_output=True, text=True,
                          check=True)
    assert claimant.is_running(done.stdout.strip()) is False


def test_a_recycled_pid_is_not_the_importer_that_died():
    host, pid, start, nonce = claimant.own_name().rsplit(":", 3)
    assert start  # Linux: read from /proc
    other_start = str(int(start) + 1)
    assert claimant.is_running(f"{host}:{pid}:{other_start}:{nonce}") is False


def test_another_host_cannot_be_told_and_legacy_names_by_pid():
    assert claimant.is_running(f"elsewhere-{socket.gethostname()}:1:2:abc") is None
    assert claimant.is_running("ledger") is None
    legacy = f"{socket.gethostname()}:{os.getpid()}:abcdef12"
    assert claimant.is_running(legacy) is True
    assert not claimant.records_sent_state(legacy)
