"""What a label config lets a judge answer, and a verdict as Label Studio results (pure).

Everything is read from the label config Label Studio sends: the controls (by their fixed
names and checked by tag), their allowed values, and the object tags they point at (so a
quote is located in the same text the reviewer sees). Quotes are located to exact
offsets; a quote that is not in the text is dropped, never guessed.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from ls_llmtrace.judging.judges.base import Quote, Verdict
from ls_llmtrace.schema.labelconfig import (
    ANSWER_SPANS,
    CATEGORIES,
    EXPLANATION,
    MESSAGE_SPANS,
    SCORE,
    VERDICT,
    Control,
    parse_controls,
    schema_version_of,
)


@dataclass(frozen=True)
class ObjectTag:
    """An object tag (what is shown): its tag, the task data key, and for Paragraphs the
    key of each item's text."""

    tag: str
    data_key: str
    text_key: str = "content"


@dataclass(frozen=True)
class ConfigSpec:
    """The controls a judge can fill in one label config."""

    schema_version: str | None
    controls: dict[str, Control]
    objects: dict[str, ObjectTag]
    rating_max: dict[str, int] = field(default_factory=dict)

    def _control(self, name: str, *tags: str) -> Control | None:
        control = self.controls.get(name)
        return control if control is not None and control.tag in tags else None

    @property
    def verdict(self) -> Control | None:
        return self._control(VERDICT, "Choices")

    @property
    def categories(self) -> Control | None:
        return self._control(CATEGORIES, "Choices")

    @property
    def score(self) -> Control | None:
        return self._control(SCORE, "Number", "Rating")

    @property
    def explanation(self) -> Control | None:
        return self._control(EXPLANATION, "TextArea")

    @property
    def answer_spans(self) -> Control | None:
        control = self._control(ANSWER_SPANS, "Labels")
        obj = self.objects.get(control.to_name) if control else None
        return control if obj is not None and obj.tag == "Text" else None

    @property
    def message_spans(self) -> Control | None:
        control = self._control(MESSAGE_SPANS, "ParagraphLabels")
        obj = self.objects.get(control.to_name) if control else None
        return control if obj is not None and obj.tag == "Paragraphs" else None

    @property
    def verdict_values(self) -> tuple[str, ...]:
        return self.verdict.values if self.verdict else ()

    @property
    def category_values(self) -> tuple[str, ...]:
        return self.categories.values if self.categories else ()

    @property
    def span_values(self) -> tuple[str, ...]:
        values: list[str] = []
        for control in (self.answer_spans, self.message_spans):
            for value in control.values if control else ():
                if value not in values:
                    values.append(value)
        return tuple(values)


def parse_config(config: str) -> ConfigSpec:
    """Read a label config (raises ``xml.etree.ElementTree.ParseError`` when not XML)."""
    root = ET.fromstring(config)
    objects: dict[str, ObjectTag] = {}
    rating_max: dict[str, int] = {}
    for el in root.iter():
        name, value = el.get("name"), el.get("value") or ""
        if name and not el.get("toName") and value.startswith("$"):
            objects[name] = ObjectTag(el.tag, value[1:], el.get("textKey") or "content")
        if name and el.tag == "Rating":
            try:
                rating_max[name] = max(1, int(el.get("maxRating") or 5))
            except ValueError:
                rating_max[name] = 5
    return ConfigSpec(schema_version_of(config), parse_controls(config), objects, rating_max)


def _region_id(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode("utf-8")).hexdigest()[:10]


def locate(quote: str, text: str) -> tuple[int, int] | None:
    """Exact offsets of ``quote`` in ``text`` (first occurrence), or None."""
    if not quote or not quote.strip():
        return None
    start = text.find(quote)
    return (start, start + len(quote)) if start >= 0 else None


def _answer_region(spec: ConfigSpec, quote: Quote, data: dict[str, Any]) -> dict[str, Any] | None:
    control = spec.answer_spans
    if control is None or quote.label not in control.values:
        return None
    text = data.get(spec.objects[control.to_name].data_key)
    found = locate(quote.text, text) if isinstance(text, str) else None
    if found is None:
        return None
    start, end = found
    return {"id": _region_id(ANSWER_SPANS, start, end, quote.label), "from_name": control.name,
            "to_name": control.to_name, "type": "labels",
            "value": {"start": start, "end": end, "text": quote.text, "labels": [quote.label]}}


def _message_region(spec: ConfigSpec, quote: Quote,
                    data: dict[str, Any]) -> dict[str, Any] | None:
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
        return {"id": _region_id(MESSAGE_SPANS, index, start, end, quote.label),
                "from_name": control.name, "to_name": control.to_name,
                "type": "paragraphlabels",
                "value": {"start": str(index), "end": str(index), "startOffset": start,
                          "endOffset": end, "text": quote.text,
                          "paragraphlabels": [quote.label]}}
    return None


def to_results(spec: ConfigSpec, verdict: Verdict, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The verdict as Label Studio results for the controls of ``spec``.

    Values the config does not allow are left out (the caller validates the judge's
    answer first; this is the last guard). No verdict control, no results.
    """
    control = spec.verdict
    if control is None or verdict.label not in control.values:
        return []
    results: list[dict[str, Any]] = [{
        "from_name": control.name, "to_name": control.to_name, "type": "choices",
        "value": {"choices": [verdict.label]}}]
    categories = spec.categories
    if categories is not None:
        chosen = [c for c in categories.values if c in verdict.categories]
        if chosen:
            results.append({"from_name": categories.name, "to_name": categories.to_name,
                            "type": "choices", "value": {"choices": chosen}})
    score = spec.score
    if score is not None:
        value = min(1.0, max(0.0, verdict.score))
        if score.tag == "Rating":
            top = spec.rating_max.get(score.name, 5)
            results.append({"from_name": score.name, "to_name": score.to_name,
                            "type": "rating", "value": {"rating": stars_for(value, top)}})
        else:
            results.append({"from_name": score.name, "to_name": score.to_name,
                            "type": "number", "value": {"number": round(value, 4)}})
    explanation = spec.explanation
    if explanation is not None and verdict.explanation:
        results.append({"from_name": explanation.name, "to_name": explanation.to_name,
                        "type": "textarea", "value": {"text": [verdict.explanation]}})
    seen: set[str] = set()
    for quote in verdict.quotes:
        region = (_answer_region(spec, quote, data) if quote.target == "answer"
                  else _message_region(spec, quote, data))
        if region is not None and region["id"] not in seen:
            seen.add(region["id"])
            results.append(region)
    return results


def stars_for(score: float, max_rating: int) -> int:
    """0.0..1.0 -> 1..max_rating stars, the inverse of the schema's
    ``(stars - 1) / (max_rating - 1)`` (halves round up, like ``score_to_rating``)."""
    return 1 + int(min(1.0, max(0.0, score)) * (max_rating - 1) + 0.5)
