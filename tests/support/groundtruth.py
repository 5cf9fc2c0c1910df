"""Compare imported traces with the ground truth the fixture generators wrote.

``python -m tests.support.groundtruth`` prints the match table per dialect (fields matched
of fields checked, generations whose messages equal the source's). A field is compared
only where the truth gives it: system prompt, messages (role, exact content, tool calls
with name and arguments, tool call ids), tool results, answer, retrieved documents, model,
tokens, prompt name, metadata kept in ``extra`` (user and conversation ids, telemetry
metadata), error, latency (present, and no longer than the generator's wall time).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ls_llmtrace.ingest.importers import read_any
from ls_llmtrace.models import Trace

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def dialect_folders() -> list[Path]:
    """Every fixture folder with a generator's ground truth."""
    return sorted(p.parent for p in FIXTURES.glob("*/truth.json"))


def _args(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _result(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _message(message: Any) -> dict[str, Any]:
    return {"role": message.role, "content": message.content,
            "tool_calls": [{"name": c.name, "arguments": _args(c.arguments)}
                           for c in message.tool_calls],
            "tool_call_id": message.tool_call_id}


def _expected_message(raw: dict[str, Any], with_ids: bool) -> dict[str, Any]:
    return {"role": raw["role"], "content": raw.get("content", ""),
            "tool_calls": [{"name": c["name"], "arguments": _args(c.get("arguments"))}
                           for c in raw.get("tool_calls") or []],
            "tool_call_id": raw.get("tool_call_id") if with_ids else None}


@dataclass
class Match:
    """How one dialect's fixture compares with its truth."""

    dialect: str
    fields: int = 0
    matched: int = 0
    generations: int = 0
    generations_equal: int = 0
    misses: list[str] = field(default_factory=list)

    def check(self, trace_id: str, name: str, ok: bool, got: Any = None, want: Any = None
              ) -> None:
        self.fields += 1
        if ok:
            self.matched += 1
        else:
            self.misses.append(f"{trace_id[:8]} {name}: got {got!r:.160} want {want!r:.160}")


def compare(trace: Trace, truth: dict[str, Any], match: Match) -> None:
    tid = truth["trace_id"]
    messages_ok = True
    if "system_prompt" in truth:
        ok = trace.system_prompt == truth["system_prompt"]
        messages_ok &= ok
        match.check(tid, "system_prompt", ok, trace.system_prompt, truth["system_prompt"])
    if "messages" in truth:
        with_ids = truth.get("tool_call_ids", True)
        got = [_message(m) for m in trace.messages]
        if not with_ids:
            for m in got:
                m["tool_call_id"] = None
        want = [_expected_message(m, with_ids) for m in truth["messages"]]
        ok = got == want
        messages_ok &= ok
        match.check(tid, "messages", ok, got, want)
        want_results = [c.get("result") for m in truth["messages"]
                        for c in m.get("tool_calls") or [] if "result" in c]
        if want_results:
            got_results = [_result(c.result) for c in trace.tool_calls()]
            match.check(tid, "tool results", got_results == want_results, got_results,
                        want_results)
    if "output" in truth:
        ok = trace.output == truth["output"]
        messages_ok &= ok
        match.check(tid, "output", ok, trace.output, truth["output"])
    if "documents" in truth:
        got_docs = sorted(d.content for d in trace.documents)
        match.check(tid, "documents", got_docs == sorted(truth["documents"]), got_docs,
                    truth["documents"])
    meta = trace.metadata
    for name, got in (("model", meta.model), ("input_tokens", meta.input_tokens),
                      ("output_tokens", meta.output_tokens)):
        if name in truth:
            match.check(tid, name, got == truth[name], got, truth[name])
    if "prompt_name" in truth:
        match.check(tid, "prompt_name", meta.prompt_name == truth["prompt_name"],
                    meta.prompt_name, truth["prompt_name"])
    for key, want in (truth.get("extra") or {}).items():
        got = meta.extra.get(key)
        match.check(tid, f"extra[{key}]", got == want, got, want)
    if "error" in truth:
        want_error = truth["error"]
        ok = (meta.error is None) if want_error is None else bool(meta.error)
        match.check(tid, "error", ok, meta.error, want_error)
    if "wall_ms" in truth:
        latency = meta.latency_ms
        ok = latency is not None and 0 < latency <= truth["wall_ms"] + 1.0
        match.check(tid, "latency", ok, latency, f"<= {truth['wall_ms']:.1f}")
    match.generations += 1
    match.generations_equal += int(messages_ok)


def import_folder(folder: Path) -> dict[str, Trace]:
    """Import a fixture folder's export (JSON, or the protobuf pair when only that exists)."""
    traces: dict[str, Trace] = {}
    source = folder / "trace.otlp.jsonl"
    if not source.exists():
        source = next(folder.glob("trace.*"))
    for item in read_any(source):
        if isinstance(item, Trace):
            traces[item.trace_id] = item
    return traces


def match_folder(folder: Path) -> Match:
    truth = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
    match = Match(f"{folder.name} ({truth['dialect']})")
    traces = import_folder(folder)
    for expected in truth["traces"]:
        trace = traces.get(expected["trace_id"])
        if trace is None:
            match.fields += 1
            match.generations += 1
            match.misses.append(f"{expected['trace_id'][:8]}: trace not imported")
            continue
        compare(trace, expected, match)
    return match


def table(matches: list[Match]) -> str:
    rows = ["| dialect | fields matched | generations with equal messages |", "|---|---|---|"]
    for m in matches:
        rows.append(f"| {m.dialect} | {m.matched}/{m.fields} | "
                    f"{m.generations_equal}/{m.generations} |")
    total_f = sum(m.fields for m in matches)
    total_m = sum(m.matched for m in matches)
    total_g = sum(m.generations for m in matches)
    total_e = sum(m.generations_equal for m in matches)
    rows.append(f"| all | {total_m}/{total_f} | {total_e}/{total_g} |")
    return "\n".join(rows)


def main() -> None:
    matches = [match_folder(folder) for folder in dialect_folders()]
    print(table(matches))
    for m in matches:
        for miss in m.misses:
            print(f"MISS {m.dialect}: {miss}", file=sys.stderr)


if __name__ == "__main__":
    main()
