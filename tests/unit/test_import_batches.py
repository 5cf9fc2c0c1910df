"""The import road's cheap paths give what the full paths give: the batch ramp, the task
body encoding, and text cleaning when nothing needs cleaning."""

from __future__ import annotations

import json
from itertools import islice
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ls_llmtrace.ingest.convert import ReviewOptions, _clean, _clean_all
from ls_llmtrace.ingest.routing import batch_sizes
from ls_llmtrace.labelstudio.client import encode_tasks


def test_batches_start_small_and_grow_fourfold_to_the_batch_size() -> None:
    assert list(islice(batch_sizes(1000), 5)) == [100, 400, 1000, 1000, 1000]
    assert list(islice(batch_sizes(10000), 6)) == [100, 400, 1600, 6400, 10000, 10000]
    assert list(islice(batch_sizes(200), 3)) == [100, 200, 200]
    assert list(islice(batch_sizes(10), 2)) == [10, 10]  # never above --batch-size
    assert list(islice(batch_sizes(1000, first=1), 7)) == [1, 4, 16, 64, 256, 1000, 1000]


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


_texts = st.text(max_size=140) | st.sampled_from(
    ["write to ana@example.com", "x" * 100, "y" * 101, "z" * 99])
_data = st.recursive(_texts | st.integers() | st.none(),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(["a", "b", "skip"]), inner, max_size=3),
                     max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "skip", "c"]), _data, max_size=4),
       st.booleans())
def test_cleaning_without_anything_to_clean_equals_the_full_cleaning(
        data: dict[str, Any], redact: bool) -> None:
    options = ReviewOptions(max_chars=100, redact=("email",) if redact else ())
    skip = frozenset({"skip"})
    assert _clean_all(data, options, skip) == _clean(data, options, skip)
    assert _clean_all(data.get("a", ""), options) == _clean(data.get("a", ""), options)
    text = "y" * 101
    assert options.clean_with_replacements(text)[0].startswith("y" * 100 + "\n[... 1 more")
    assert options.clean_with_replacements("z" * 99) == ("z" * 99, [])
