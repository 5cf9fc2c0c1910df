"""The import road's cheap paths give what the full paths give: the batch ramp, the task
body encoding, and the text cleaning of a task."""

from __future__ import annotations

import json
from itertools import islice
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ls_llmtrace.ingest.convert import ReviewOptions, task_data
from ls_llmtrace.ingest.routing import batch_sizes
from ls_llmtrace.labelstudio.client import encode_tasks
from ls_llmtrace.models import Trace


def test_batches_start_small_and_grow_as_fast_as_they_can_be_prepared() -> None:
    # 400 + 1.4 x the one before: what the import prepares while Label Studio works
    assert list(islice(batch_sizes(2500), 7)) == [100, 540, 1156, 2018, 2500, 2500, 2500]
    assert list(islice(batch_sizes(10000), 8)) == [100, 540, 1156, 2018, 3225, 4915,
                                                   7281, 10000]
    assert list(islice(batch_sizes(200), 3)) == [100, 200, 200]
    assert list(islice(batch_sizes(10), 2)) == [10, 10]  # never above --batch-size
    assert list(islice(batch_sizes(1000, first=1), 4)) == [1, 401, 961, 1000]


# Texts with what JSON encoders treat specially: non-ASCII, lone surrogates, controls,
# slashes, quotes; numbers at the edges.
_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30) | \
    st.sampled_from(["a\ud800b", "\udfff", "é/x\u2028", "</script>", '"\\', "\x00\x1f"])
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**80, 2**80)
    | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(st.lists(_json, max_size=4))
def test_a_task_body_is_ascii_json_of_exactly_the_tasks(tasks: list[Any]) -> None:
    body = encode_tasks(tasks)
    body.decode("ascii")
    assert json.loads(body) == tasks
    assert json.loads(body) == json.loads(json.dumps(tasks))


def _reference(value: Any, options: ReviewOptions) -> Any:
    """Every text in ``value`` cleaned, walking the whole value."""
    if isinstance(value, str):
        return options.clean(value)
    if isinstance(value, list):
        return [_reference(v, options) for v in value]
    if isinstance(value, dict):
        return {k: _reference(v, options) for k, v in value.items()}
    return value


_word = st.sampled_from(["none", "ana@example.com", "x" * 60, "tool", "résumé", "\ud800"])
_long = st.lists(_word, max_size=4).map(" ".join)
_traces = st.builds(
    lambda i, system, q, a, docs, calls, model, error: Trace.model_validate({
        "trace_id": f"t-{i}", "system_prompt": system, "output": a,
        "messages": [{"role": "user", "content": q}] + ([{
            "role": "assistant", "content": "", "tool_calls": [
                {"id": f"c{n}", "name": name, "arguments": {"q": arg}}
                for n, (name, arg) in enumerate(calls)]}] if calls else []),
        "documents": [{"id": f"d{n}", "content": d, "score": 0.5} for n, d in enumerate(docs)],
        "metadata": {"model": model, "error": error or None}}),
    st.integers(0, 99), _long, _long, _long, st.lists(_long, max_size=2),
    st.lists(st.tuples(_word, _long), max_size=2), _long, _long)


@settings(max_examples=200, deadline=None)
@given(_traces, st.sampled_from([
    ReviewOptions(), ReviewOptions(max_chars=100),
    ReviewOptions(max_chars=100, redact=("email",), custom_patterns=("none",))]))
def test_a_task_shows_every_text_cleaned_as_a_walk_over_all_of_it_would(
        trace: Trace, options: ReviewOptions) -> None:
    raw = task_data(trace, ReviewOptions(max_chars=10**9))  # nothing cleaned
    got = task_data(trace, options)
    assert got["trace_id"] == raw["trace_id"] and got["messages_count"] == raw["messages_count"]
    assert got["metadata"] == _reference(raw["metadata"], options)
    assert got["answer"] == _reference(raw["answer"], options)
    # a text the trace has is cleaned; the placeholder for one it lacks is shown as it is
    for key, present in (("system_prompt", trace.system_prompt),
                         ("messages", trace.messages), ("documents", trace.documents),
                         ("tool_calls", any(m.tool_calls for m in trace.messages))):
        assert got[key] == (_reference(raw[key], options) if present else raw[key]), key
    assert options.clean_with_replacements("z" * 99) == ("z" * 99, [])
