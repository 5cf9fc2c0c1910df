"""A judge's verdict as Label Studio prediction results (pure), built with the codec.

Everything comes from the label config Label Studio sends (:class:`ConfigSpec`): the
controls, by their fixed names and checked by tag, their allowed values, and the object
tags they point at (so a quote is located in the same text the reviewer sees). Quotes are
located to exact offsets; a quote that is not in the text is dropped, never guessed.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ls_llmtrace.judging.judges.base import Quote, StepMark, Verdict
from ls_llmtrace.labelstudio.results import (
    Choices,
    ConfigSpec,
    Entry,
    Number,
    ParagraphSpan,
    Rating,
    TextArea,
    TextSpan,
    build_results,
)
from ls_llmtrace.schema.labelconfig import ANSWER_SPANS, MESSAGE_SPANS, judge_lines


def _region_id(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode("utf-8")).hexdigest()[:10]


def locate(quote: str, text: str) -> tuple[int, int] | None:
    """Exact offsets of ``quote`` in ``text`` (first occurrence), or None."""
    if not quote or not quote.strip():
        return None
    start = text.find(quote)
    return (start, start + len(quote)) if start >= 0 else None


def _answer_region(spec: ConfigSpec, quote: Quote, data: dict[str, Any]) -> TextSpan | None:
    control = spec.answer_spans
    if control is None or quote.label not in control.values:
        return None
    text = data.get(spec.objects[control.to_name].data_key)
    found = locate(quote.text, text) if isinstance(text, str) else None
    if found is None:
        return None
    start, end = found
    return TextSpan(control.name, control.to_name, start=start, end=end, text=quote.text,
                    labels=(quote.label,), id=_region_id(ANSWER_SPANS, start, end, quote.label))


def _message_region(spec: ConfigSpec, quote: Quote,
                    data: dict[str, Any]) -> ParagraphSpan | None:
    control = spec.message_spans
    if control is None or quote.label not in control.values:
        return None
    obj = spec.objects[control.to_name]
    items = data.get(obj.data_key)
    if not isinstance(items, list):
        return None
    indexes = range(len(items)) if quote.message_index is None else [quote.message_index]
    for index in indexes:
        if not 0 <= index < len(items) or not isinstance(items[index], dict):
            continue
        text = items[index].get(obj.text_key)
        found = locate(quote.text, text) if isinstance(text, str) else None
        if found is None:
            continue
        start, end = found
        return ParagraphSpan(control.name, control.to_name, first=index, last=index,
                             start=start, end=end, text=quote.text, labels=(quote.label,),
                             id=_region_id(MESSAGE_SPANS, index, start, end, quote.label))
    return None


def _step_marks(spec: ConfigSpec, marks: tuple[StepMark, ...],
                data: dict[str, Any]) -> list[Choices]:
    """The judge's failing agent steps as the Choices of those steps (steps the task does
    not have and labels the config does not allow are left out)."""
    control = spec.step_labels
    steps = data.get("steps")
    if control is None or not isinstance(steps, list):
        return []
    out: dict[int, Choices] = {}
    for mark in marks:
        index = mark.step - 1
        chosen = tuple(v for v in control.values if v in mark.labels)
        if 0 <= index < len(steps) and chosen and index not in out:
            out[index] = Choices(control.name.replace("{{n}}", str(index)),
                                 control.to_name.replace("{{n}}", str(index)), choices=chosen)
    return [out[i] for i in sorted(out)]


def to_results(spec: ConfigSpec, verdict: Verdict, data: dict[str, Any],
               model_version: str | None = None) -> list[dict[str, Any]]:
    """The verdict as Label Studio results for the controls of ``spec``.

    Values the config does not allow are left out (the caller validates the judge's
    answer first; this is the last guard). No verdict control, no results. The judge's
    explanation goes into its own read-only control, headed with ``model_version`` (the
    judge and its version), leaving the reviewer's explanation box empty; a config
    without that control (generated before it) gets it in the reviewer's box as before.
    """
    control = spec.verdict
    if control is None or verdict.label not in control.values:
        return []
    entries: list[Entry] = [Choices(control.name, control.to_name, choices=(verdict.label,))]
    categories = spec.categories
    if categories is not None:
        chosen = tuple(c for c in categories.values if c in verdict.categories)
        if chosen:
            entries.append(Choices(categories.name, categories.to_name, choices=chosen))
    score = spec.score
    if score is not None:
        value = min(1.0, max(0.0, verdict.score))
        if score.tag == "Rating":
            entries.append(Rating.of_score(score.name, score.to_name, value,
                                           spec.rating_max.get(score.name, 5)))
        else:
            entries.append(Number(score.name, score.to_name, number=round(value, 4)))
    judge_box = spec.judge_explanation
    explanation = spec.explanation
    if judge_box is not None and verdict.explanation:
        entries.append(TextArea(judge_box.name, judge_box.to_name,
                                lines=judge_lines(model_version, verdict.explanation)))
    elif explanation is not None and verdict.explanation:
        entries.append(TextArea(explanation.name, explanation.to_name,
                                lines=(verdict.explanation,)))
    entries.extend(_step_marks(spec, verdict.steps, data))
    seen: set[str | None] = set()
    for quote in verdict.quotes:
        region = (_answer_region(spec, quote, data) if quote.target == "answer"
                  else _message_region(spec, quote, data))
        if region is not None and region.id not in seen:
            seen.add(region.id)
            entries.append(region)
    return build_results(entries)
