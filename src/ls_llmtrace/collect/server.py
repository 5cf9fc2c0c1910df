"""``collect`` under gunicorn: the receiver and the assembler in one worker process.

gunicorn runs in the foreground (its arbiter is the ``collect`` process) with one
``gthread`` worker: its threads answer exporters, and an assembler thread started when
the worker has booted turns the spool into routed traces. One worker, because the spool
is the buffer: every thread writes to the store, none keeps spans in memory, so a killed
worker (or a killed ``collect``) loses nothing it answered 200 to. A worker whose
arbiter was killed notices within a second and exits.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ls_llmtrace import settings
from ls_llmtrace.errors import ConfigError

log = logging.getLogger("ls_llmtrace.collect")


@dataclass
class CollectOptions:
    """What ``ls-llmtrace collect`` was started with."""

    host: str = "127.0.0.1"
    port: int = 4318
    threads: int = 8
    no_auth: bool = False
    queue: str | None = None
    rules: Path | None = None
    schema: Path | None = None
    store_url: str | None = None
    assemble: bool = True  # False: receive only (the spool fills; another collect assembles)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check(options: CollectOptions) -> None:
    """Refuse a configuration that must not start (no token and not loopback-only)."""
    if options.no_auth and not _is_loopback(options.host):
        raise ConfigError(f"--no-auth listens on loopback only, not on {options.host}: set "
                          "LS_LLMTRACE_COLLECT_TOKEN to listen there")
    if not options.no_auth and not settings.collect_token():
        raise ConfigError("collect needs a bearer token: set LS_LLMTRACE_COLLECT_TOKEN "
                          "(exporters send `Authorization: Bearer <token>`), or pass "
                          "--no-auth to listen on loopback without one")
    if options.rules is not None:
        from ls_llmtrace.ingest.rules import load_rules

        load_rules(options.rules)  # a bad rules file stops the start, not the worker


def start_assembler(options: CollectOptions) -> threading.Event:
    """The assembler thread of this process; set the returned event to stop it."""
    from ls_llmtrace.collect.assembler import Assembler
    from ls_llmtrace.ingest.routing import Router
    from ls_llmtrace.ingest.rules import load_rules, single_queue
    from ls_llmtrace.labelstudio.connect import resolve_client
    from ls_llmtrace.schema.model import load_schema
    from ls_llmtrace.store import Store

    stop = threading.Event()

    def run() -> None:
        config = load_rules(options.rules) if options.rules else \
            single_queue(options.queue or settings.default_queue())
        schema = load_schema(options.schema) if options.schema else None
        store = Store(options.store_url)
        client = resolve_client()
        assembler = Assembler(store, client, Router(client, store, config, schema))
        try:
            assembler.run(stop)
        finally:
            store.close()

    thread = threading.Thread(target=run, name="ls-llmtrace-assembler", daemon=True)
    thread.start()
    return stop


def serve(options: CollectOptions) -> None:
    """Run gunicorn in the foreground until it is stopped (SIGTERM, SIGINT)."""
    check(options)
    from gunicorn.app.base import BaseApplication

    from ls_llmtrace.collect.receiver import create_app

    stops: list[threading.Event] = []

    def post_worker_init(worker: Any) -> None:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if options.assemble:
            stops.append(start_assembler(options))

    def worker_exit(server: Any, worker: Any) -> None:
        for stop in stops:
            stop.set()

    class Collect(BaseApplication):
        def load_config(self) -> None:
            values = {"bind": [f"{options.host}:{options.port}"], "workers": 1,
                      "worker_class": "gthread", "threads": options.threads,
                      "timeout": 120, "graceful_timeout": 10, "keepalive": 5,
                      "post_worker_init": post_worker_init, "worker_exit": worker_exit,
                      "proc_name": "ls-llmtrace-collect"}
            for key, value in values.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return create_app(options.store_url, no_auth=options.no_auth)

    log.info("collect listening on http://%s:%d (/v1/traces, /v1/logs)", options.host,
             options.port)
    Collect().run()
