"""labelstudio/results.py, the result codec: every control's result read and built back,
malformed entries reported (never raised), and stars <-> score."""

from __future__ import annotations

from typing import Any

import pytest

from ls_llmtrace.labelstudio.results import (
    Choices,
    Malformed,
    Number,
    Pairwise,
    ParagraphSpan,
    Rating,
    TextArea,
    TextSpan,
    read_result,
    read_results,
    score_to_stars,
    stars_to_score,
)

# (a result as Label Studio's UI submits it, the typed value it reads as)
WELL_FORMED: list[tuple[dict[str, Any], Any]] = [
    ({"id": "v1", "from_name": "verdict", "to_name": "answer", "type": "choices",
      "origin": "manual", "value": {"choices": ["fail"]}},
     Choices("verdict", "answer", choices=("fail",), id="v1")),
    ({"from_name": "categories", "to_name": "answer", "type": "choices",
      "value": {"choices": ["hallucination", "unsafe"]}},
     Choices("categories", "answer", choices=("hallucination", "unsafe"))),
    ({"from_name": "score", "to_name": "answer", "type": "rating", "value": {"rating": 2}},
     Rating("score", "answer", stars=2)),
    ({"from_name": "score", "to_name": "answer", "type": "number", "value": {"number": 0.35}},
     Number("score", "answer", number=0.35)),
    ({"from_name": "explanation", "to_name": "answer", "type": "textarea",
      "value": {"text": ["unsupported 24h claim", "second line"]}},
     TextArea("explanation", "answer", lines=("unsupported 24h claim", "second line"))),
    ({"id": "a1", "from_name": "answer_spans", "to_name": "answer", "type": "labels",
      "value": {"start": 43, "end": 61, "text": "sunny and 57F", "labels": ["hallucination"]}},
     TextSpan("answer_spans", "answer", start=43, end=61, text="sunny and 57F",
              labels=("hallucination",), id="a1")),
    ({"id": "m1", "from_name": "message_spans", "to_name": "conversation",
      "type": "paragraphlabels",
      "value": {"start": "3", "end": "3", "startOffset": 4, "endOffset": 9, "text": "rainy",
                "paragraphlabels": ["hallucination"]}},
     ParagraphSpan("message_spans", "conversation", first=3, last=3, start=4, end=9,
                   text="rainy", labels=("hallucination",), id="m1")),
    ({"from_name": "preference", "to_name": "preference", "type": "pairwise",
      "value": {"selected": "left"}},
     Pairwise("preference", "preference", selected="left")),
]


@pytest.mark.parametrize(("raw", "typed"), WELL_FORMED, ids=lambda x: getattr(x, "type", ""))
def test_read_and_build_round_trip(raw: dict[str, Any], typed: Any) -> None:
    decoded = read_result(raw)
    assert decoded == typed
    assert decoded.to_result() == raw  # read, built again: the same entry, extra keys kept
    assert typed.to_result() == {k: v for k, v in raw.items() if k != "origin"}  # built fresh


def test_building_another_type_replaces_the_value() -> None:
    raw = {"id": "s", "from_name": "score", "to_name": "answer", "type": "number",
           "value": {"number": 0.5}}
    rating = Rating("score", "answer", stars=3, id="s", raw=raw)
    assert rating.to_result() == {"id": "s", "from_name": "score", "to_name": "answer",
                                  "type": "rating", "value": {"rating": 3}}


def test_lenient_shapes_read() -> None:
    """What API clients send besides the UI's shapes, where the meaning is clear."""
    text = read_result({"from_name": "explanation", "type": "textarea", "value": {"text": "x"}})
    assert isinstance(text, TextArea) and text.text == "x" and text.to_name is None
    span = read_result({"from_name": "answer_spans", "type": "labels",
                        "value": {"start": "2", "end": "5", "labels": ["a"]}})
    assert isinstance(span, TextSpan) and (span.start, span.end, span.text) == (2, 5, None)
    empty = read_result({"from_name": "verdict", "type": "choices", "value": {}})
    assert isinstance(empty, Choices) and empty.choices == ()


MALFORMED: list[tuple[Any, str]] = [
    ("oops", "JSON object"),
    (None, "JSON object"),
    ({"type": "choices", "value": {"choices": ["pass"]}}, "from_name"),
    ({"from_name": "verdict", "type": "polygon", "value": {}}, "'polygon'"),
    ({"from_name": "verdict", "type": "choices", "value": "pass"}, "not a JSON object"),
    ({"from_name": "verdict", "type": "choices", "value": {"choices": "pass"}},
     "not a list of strings"),
    ({"from_name": "verdict", "type": "choices", "value": {"choices": [1]}},
     "not a list of strings"),
    ({"from_name": "score", "type": "rating", "value": {"rating": 2.5}}, "whole number"),
    ({"from_name": "score", "type": "rating", "value": {"rating": True}}, "whole number"),
    ({"from_name": "score", "type": "rating", "value": {"rating": "3"}}, "whole number"),
    ({"from_name": "score", "type": "number", "value": {"number": "0.5"}}, "not a number"),
    ({"from_name": "score", "type": "number", "value": {"number": False}}, "not a number"),
    ({"from_name": "score", "type": "number", "value": {}}, "not a number"),
    ({"from_name": "explanation", "type": "textarea", "value": {"text": {"a": 1}}},
     "list of lines"),
    ({"from_name": "answer_spans", "type": "labels", "value": {"start": 9, "end": 3,
                                                               "labels": ["a"]}}, "invalid"),
    ({"from_name": "answer_spans", "type": "labels", "value": {"start": -1, "end": 3}},
     "invalid"),
    ({"from_name": "message_spans", "type": "paragraphlabels",
      "value": {"start": "x", "end": "0", "startOffset": 0, "endOffset": 3}}, "invalid"),
    ({"from_name": "message_spans", "type": "paragraphlabels",
      "value": {"start": "4", "end": "2", "startOffset": 0, "endOffset": 3}}, "invalid"),
    ({"from_name": "message_spans", "type": "paragraphlabels",
      "value": {"start": "1", "end": "1", "startOffset": None, "endOffset": 3}}, "invalid"),
    ({"from_name": "preference", "type": "pairwise", "value": {"selected": "both"}},
     "left or right"),
]


@pytest.mark.parametrize(("raw", "reason"), MALFORMED)
def test_malformed_entries_are_reported_not_raised(raw: Any, reason: str) -> None:
    decoded = read_result(raw)
    assert isinstance(decoded, Malformed)
    assert reason in decoded.reason
    assert decoded.raw is raw


def test_a_result_list_is_read_entry_by_entry() -> None:
    good, bad = WELL_FORMED[0][0], MALFORMED[0][0]
    decoded = read_results([good, bad])
    assert isinstance(decoded[0], Choices) and isinstance(decoded[1], Malformed)
    assert read_results(None) == []
    (whole,) = read_results({"not": "a list"})
    assert isinstance(whole, Malformed) and "JSON array" in whole.reason


@pytest.mark.parametrize("max_rating", [3, 5, 10])
def test_stars_score_round_trip(max_rating: int) -> None:
    scores = [stars_to_score(stars, max_rating) for stars in range(1, max_rating + 1)]
    assert scores[0] == 0.0 and scores[-1] == 1.0
    assert scores == sorted(scores)
    for stars, score in enumerate(scores, start=1):
        assert score_to_stars(score, max_rating) == stars
        assert Rating("score", "answer", stars=stars).score(max_rating) == score
    assert Rating("score", "answer", stars=max_rating + 1).score(max_rating) is None
    assert Rating("score", "answer", stars=0).score(max_rating) is None


@pytest.mark.parametrize(("score", "max_rating", "stars"), [
    (0.6, 5, 3),  # 0.6 * 4 = 2.4 -> 3 stars, which read back as 0.5: a score between
                  # two stars is not kept, it goes to the nearest
    (0.625, 5, 4),  # exactly half-way between 3 and 4 stars: halves round up
    (0.1, 5, 1), (0.13, 5, 2), (0.74, 5, 4), (0.87, 5, 4), (0.88, 5, 5),
    (0.5, 3, 2), (0.24, 3, 1), (0.25, 3, 2),
    (0.74, 10, 8), (0.5, 10, 6),
    (-0.2, 5, 1), (1.7, 5, 5),  # clamped to 0.0..1.0 first
])
def test_score_to_the_nearest_star(score: float, max_rating: int, stars: int) -> None:
    assert score_to_stars(score, max_rating) == stars


def test_six_tenths_on_five_stars_reads_back_as_a_half() -> None:
    rating = Rating.of_score("score", "answer", 0.6, 5)
    assert rating.stars == 3 and rating.score(5) == 0.5
