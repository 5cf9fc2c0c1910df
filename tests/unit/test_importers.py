"""importers/native.py and base.py: good lines become Traces, bad lines become Rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ls_llmtrace.errors import InputError
from ls_llmtrace.ingest.importers import ImportSummary, Rejected, read_native, write_rejects
from ls_llmtrace.models import Trace

from .paths import SAMPLE_TRACES

GOOD_1 = {"trace_id": "good-1", "output": "Fine.", "messages": [{"role": "user", "content": "q"}]}
GOOD_2 = {"trace_id": "good-2"}
LINES = [
    json.dumps(GOOD_1),                                          # line 1
    "{not json",                                                 # line 2
    "",                                                          # line 3 (blank)
    json.dumps([GOOD_2]),                                        # line 4: array
    json.dumps({"output": "no id"}),                             # line 5: missing trace_id
    json.dumps({"trace_id": "x", "colour": "red"}),              # line 6: unknown field
    json.dumps({"trace_id": "y", "messages": [{"role": "robot", "content": "hi"}]}),  # line 7
    "   ",                                                       # line 8 (blank)
    json.dumps(GOOD_2),                                          # line 9
    json.dumps({"trace_id": "z", "metadata": {"latency_ms": -5}}),  # line 10
]


@pytest.fixture()
def mixed_file(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


def _split(items):
    traces = [i for i in items if isinstance(i, Trace)]
    rejects = [r for i in items if isinstance(i, list) for r in i]
    return traces, rejects


def test_good_lines_still_yield_traces(mixed_file):
    traces, _ = _split(list(read_native(mixed_file)))
    assert [t.trace_id for t in traces] == ["good-1", "good-2"]
    assert traces[0].messages[0].content == "q"
    assert traces[0].source == "native"


def test_each_bad_line_rejected_with_line_and_field(mixed_file):
    items = list(read_native(mixed_file))
    # one item per non-blank line, in order
    assert len(items) == 8
    _, rejects = _split(items)
    by_line = {}
    for r in rejects:
        by_line.setdefault(r.location, []).append(r)
    assert set(by_line) == {"line 2", "line 4", "line 5", "line 6", "line 7", "line 10"}
    assert all(r.file == str(mixed_file) for r in rejects)

    (bad_json,) = by_line["line 2"]
    assert bad_json.field == "(record)"
    assert bad_json.reason.startswith("not valid JSON")
    assert bad_json.raw == "{not json"

    (array,) = by_line["line 4"]
    assert array.field == "(record)"
    assert "JSON object" in array.reason

    (missing,) = by_line["line 5"]
    assert missing.field == "trace_id"
    assert "required" in missing.reason.lower()

    (extra,) = by_line["line 6"]
    assert extra.field == "colour"
    assert "extra" in extra.reason.lower()

    (role,) = by_line["line 7"]
    assert role.field == "messages.0.role"
    assert "robot" in role.raw

    (negative,) = by_line["line 10"]
    assert negative.field == "metadata.latency_ms"

    assert str(role) == f"{mixed_file}: line 7: messages.0.role: {role.reason}"


def test_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "blank.jsonl"
    path.write_text("\n\n  \n" + json.dumps(GOOD_2) + "\n\n", encoding="utf-8")
    items = list(read_native(path))
    assert len(items) == 1
    assert isinstance(items[0], Trace)


def test_one_line_with_several_problems_gives_several_rejects(tmp_path):
    path = tmp_path / "multi.jsonl"
    path.write_text(json.dumps({"bogus": 1, "messages": [{"role": "x"}]}) + "\n",
                    encoding="utf-8")
    (item,) = list(read_native(path))
    assert isinstance(item, list)
    assert {r.field for r in item} == {"trace_id", "bogus", "messages.0.role"}
    assert {r.location for r in item} == {"line 1"}


def test_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        list(read_native(tmp_path / "absent.jsonl"))


def test_sample_traces_all_import():
    items = list(read_native(SAMPLE_TRACES))
    assert items and all(isinstance(i, Trace) for i in items)
    ids = [i.trace_id for i in items]
    assert len(ids) == len(set(ids))


def test_round_trip_of_model_dump_json(tmp_path, sample_traces):
    path = tmp_path / "dump.jsonl"
    path.write_text("".join(t.model_dump_json() + "\n" for t in sample_traces.values()),
                    encoding="utf-8")
    again = [i for i in read_native(path)]
    assert again == list(sample_traces.values())


def test_invalid_utf8_line_is_rejected_not_fatal(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD_1).encode() + b"\n"
                     + b'{"trace_id": "caf\xe9"}\n'
                     + json.dumps(GOOD_2).encode() + b"\n")
    traces, rejects = _split(list(read_native(path)))
    assert [t.trace_id for t in traces] == ["good-1", "good-2"]
    assert [r.location for r in rejects] == ["line 2"]


def test_write_rejects_one_json_object_per_reject(tmp_path, mixed_file):
    _, rejects = _split(list(read_native(mixed_file)))
    out = tmp_path / "nested" / "rejects.jsonl"
    write_rejects(rejects, out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(rejects) == 6
    rows = [json.loads(line) for line in lines]
    for row, reject in zip(rows, rejects, strict=True):
        assert set(row) == {"file", "location", "field", "reason", "raw"}
        assert row["reason"] == reject.reason and row["reason"]
        assert row["location"] == reject.location
        assert row["field"] == reject.field
        assert row["raw"] == reject.raw


def test_write_rejects_keeps_unicode(tmp_path):
    out = tmp_path / "r.jsonl"
    write_rejects([Rejected("f", "line 1", "(record)", "not valid JSON: x", "héllo 57°F")], out)
    text = out.read_text(encoding="utf-8")
    assert "héllo 57°F" in text
    assert json.loads(text)["raw"] == "héllo 57°F"


def test_import_summary_line():
    summary = ImportSummary(read=5, imported=3, duplicates=1,
                            rejected=[Rejected("f", "line 2", "(record)", "bad")])
    assert summary.line() == "read 5, imported 3, skipped as duplicates 1, rejected 1"


# Lines a JSON parser may read differently from json.loads (numbers, escapes, repeated
# keys, NaN): the reader gives the same Trace as json.loads + Trace.model_validate, or the
# same rejects.
EDGE_LINES = [
    '{"trace_id": "a", "metadata": {"extra": {"x": NaN, "y": Infinity, "z": -Infinity}}}',
    '{"trace_id": "a", "metadata": {"extra": {"k": 1, "k": 2, "j": 3}}, "trace_id": "b"}',
    '{"trace_id": "a", "metadata": {"extra": {"x": 1e400, "y": -0.0, "z": 0.1, '
    '"w": 1E5, "v": 12345678901234567890123, "u": 2.2250738585072014e-308}}}',
    '{"trace_id": "a", "metadata": {"input_tokens": 1.0, "latency_ms": "12", '
    '"output_tokens": 123456789012345678901234567890}}',
    '{"trace_id": "\\ud83d\\ude00 \\u00e9 \\/ \\u0000", "output": "caf\u00e9"}',
    '{"trace_id": "a", "feedback": [{"record_key": "k", "trace_id": "a", "schema_id": "s", '
    '"schema_version": "1", "source": "qa", "created_at": 1700000000, "was_cancelled": 0, '
    '"score": "0.5", "updated_at": "2024-01-01T00:00:00.1234567+05:30"}]}',
    '{"trace_id": "a", "spans": [{"span_id": "s", "name": "n", "kind": "llm", '
    '"start_time": "2024-01-01 10:00", "end_time": 1.7e9}]}',
    '{"trace_id": "a\\ud800"}',                                     # lone surrogate
    '{"trace_id": "a\tb"}',                                        # raw control character
    '{"trace_id": "a", "metadata": {"latency_ms": NaN}}',
    '{"trace_id": "a", "metadata": {"input_tokens": 1' + "0" * 5000 + '}}',  # huge integer
    '\ufeff{"trace_id": "a"}',
    '{"trace_id": "a"} x',
    '{"trace_id": "a",}',
    '{"trace_id": "a", "metadata": {"extra": {"x": 01}}}',
]


@pytest.mark.parametrize("line", EDGE_LINES)
def test_reader_reads_as_json_loads_and_model_validate(tmp_path, line):
    path = tmp_path / "edge.jsonl"
    path.write_text(line + "\n" + json.dumps(GOOD_2) + "\n", encoding="utf-8")
    items = list(read_native(path))
    assert len(items) == 2 and items[1] == Trace.model_validate(GOOD_2)
    try:
        expected = Trace.model_validate(json.loads(line))
    except ValueError:  # not valid JSON, or not a valid Trace
        assert isinstance(items[0], list) and items[0]
        assert all(r.location == "line 1" for r in items[0])
    else:
        assert isinstance(items[0], Trace)
        assert repr(items[0]) == repr(expected)  # repr: NaN is not equal to itself


def test_otlp_time_past_the_platform_range_is_a_reject(tmp_path):
    """A nanosecond time so large the C library refuses it (OSError) rejects its span
    like any other out-of-range time, instead of ending the read with an OSError."""
    from ls_llmtrace.ingest.importers.otlp import read_otlp

    span = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
            "endTimeUnixNano": 67_768_036_191_676_798_846_631_937, "attributes": []}
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}) + "\n")
    items = list(read_otlp(path))
    assert len(items) == 1 and isinstance(items[0], list)
    assert "timestamp out of range" in items[0][0].reason
