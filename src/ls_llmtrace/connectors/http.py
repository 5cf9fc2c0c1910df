"""The HTTP session the connectors share: bearer auth, a timeout, one-line errors.

A tracing tool that cannot be reached, or answers with an error, becomes a
:class:`ConnectorError` naming the tool, the route and what it said (never the token).
"""

from __future__ import annotations

from typing import Any

import requests

from ls_llmtrace.errors import ConnectorError


class ToolRefused(ConnectorError):
    """The tool answered, with an HTTP error about this request (``status``): the item
    can be set aside while the rest goes on (a tool that cannot be reached cannot)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ToolSession:
    """``requests`` against one tool's base URL."""

    def __init__(self, tool: str, base_url: str, token: str | None = None,
                 timeout: float = 30.0, basic: tuple[str, str] | None = None) -> None:
        self.tool = tool
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"
        elif basic:
            self.http.auth = basic

    def call(self, method: str, route: str, missing_ok: bool = False, **kwargs: Any) -> Any:
        """The decoded JSON answer of ``method route`` (None for an empty body, and for a
        404 when ``missing_ok``)."""
        url = f"{self.base_url}{route}"
        try:
            response = self.http.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ConnectorError(
                f"{self.tool} at {self.base_url} could not be reached ({type(exc).__name__}):"
                f" is it running? Set its URL with the --url option or the settings") from None
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code >= 400:
            text = " ".join(response.text.split())[:300]
            raise ToolRefused(f"{self.tool} answered {response.status_code} to {method} "
                              f"{route.split('?')[0]}: {text}", response.status_code)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ConnectorError(f"{self.tool} answered {method} {route.split('?')[0]} "
                                 "with something that is not JSON") from None

    def close(self) -> None:
        self.http.close()
