"""Spooled spans into routed traces.

A trace is ready once its root span has arrived and it got nothing new for
``LS_LLMTRACE_COLLECT_SETTLE_S``, or once it got nothing new for
``LS_LLMTRACE_COLLECT_QUIET_S`` (a root that never comes). Every spooled span and log
record of a ready trace is read again and assembled by the OTLP importer (its dialects,
log records attached to their spans), then stored and routed by the queue rules through
the import road (:class:`ls_llmtrace.ingest.routing.Router`: a task is claimed before it
is created, so a trace is never in a queue twice). Only then are its items marked as
assembled: a crash before that assembles the trace again, and the claims make the second
routing create nothing.

A trace that gets spans after it was routed is assembled again, whole: the stored trace
is replaced and each of its tasks that has no annotation yet gets the new task data (one
with an annotation keeps what its reviewer saw).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ls_llmtrace import settings
from ls_llmtrace.errors import LLMTraceError
from ls_llmtrace.ingest import claimant
from ls_llmtrace.ingest.importers.otlp import (
    attach_events,
    build_or_reject,
    envelope_logs,
    envelope_spans,
)
from ls_llmtrace.ingest.importers.spans import SpanView
from ls_llmtrace.ingest.routing import Router, RouteSummary
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.models import Rejected, Trace
from ls_llmtrace.store import Store
from ls_llmtrace.store.collect import SpoolReject

log = logging.getLogger("ls_llmtrace.collect")
SOURCE = "collect"
_FILE = "collect spool"
LOCK = "collect:assembler"


def assemble(trace_id: str, rows: list[tuple[int, str, str]]) -> Trace | list[Rejected] | None:
    """One trace from its spooled items (None: no span yet, only log records)."""
    spans: list[SpanView] = []
    events: dict[tuple[str, str], list[dict[str, Any]]] = {}
    rejects: list[Rejected] = []
    for item_id, kind, body in rows:
        doc = json.loads(body)
        where = f"item {item_id}"
        if kind == "log":
            envelope = {"resourceLogs": [{"resource": doc.get("resource") or {}, "scopeLogs": [
                {"scope": doc.get("scope") or {}, "logRecords": [doc.get("log")]}]}]}
            for found in envelope_logs(envelope, _FILE, where):
                if isinstance(found, Rejected):
                    rejects.append(found)
                elif found[0] is not None:
                    events.setdefault(found[0], []).append(found[1])
            continue
        envelope = {"resourceSpans": [{"resource": doc.get("resource") or {}, "scopeSpans": [
            {"scope": doc.get("scope") or {}, "spans": [doc.get("span")]}]}]}
        for item in envelope_spans(envelope, _FILE, where):
            if isinstance(item, Rejected):
                rejects.append(item)
            else:
                spans.append(item)
    if rejects:
        return rejects
    if not spans:
        return None
    for span in spans:
        found_events = events.pop((span.trace_id, span.span_id), None)
        if found_events:
            attach_events(span, found_events)
    return build_or_reject(trace_id, spans, SOURCE, _FILE, f"trace {trace_id}")


@dataclass
class Cycle:
    """What one pass of the assembler did."""

    assembled: int = 0  # traces assembled (first time or again)
    again: int = 0  # of those, traces assembled before (late spans)
    rejected: int = 0  # traces the importer refused (kept in collect_rejects)
    tasks_updated: int = 0
    tasks_kept: int = 0  # tasks with an annotation, left as they were
    route: RouteSummary = field(default_factory=RouteSummary)


class Assembler:
    """Assembles ready traces and routes them with one :class:`Router`."""

    def __init__(self, store: Store, client: LabelStudioClient, router: Router) -> None:
        self.store = store
        self.client = client
        self.router = router
        self.owner = claimant.own_name()

    def run_once(self, now: float | None = None, limit: int = 200) -> Cycle:
        """Assemble and route the traces ready now."""
        now = time.time() if now is None else now
        cycle = Cycle()
        stale = _stale_before()
        holder = self.store.try_lock(LOCK, self.owner, stale)
        if holder is not None and claimant.is_running(holder) is False:
            self.store.release_lock(LOCK, holder)  # a killed collect's lock
            holder = self.store.try_lock(LOCK, self.owner, stale)
        if holder is not None:
            return cycle  # another collect on this store is assembling
        try:
            ready = self.store.ready_traces(now - settings.collect_quiet_s(),
                                            now - settings.collect_settle_s(), limit)
            traces: list[Trace] = []
            done: list[tuple[str, int]] = []
            rejects: list[SpoolReject] = []
            for trace_id in ready:
                rows = self.store.spooled(trace_id)
                if not rows:
                    continue
                result = assemble(trace_id, rows)
                done.append((trace_id, rows[-1][0]))
                if isinstance(result, Trace):
                    traces.append(result)
                elif result:
                    cycle.rejected += 1
                    rejects += [SpoolReject("assembly", f"{r.location} (trace {trace_id})",
                                            r.field, r.reason, str(r.raw)[:2000])
                                for r in result]
            if traces:
                before = self.store.trace_tasks([t.trace_id for t in traces])
                traces = self._route(traces, cycle, rejects)
                cycle.assembled = len(traces)
                cycle.again = len([t for t in traces if before.get(t.trace_id)])
                self._update_tasks(traces, before, cycle)
                if cycle.route.imported:
                    self.router.ensure_views()  # once per queue (the Router remembers)
            if rejects:
                self.store.spool([], rejects, now)
            if done:
                self.store.mark_assembled(done, time.time())
            return cycle
        finally:
            self.store.release_lock(LOCK, self.owner)

    def _route(self, traces: list[Trace], cycle: Cycle,
               rejects: list[SpoolReject]) -> list[Trace]:
        """Route the batch; when it fails for another reason than Label Studio or the
        store (tried again later), route its traces one by one and keep aside, with the
        error, those that fail alone. Returns the traces routed."""
        try:
            cycle.route = self.router.ingest(traces)
            return traces
        except LLMTraceError:
            raise
        except Exception:
            log.exception("routing a batch of %d traces failed: routing them one by one",
                          len(traces))
        routed = []
        for trace in traces:
            try:
                summary = self.router.ingest([trace])
            except LLMTraceError:
                raise
            except Exception as exc:
                cycle.rejected += 1
                rejects.append(SpoolReject("assembly", f"trace {trace.trace_id}", "(trace)",
                                           f"cannot be routed: {type(exc).__name__}: {exc}"))
                continue
            routed.append(trace)
            cycle.route.imported += summary.imported
            cycle.route.duplicates += summary.duplicates
            for queue, n in summary.per_queue.items():
                cycle.route.per_queue[queue] = cycle.route.per_queue.get(queue, 0) + n
        return routed

    def _update_tasks(self, traces: list[Trace], before: dict[str, list[tuple[int, int]]],
                      cycle: Cycle) -> None:
        """The tasks a trace had before this assembly get its new data (while they have
        no annotation)."""
        rules = {rule.name: rule for rule in self.router.config.queues
                 if rule.pairwise is None}
        queue_of = {int(q["project_id"]): str(q["queue"]) for q in self.store.queues()
                    if q.get("project_id") is not None}
        for trace in traces:
            for project_id, task_id in before.get(trace.trace_id, []):
                rule = rules.get(queue_of.get(project_id, ""))
                if rule is None:
                    continue
                task = self.router.review_task(trace, rule)
                outcome = self.client.replace_unannotated_task(project_id, task_id, task)
                if outcome == "updated":
                    cycle.tasks_updated += 1
                elif outcome == "annotated":
                    cycle.tasks_kept += 1

    def run(self, stop: threading.Event) -> None:
        """Assemble until ``stop`` is set; a failure (Label Studio down, the store busy)
        is logged and the same traces are tried again later."""
        backoff = settings.collect_poll_s()
        while not stop.is_set():
            try:
                cycle = self.run_once()
                if cycle.assembled or cycle.rejected:
                    log.info("assembled %d traces (%d again), %s; %s; tasks updated %d, "
                             "kept (annotated) %d, traces refused %d", cycle.assembled,
                             cycle.again, cycle.route.line(), cycle.route.queues_line(),
                             cycle.tasks_updated, cycle.tasks_kept, cycle.rejected)
                backoff = settings.collect_poll_s()
                if cycle.assembled or cycle.rejected:
                    continue  # more may be ready
            except LLMTraceError as exc:
                log.warning("assembling failed, trying again in %.1f s: %s", backoff, exc)
                backoff = min(backoff * 2, 30.0)
            except Exception:  # a bug must not end the thread: the spool would only grow
                log.exception("assembling failed, trying again in %.1f s", backoff)
                backoff = min(backoff * 2, 30.0)
            stop.wait(backoff)


def _stale_before() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(seconds=settings.claim_lease_s())
