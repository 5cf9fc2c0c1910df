"""Queue rules: a mixed batch routed by a table of expectations, sampling, config errors."""

from __future__ import annotations

from typing import Any

import pytest

from ls_llmtrace.errors import ConfigError
from ls_llmtrace.ingest.rules import Signals, parse_rules, route_trace, sampled
from ls_llmtrace.models import AnnotationRecord, Source, Trace

RULES = """
queues:
  - name: thumbs-down
    triggers: {thumbs_down: true}
  - name: judge-low
    triggers: {judge_score_below: 0.5, judge: faithfulness}
  - name: slow-or-failing
    triggers: {latency_ms_over: 10000, error: true}
  - name: expensive
    triggers: {tokens_over: 8000, cost_usd_over: 0.05}
  - name: billing-prod
    filters: {product_area: [billing], environment: [prod]}
  - name: new-model-errors
    filters: {model_version: [gpt-5-2025-08-07]}
    triggers: {error: true}
  - name: pairs
    pairwise: {compare: model_version}
"""


def _trace(trace_id: str, **meta: Any) -> Trace:
    return Trace.model_validate({"trace_id": trace_id, "output": "ok", "metadata": meta})


def _fb(trace_id: str, source: Source, name: str, *, score: float | None = None,
        label: str | None = None, deleted: bool = False) -> AnnotationRecord:
    return AnnotationRecord(record_key=f"{trace_id}:{name}:{source}", trace_id=trace_id,
                            schema_id="imported", schema_version=0, source=source,
                            feedback_name=name, score=score, label=label, deleted=deleted)


# trace, its feedback, the queues it must land in (and only those)
CASES: list[tuple[Trace, list[AnnotationRecord], set[str]]] = [
    (_trace("plain"), [], set()),
    (_trace("thumb"), [_fb("thumb", Source.end_user, "thumbs", score=0.0)], {"thumbs-down"}),
    (_trace("thumb-label"), [_fb("thumb-label", Source.end_user, "thumbs", label="down")],
     {"thumbs-down"}),
    (_trace("thumb-up"), [_fb("thumb-up", Source.end_user, "thumbs", score=1.0)], set()),
    (_trace("thumb-deleted"), [_fb("thumb-deleted", Source.end_user, "t", score=0.0,
                                   deleted=True)], set()),
    # a reviewer's fail is not an end user's thumbs-down
    (_trace("reviewer-fail"), [_fb("reviewer-fail", Source.reviewer, "v", label="fail")], set()),
    (_trace("judge-low"), [_fb("judge-low", Source.judge, "faithfulness", score=0.2)],
     {"judge-low"}),
    (_trace("judge-other-metric"), [_fb("judge-other-metric", Source.evaluator, "toxicity",
                                        score=0.1)], set()),
    (_trace("judge-ok"), [_fb("judge-ok", Source.evaluator, "faithfulness", score=0.9)], set()),
    (_trace("slow", latency_ms=12000), [], {"slow-or-failing"}),
    (_trace("fast", latency_ms=900), [], set()),
    (_trace("failed", error="timeout"), [], {"slow-or-failing"}),
    (_trace("tokens", input_tokens=7000, output_tokens=1500), [], {"expensive"}),
    (_trace("costly", cost_usd=0.2), [], {"expensive"}),
    (_trace("cheap", cost_usd=0.01, input_tokens=10), [], set()),
    (_trace("billing-prod", product_area="billing", environment="prod"), [], {"billing-prod"}),
    (_trace("billing-staging", product_area="billing", environment="staging"), [], set()),
    (_trace("new-model-fail", model_version="gpt-5-2025-08-07", error="500"), [],
     {"new-model-errors", "slow-or-failing"}),
    (_trace("new-model-ok", model_version="gpt-5-2025-08-07"), [], set()),
    (_trace("everything", latency_ms=20000, cost_usd=1.0, product_area="billing",
            environment="prod"), [_fb("everything", Source.end_user, "thumbs", label="bad")],
     {"thumbs-down", "slow-or-failing", "expensive", "billing-prod"}),
]


@pytest.mark.parametrize(("trace", "feedback", "expected"), CASES,
                         ids=[c[0].trace_id for c in CASES])
def test_mixed_batch_routes_by_the_table(trace: Trace, feedback: list[AnnotationRecord],
                                         expected: set[str]) -> None:
    config = parse_rules(RULES)
    routed = route_trace(config, trace, Signals.from_records(feedback))
    assert set(routed) == expected
    assert "pairs" not in routed  # pairwise queues are filled by pairing, not per trace
    for reason in routed.values():
        assert reason


def test_reasons_say_why() -> None:
    config = parse_rules(RULES)
    trace = _trace("x", latency_ms=12000, error="boom")
    assert route_trace(config, trace, Signals())["slow-or-failing"] == \
        "latency 12000 ms > 10000; error"
    signals = Signals.from_records([_fb("x", Source.judge, "faithfulness", score=0.3),
                                    _fb("x", Source.judge, "faithfulness", score=0.1)])
    assert route_trace(config, trace, signals)["judge-low"] == \
        "judge score below 0.5 (faithfulness=0.1)"


def test_span_error_counts_as_error() -> None:
    trace = Trace.model_validate({"trace_id": "s", "spans": [
        {"span_id": "a", "error": "tool failed"}]})
    assert set(route_trace(parse_rules(RULES), trace, Signals())) == {"slow-or-failing"}


def test_sampling_is_deterministic_and_close_to_the_rate() -> None:
    config = parse_rules("queues:\n  - name: sample\n    sample_rate: 0.1\n")
    ids = [f"trace-{i}" for i in range(5000)]
    picked = [t for t in ids if route_trace(config, _trace(t), Signals())]
    assert 400 <= len(picked) <= 600
    again = [t for t in ids if route_trace(config, _trace(t), Signals())]
    assert picked == again
    # independent per queue: another queue samples other traces
    other = {t for t in ids if sampled("other", t, 0.1)}
    assert other != set(picked)
    assert not route_trace(parse_rules("queues:\n  - name: none\n    sample_rate: 0\n"),
                           _trace("a"), Signals())


@pytest.mark.parametrize(("text", "message"), [
    ("queues: []", "queues: List should have at least 1 item"),
    ("queues:\n  - name: a|b", "queues.0.name: Value error, use 1-60 characters"),
    ("queues:\n  - name: a\n    filters: {region: [eu]}", "unknown filter 'region'"),
    ("queues:\n  - name: a\n    triggers: {thumbsdown: true}", "thumbsdown: Extra inputs"),
    ("queues:\n  - name: a\n  - name: a", "queue names must be unique"),
    ("queues:\n  - name: a\n    sample_rate: 2", "sample_rate: Input should be less than"),
    ("queues: [", "not valid YAML"),
])
def test_bad_rules_say_where(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_rules(text, "rules.yaml")


def test_the_example_rules_file_loads() -> None:
    from ls_llmtrace.ingest.rules import load_rules

    from .paths import ROOT

    config = load_rules(ROOT / "examples" / "queue_rules.yaml")
    assert [q.name for q in config.queues][:2] == ["thumbs-down", "judge-low"]
    assert config.queue("model-ab").pairwise is not None
