"""judging/predictions.py: verdicts as Label Studio results, by the controls of the config."""

from __future__ import annotations

from ls_llmtrace.judging.judges import Quote, Verdict
from ls_llmtrace.judging.predictions import locate, to_results
from ls_llmtrace.labelstudio.results import Rating, parse_config, read_result

from .judge_configs import FULL_CONFIG, RATING_CONFIG
from .paths import DEFAULT_XML

DATA = {
    "messages": [{"role": "user", "content": "Is it raining in Paris?"},
                 {"role": "tool", "content": "rainy, 57F"}],
    "answer": "It is sunny and 57F in Paris. Enjoy!",
}


def _verdict(**kw) -> Verdict:
    base = {"label": "fail", "score": 0.2, "explanation": "Says sunny; the tool said rainy.",
            "confidence": 0.9}
    base.update(kw)
    return Verdict(**base)


def test_locate_is_exact():
    assert locate("sunny", DATA["answer"]) == (6, 11)
    assert locate("Sunny", DATA["answer"]) is None
    assert locate("", DATA["answer"]) is None
    assert locate("   ", DATA["answer"]) is None


def test_full_config_gets_every_control():
    spec = parse_config(FULL_CONFIG)
    assert spec.schema_version == "itest@v1"
    assert spec.verdict_values == ("pass", "fail")
    assert spec.category_values == ("hallucination", "incomplete", "unsafe")
    assert spec.span_values == ("hallucination", "unsafe")
    verdict = _verdict(categories=("hallucination", "made-up"), quotes=(
        Quote("hallucination", "sunny"),
        Quote("hallucination", "rainy, 57F", "message", 1),
        Quote("hallucination", "rainy", "message", None),  # searched in every message
        Quote("hallucination", "snowing", "answer"),  # not in the text: dropped
        Quote("hallucination", "Paris", "message", 7),  # no message 7: dropped
        Quote("made-up", "Enjoy", "answer"),  # label not in the config: dropped
    ))
    results = to_results(spec, verdict, DATA)
    by_type: dict[str, list] = {}
    for r in results:
        by_type.setdefault(r["from_name"], []).append(r)
    assert by_type["verdict"][0]["value"] == {"choices": ["fail"]}
    assert by_type["categories"][0]["value"] == {"choices": ["hallucination"]}
    assert by_type["score"][0]["value"] == {"number": 0.2}
    assert by_type["explanation"][0]["value"] == {"text": ["Says sunny; the tool said rainy."]}
    [answer_span] = by_type["answer_spans"]
    assert answer_span["type"] == "labels" and answer_span["to_name"] == "answer"
    assert answer_span["value"] == {"start": 6, "end": 11, "text": "sunny",
                                    "labels": ["hallucination"]}
    assert DATA["answer"][6:11] == "sunny"
    spans = by_type["message_spans"]
    assert [s["value"] for s in spans] == [
        {"start": "1", "end": "1", "startOffset": 0, "endOffset": 10, "text": "rainy, 57F",
         "paragraphlabels": ["hallucination"]},
        {"start": "1", "end": "1", "startOffset": 0, "endOffset": 5, "text": "rainy",
         "paragraphlabels": ["hallucination"]},
    ]
    assert all(s["type"] == "paragraphlabels" and s["to_name"] == "conversation" for s in spans)
    assert all(r.get("id") for r in results if r["from_name"].endswith("_spans"))


def test_generated_v1_config_gets_only_its_controls():
    spec = parse_config(DEFAULT_XML.read_text())
    results = to_results(spec, _verdict(categories=("x",), quotes=(Quote("x", "sunny"),)), DATA)
    # the explanation is the judge's own (its read-only control), not the reviewer's box
    assert [r["from_name"] for r in results] == ["verdict", "score", "judge_explanation"]


def test_rating_scales_the_score():
    spec = parse_config(RATING_CONFIG)
    results = to_results(spec, _verdict(score=0.74), DATA)
    assert results[1] == {"from_name": "score", "to_name": "answer", "type": "rating",
                          "value": {"rating": 8}}  # (8-1)/9 = 0.78 is nearest 0.74


def test_label_not_in_config_gives_nothing():
    assert to_results(parse_config(FULL_CONFIG), _verdict(label="maybe"), DATA) == []


def test_wrong_tag_under_a_reserved_name_is_ignored():
    config = FULL_CONFIG.replace('<Number name="score"', '<TextArea name="score"')
    spec = parse_config(config)
    assert spec.score is None
    assert "score" not in [r["from_name"] for r in to_results(spec, _verdict(), DATA)]


def test_rating_predictions_read_back_as_the_verdict_score() -> None:
    """A rating prediction decodes to the stars the verdict's score stands for."""
    spec = parse_config(RATING_CONFIG)
    for score, stars in [(0.0, 1), (0.5, 6), (0.6, 6), (0.95, 10), (1.0, 10)]:
        (rating,) = [r for r in to_results(spec, _verdict(score=score), DATA)
                     if r["type"] == "rating"]
        decoded = read_result(rating)
        assert isinstance(decoded, Rating) and decoded.stars == stars
        assert decoded.score(10) == round((stars - 1) / 9, 6)


def test_generated_config_gets_the_explanation_as_the_judges():
    from ls_llmtrace.schema.labelconfig import build_label_config
    from ls_llmtrace.schema.model import load_schema

    spec = parse_config(build_label_config(load_schema(DEFAULT_XML.with_suffix(".yaml"))))
    results = to_results(spec, _verdict(), DATA, "llm-v3@default@v1")
    by_name = {r["from_name"]: r for r in results}
    # the reviewer's box stays empty; the judge's words are in its own control, headed
    # with the judge and its version
    assert "explanation" not in by_name
    assert by_name["judge_explanation"]["type"] == "textarea"
    assert by_name["judge_explanation"]["value"] == {
        "text": ["Judge llm-v3@default@v1:", "Says sunny; the tool said rainy."]}
    assert by_name["verdict"]["value"] == {"choices": ["fail"]}


def test_which_predictions_are_of_another_schema_version():
    from ls_llmtrace.judging.predict import schema_part, stale

    assert schema_part("llm-v3@default@v1") == "default@v1"
    assert schema_part("learned-v2-abc@default@v12") == "default@v12"
    assert schema_part("my-model") is None and schema_part("x@default") is None
    current = "llm-v3@default@v2"
    # the same schema at another version, by any of this package's judges: stale
    assert stale("llm-v3@default@v1", current) and stale("rules-v1@default@v3", current)
    # the current version (another judge too), another schema, another model: kept
    assert not stale("llm-v3@default@v2", current)
    assert not stale("learned-v1-x@default@v2", current)
    assert not stale("llm-v3@other@v1", current)
    assert not stale("someones-model", current) and not stale("", current)
