"""A test receiver for OTLP/HTTP logs: ``POST /v1/logs`` bodies decoded with
``opentelemetry-proto`` and kept in memory, answered as the OTLP specification says
(``ExportLogsServiceResponse``, protobuf). It is a test receiver, not a stand-in for a
product: it checks what ``push otel`` puts on the wire. ``reject`` makes it report
partial success; ``busy`` makes its next answers 503 with ``Retry-After``.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from tests.support.fake_llm_server import free_port


class OtlpLogReceiver:
    """Run with ``with OtlpLogReceiver() as r: ... r.requests``."""

    def __init__(self) -> None:
        self.requests: list[logs_service_pb2.ExportLogsServiceRequest] = []
        self.content_types: list[str] = []
        self.reject = 0
        self.busy = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v1/logs":
                    self.send_response(404)
                    self.end_headers()
                    return
                with receiver.lock:
                    if receiver.busy:
                        receiver.busy -= 1
                        self.send_response(503)
                        self.send_header("Retry-After", "0")
                        self.end_headers()
                        return
                    request = logs_service_pb2.ExportLogsServiceRequest()
                    request.ParseFromString(body)
                    receiver.requests.append(request)
                    receiver.content_types.append(self.headers.get("Content-Type", ""))
                    answer = logs_service_pb2.ExportLogsServiceResponse()
                    if receiver.reject:
                        answer.partial_success.rejected_log_records = receiver.reject
                        answer.partial_success.error_message = "test receiver rejects some"
                payload = answer.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def records(self) -> list[Any]:
        """Every log record received, in order."""
        return [record for request in self.requests for resource in request.resource_logs
                for scope in resource.scope_logs for record in scope.log_records]

    def __enter__(self) -> OtlpLogReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
