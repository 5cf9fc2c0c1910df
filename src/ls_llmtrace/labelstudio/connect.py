"""Which Label Studio to talk to: one answer for the CLI, the ML backend and the Feedback API.

The URL is ``LS_LLMTRACE_LS_URL`` (default: the managed Label Studio's port on loopback).
The token is ``LS_LLMTRACE_LS_TOKEN``, else the token of the managed Label Studio kept in
its credentials file under ``LS_LLMTRACE_HOME`` (the demo runs everything from one home).
"""

from __future__ import annotations

from ls_llmtrace import settings
from ls_llmtrace.errors import LabelStudioError
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import ManagedLabelStudio


def _managed_token() -> str | None:
    managed = ManagedLabelStudio()
    path = managed.credentials_file
    if not path.exists():
        return None
    try:
        return managed.credentials().token
    except (OSError, ValueError, TypeError) as exc:  # unreadable, not JSON, wrong keys
        raise LabelStudioError(
            f"cannot read the managed Label Studio's credentials {path} "
            f"({exc.__class__.__name__}): set LS_LLMTRACE_LS_TOKEN, or remove the file and "
            "run `ls-llmtrace ls up` again") from exc


def label_studio_from_settings() -> LabelStudioClient | None:
    """A client for the configured Label Studio, or None when no token is known."""
    token = settings.ls_token() or _managed_token()
    if not token:
        return None
    return LabelStudioClient(settings.ls_url(), token)


def resolve_client() -> LabelStudioClient:
    """A client for the configured Label Studio; a LabelStudioError saying how to get a
    token when none is known."""
    client = label_studio_from_settings()
    if client is None:
        raise LabelStudioError(
            "no Label Studio API token: start the managed one with `ls-llmtrace ls up` "
            "or set LS_LLMTRACE_LS_TOKEN")
    return client


