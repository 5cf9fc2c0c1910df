"""The Label Studio result codec (pure): the one place that knows the ``result`` format.

An annotation's (or a prediction's) ``result`` is a list of entries, one per control and
region. :func:`read_result` decodes one entry into a typed value, :func:`read_results` a
whole list; each typed value's :meth:`Entry.to_result` builds the entry back. The shapes,
as Label Studio's UI submits them, are::

    Choices          {"type": "choices", "value": {"choices": ["fail"]}}
    Rating           {"type": "rating", "value": {"rating": 2}}
    Number           {"type": "number", "value": {"number": 0.35}}
    TextArea         {"type": "textarea", "value": {"text": ["why"]}}
    Labels on Text   {"type": "labels", "value": {"start": 43, "end": 61, "text": "...",
                                                  "labels": ["hallucination"]}}
    ParagraphLabels  {"type": "paragraphlabels", "value": {"start": "3", "end": "3",
                      "startOffset": 43, "endOffset": 61, "text": "...",
                      "paragraphlabels": ["hallucination"]}}  # start/end: message index
    Pairwise         {"type": "pairwise", "value": {"selected": "left"}}

each with ``from_name``, ``to_name`` and usually ``id`` (the region) and ``origin``.

``origin`` is written by Label Studio's labeling UI, not by its server: a result the UI
copied from a prediction says ``prediction``, one the reviewer then edited
``prediction-changed``, one the reviewer made ``manual``. An API client writes whatever it
sends (usually nothing), so :attr:`Entry.origin` is None then; :func:`same_value` compares
an entry with a prediction's entry when the origin must be worked out.

Reading is tolerant: Label Studio stores whatever an API client sends, so a malformed
entry decodes to :class:`Malformed` with the reason, never an exception. Whether a value
is *allowed* (one of the schema's labels, a score in range) is the caller's question;
the codec only says what the entry holds. Building keeps what it does not interpret: an
entry read and built again keeps its other keys (``origin``, ``meta``, unknown value
keys), so a rewrite changes only what it means to change.

Stars and scores: a ``Rating`` of 1..N stars stands for the score ``(stars - 1) / (N - 1)``
(1 star = 0.0, N stars = 1.0). :func:`stars_to_score` and :func:`score_to_stars` are the
only conversion in the package; a score between two stars goes to the nearest, halves up,
so it does not survive a round trip (0.6 on 5 stars -> 3 stars -> 0.5).

This module also reads a label config (:func:`parse_config`): which of the fixed
controls it has and what they allow, as a judge needs to answer it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

from ls_llmtrace.schema.labelconfig import (
    ANSWER_SPANS,
    CATEGORIES,
    EXPLANATION,
    JUDGE_EXPLANATION,
    MESSAGE_SPANS,
    SCORE,
    STEP_LABELS,
    VERDICT,
    Control,
    parse_controls,
    schema_version_of,
)

# --- stars <-> score -------------------------------------------------------------------------


def stars_to_score(stars: int, max_rating: int) -> float:
    """1..``max_rating`` stars -> 0.0..1.0 (1 star = 0.0, ``max_rating`` stars = 1.0)."""
    if max_rating < 2:  # a one-star control (a config not generated here) says "best"
        return 1.0
    return round((stars - 1) / (max_rating - 1), 6)


def score_to_stars(score: float, max_rating: int) -> int:
    """0.0..1.0 -> the nearest of 1..``max_rating`` stars; halves round up, a score
    outside 0.0..1.0 is clamped first."""
    return 1 + int(min(1.0, max(0.0, score)) * (max_rating - 1) + 0.5)


# --- decoded entries ---------------------------------------------------------------------------

Origin = Literal["prediction", "prediction-changed", "manual"]
ORIGINS: tuple[Origin, ...] = ("prediction", "prediction-changed", "manual")


def _no_raw() -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Entry:
    """One decoded result entry. ``raw`` is the entry as read (empty when built here)."""

    type: ClassVar[str]
    from_name: str
    to_name: str | None
    id: str | None = field(default=None, kw_only=True)
    raw: Mapping[str, Any] = field(default_factory=_no_raw, kw_only=True, compare=False,
                                   repr=False)

    def _value(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def origin(self) -> Origin | None:
        """What the labeling UI says about this result (None: not one of its origins)."""
        origin = self.raw.get("origin")
        for known in ORIGINS:
            if origin == known:
                return known
        return None

    def to_result(self) -> dict[str, Any]:
        """The entry as Label Studio takes it. Keys of the entry as read that this type
        does not interpret are kept; a value of another type is replaced whole."""
        out = {k: v for k, v in self.raw.items() if k != "value"}
        if self.id is not None:
            out["id"] = self.id
        out["from_name"] = self.from_name
        if self.to_name is not None:
            out["to_name"] = self.to_name
        out["type"] = self.type
        old = self.raw.get("value")
        value = dict(old) if isinstance(old, Mapping) and self.raw.get("type") == self.type \
            else {}
        value.update(self._value())
        out["value"] = value
        return out


@dataclass(frozen=True)
class Choices(Entry):
    """``Choices``: the values chosen (the verdict, failure categories)."""

    type: ClassVar[str] = "choices"
    choices: tuple[str, ...] = ()

    def _value(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}


@dataclass(frozen=True)
class Rating(Entry):
    """``Rating``: whole stars, 1..``maxRating`` of the control."""

    type: ClassVar[str] = "rating"
    stars: int = 1

    def score(self, max_rating: int) -> float | None:
        """The score these stars stand for, or None when out of 1..``max_rating``."""
        return stars_to_score(self.stars, max_rating) if 1 <= self.stars <= max_rating \
            else None

    @classmethod
    def of_score(cls, from_name: str, to_name: str | None, score: float, max_rating: int,
                 **kw: Any) -> Rating:
        return cls(from_name, to_name, stars=score_to_stars(score, max_rating), **kw)

    def _value(self) -> dict[str, Any]:
        return {"rating": self.stars}


@dataclass(frozen=True)
class Number(Entry):
    """``Number``: one number (the score, 0.0..1.0 in the generated configs)."""

    type: ClassVar[str] = "number"
    number: float = 0.0

    def _value(self) -> dict[str, Any]:
        return {"number": self.number}


@dataclass(frozen=True)
class TextArea(Entry):
    """``TextArea``: its lines of text."""

    type: ClassVar[str] = "textarea"
    lines: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def _value(self) -> dict[str, Any]:
        return {"text": list(self.lines)}


@dataclass(frozen=True)
class TextSpan(Entry):
    """``Labels`` on a ``Text``: a character range of the text and its labels."""

    type: ClassVar[str] = "labels"
    start: int = 0
    end: int = 0
    text: str | None = None
    labels: tuple[str, ...] = ()

    def _value(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start": self.start, "end": self.end}
        if self.text is not None:
            out["text"] = self.text
        out["labels"] = list(self.labels)
        return out


@dataclass(frozen=True)
class ParagraphSpan(Entry):
    """``ParagraphLabels`` on ``Paragraphs``: from offset ``start`` of message ``first``
    to offset ``end`` of message ``last`` (one message: ``first == last``), its labels."""

    type: ClassVar[str] = "paragraphlabels"
    first: int = 0
    last: int = 0
    start: int = 0
    end: int = 0
    text: str | None = None
    labels: tuple[str, ...] = ()

    def _value(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start": str(self.first), "end": str(self.last),
                               "startOffset": self.start, "endOffset": self.end}
        if self.text is not None:
            out["text"] = self.text
        out["paragraphlabels"] = list(self.labels)
        return out


@dataclass(frozen=True)
class Pairwise(Entry):
    """``Pairwise``: which side the reviewer prefers (``to_name`` is its own name)."""

    type: ClassVar[str] = "pairwise"
    selected: Literal["left", "right"] = "left"

    def _value(self) -> dict[str, Any]:
        return {"selected": self.selected}


Span = TextSpan | ParagraphSpan
Decoded = Choices | Rating | Number | TextArea | TextSpan | ParagraphSpan | Pairwise
ENTRY_TYPES: dict[str, type[Entry]] = {
    cls.type: cls for cls in (Choices, Rating, Number, TextArea, TextSpan, ParagraphSpan,
                              Pairwise)}


@dataclass(frozen=True)
class Malformed:
    """An entry that cannot be read, with the reason. ``from_name``/``type`` are what
    the entry says (None when it says nothing usable); ``value`` is the part at fault."""

    from_name: str | None
    type: str | None
    reason: str
    raw: Any
    value: Any = None


# --- reading -----------------------------------------------------------------------------------


class _Bad(Exception):
    def __init__(self, reason: str, value: Any) -> None:
        super().__init__(reason)
        self.reason, self.value = reason, value


def _strings(value: Mapping[str, Any], key: str) -> tuple[str, ...]:
    items = value.get(key)
    if items is None:
        return ()
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise _Bad(f"{key} {items!r} is not a list of strings", items)
    return tuple(items)


def _offset(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _span_text(value: Mapping[str, Any]) -> str | None:
    text = value.get("text")
    return text if isinstance(text, str) else None


def _decode(kind: str, value: Mapping[str, Any], head: dict[str, Any]) -> Decoded:
    if kind == "choices":
        return Choices(**head, choices=_strings(value, "choices"))
    if kind == "rating":
        stars = value.get("rating")
        if isinstance(stars, bool) or not isinstance(stars, int):
            raise _Bad(f"rating {stars!r} is not a whole number of stars", stars)
        return Rating(**head, stars=stars)
    if kind == "number":
        number = value.get("number")
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise _Bad(f"number {number!r} is not a number", number)
        return Number(**head, number=float(number))
    if kind == "textarea":
        text = value.get("text")
        if text is None:
            return TextArea(**head)
        if isinstance(text, str):
            return TextArea(**head, lines=(text,))
        if isinstance(text, list):
            return TextArea(**head, lines=tuple(str(t) for t in text))
        raise _Bad(f"text {text!r} is not a list of lines", text)
    if kind == "labels":
        start, end = _offset(value.get("start")), _offset(value.get("end"))
        if start is None or end is None or start > end:
            raise _Bad(f"span offsets {value.get('start')!r}..{value.get('end')!r} are "
                       "invalid", [value.get("start"), value.get("end")])
        return TextSpan(**head, start=start, end=end, text=_span_text(value),
                        labels=_strings(value, "labels"))
    if kind == "paragraphlabels":
        first, last = _offset(value.get("start")), _offset(value.get("end"))
        start, end = _offset(value.get("startOffset")), _offset(value.get("endOffset"))
        if first is None or last is None or first > last or start is None or end is None:
            raise _Bad(f"message span {value.get('start')!r}..{value.get('end')!r} offsets "
                       f"{value.get('startOffset')!r}..{value.get('endOffset')!r} are "
                       "invalid", [value.get(k) for k in ("start", "end", "startOffset",
                                                          "endOffset")])
        return ParagraphSpan(**head, first=first, last=last, start=start, end=end,
                             text=_span_text(value),
                             labels=_strings(value, "paragraphlabels"))
    selected = value.get("selected")
    if selected not in ("left", "right"):
        raise _Bad(f"selected {selected!r} is not left or right", selected)
    return Pairwise(**head, selected=selected)


def read_result(entry: Any) -> Decoded | Malformed:
    """One result entry, decoded; never raises."""
    if not isinstance(entry, Mapping):
        return Malformed(None, None, "a result must be a JSON object", entry)
    name, kind, to_name = entry.get("from_name"), entry.get("type"), entry.get("to_name")
    name = name if isinstance(name, str) and name else None
    kind = kind if isinstance(kind, str) else None
    if name is None:
        return Malformed(None, kind, "a result needs a from_name", entry)
    if kind not in ENTRY_TYPES:
        return Malformed(name, kind, f"result type {kind!r} is not one the codec reads",
                         entry, kind)
    value = entry.get("value")
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        return Malformed(name, kind, f"value {value!r} is not a JSON object", entry, value)
    region = entry.get("id")
    head: dict[str, Any] = {
        "from_name": name, "to_name": to_name if isinstance(to_name, str) else None,
        "id": region if isinstance(region, str) and region else None, "raw": entry}
    try:
        return _decode(kind, value, head)
    except _Bad as bad:
        return Malformed(name, kind, bad.reason, entry, bad.value)


def read_results(entries: Any) -> list[Decoded | Malformed]:
    """A whole ``result`` list, decoded entry by entry (None reads as no entries)."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        return [Malformed(None, None, "a result list must be a JSON array", entries)]
    return [read_result(e) for e in entries]


def same_value(entry: Entry, other: Entry) -> bool:
    """Whether two entries say the same thing (same control, type and value), whatever
    their region ids, origins and other keys."""
    return replace(entry, id=None) == replace(other, id=None)


def build_results(entries: Iterable[Entry]) -> list[dict[str, Any]]:
    return [e.to_result() for e in entries]


# --- what a label config asks ----------------------------------------------------------------


@dataclass(frozen=True)
class ObjectTag:
    """An object tag (what is shown): its tag, the task data key, and for Paragraphs the
    key of each item's text."""

    tag: str
    data_key: str
    text_key: str = "content"


@dataclass(frozen=True)
class ConfigSpec:
    """The fixed controls of one label config (checked by tag) and what they allow."""

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
    def judge_explanation(self) -> Control | None:
        return self._control(JUDGE_EXPLANATION, "TextArea")

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
    def step_labels(self) -> Control | None:
        """The Choices on each agent step (one control template, named per step)."""
        control = self._control(STEP_LABELS + "{{n}}", "Choices")
        return control if control is not None and control.to_name.endswith("{{n}}") else None

    @property
    def step_values(self) -> tuple[str, ...]:
        return self.step_labels.values if self.step_labels else ()

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
