"""The client's error guard, without a server: failures while a listing is iterated or a
download is read become one-line LabelStudioErrors (the real Label Studio is cut mid-answer
in tests/integration/test_dropped_connection.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from label_studio_sdk.core.api_error import ApiError

from ls_llmtrace.errors import LabelStudioError
from ls_llmtrace.labelstudio.client import LabelStudioClient

URL = "http://127.0.0.1:9"


@pytest.fixture
def client() -> LabelStudioClient:
    return LabelStudioClient(URL, "token")


def _breaks_after(items: list[int], exc: Exception) -> Iterator[int]:
    yield from items
    raise exc


def test_a_failure_on_a_later_page_is_a_label_studio_error(client: LabelStudioClient) -> None:
    broken = httpx.RemoteProtocolError("peer closed connection without sending complete "
                                       "message body")
    pages = client._pages("list tasks", lambda: _breaks_after([1, 2], broken))
    assert next(pages) == 1 and next(pages) == 2
    with pytest.raises(LabelStudioError) as caught:
        next(pages)
    message = str(caught.value)
    assert message.startswith(f"the connection to Label Studio at {URL} broke while trying "
                              "to list tasks (RemoteProtocolError: peer closed")
    assert "run the command again" in message


def test_a_failing_download_is_a_label_studio_error(client: LabelStudioClient) -> None:
    def download() -> Iterator[bytes]:
        yield b'[{"id": 1'
        raise httpx.ReadError("connection reset")

    with pytest.raises(LabelStudioError, match="broke while trying to download the export"):
        client._download("download the export", download)


@pytest.mark.parametrize(("status", "body", "expected"), [
    (500, "<html>\n<body>\n  <h1>Server Error</h1>\n</body>\n</html>\n" * 50,
     "refused to list tasks (HTTP 500): <html> <body> <h1>Server Error</h1>"),
    (401, {"detail": "Invalid token."}, "refused the API token to list tasks (HTTP 401): "
     "check LS_LLMTRACE_LS_TOKEN"),
    (200, "<not json", "sent an unreadable answer to list tasks (HTTP 200): <not json"),
])
def test_refusals_are_one_short_line(client: LabelStudioClient, status: int, body: object,
                                     expected: str) -> None:
    def refuse() -> list[int]:
        raise ApiError(status_code=status, body=body)

    with pytest.raises(LabelStudioError) as caught:
        list(client._pages("list tasks", refuse))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message and len(message) < 500


def test_nothing_listening_says_how_to_start_label_studio(client: LabelStudioClient) -> None:
    with pytest.raises(LabelStudioError) as caught:
        client.find_project("anything")
    assert str(caught.value).startswith(f"no Label Studio at {URL} to list projects")
    assert "ls-llmtrace ls up" in str(caught.value)
