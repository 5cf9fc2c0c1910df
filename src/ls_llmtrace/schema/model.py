"""The versioned annotation schema: what reviewers answer, and the rubric behind it.

A schema file is YAML, validated here. ``<id>@v<version>`` is its version id. Control
names in the generated label config are fixed by field type (``verdict``, ``categories``,
``score``, ``explanation``, ``corrected_output``, ``answer_spans``, ``message_spans``), so
a result can always be mapped back.

Reviewer fields (at most five, each type once):

- ``label``: the verdict (binary pass/fail to start), with optional failure
  ``categories`` shown only when a failing verdict is chosen;
- ``score``: 0.0-1.0, either a number or a ``rating`` of 1..``max_rating`` stars that maps
  onto 0.0-1.0 as ``(stars - 1) / (max_rating - 1)`` (converted in one place: the result
  codec, ``labelstudio/results.py``);
- ``explanation`` and ``corrected_output``: free text;
- ``spans``: labels on a text range, on the final answer and/or on conversation messages.

Every record also carries ``source``, ``scope`` and ``metadata`` without asking anyone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from ls_llmtrace.errors import SchemaError
from ls_llmtrace.models import FileModel, problems
from ls_llmtrace.yamlfiles import parse_yaml_mapping, read_text

MAX_FIELDS = 5
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}")
# XML 1.0 allows tab, newline and carriage return, and no other control character
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_VERSION_IN_TEXT = re.compile(r"\(\s*schema\b", re.IGNORECASE)


def _xml_text(value: str) -> str:
    """Text that goes into the generated label config: XML can hold it."""
    bad = _NOT_XML.search(value)
    if bad:
        raise ValueError(f"control character or invalid code point {bad.group()!r} at "
                         f"position {bad.start()}: remove it (the label config is XML)")
    return value


XmlText = Annotated[str, AfterValidator(_xml_text)]


def _check_names(values: list[str], what: str) -> list[str]:
    """Names become XML attribute values and Label Studio ``whenChoiceValue`` lists
    (comma separated), so only a safe alphabet is allowed. Surrounding whitespace is
    trimmed first; duplicates ignore case."""
    values = [v.strip() for v in values]
    seen: set[str] = set()
    for value in values:
        if not _SAFE_NAME.fullmatch(value):
            raise ValueError(
                f"{what} {value!r} must be 1-64 letters, digits, spaces, '_', '.' or '-' "
                "(starting with a letter or digit)"
            )
        if value.lower() in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value.lower())
    return values


class LabelField(FileModel):
    """The verdict: one of ``values`` (binary pass/fail to start)."""

    type: Literal["label"]
    values: list[str] = Field(default_factory=lambda: ["pass", "fail"], min_length=2)
    failing: list[str] = Field(
        default_factory=lambda: ["fail"], description="Values that mean the trace failed."
    )
    required: bool = True
    categories: list[str] = Field(
        default_factory=list,
        description="Failure categories, shown only when a failing value is chosen.",
    )
    first_failing_step: bool = Field(
        False, description="On a failing verdict of an agent trace, also ask for the number "
        "of the first failing step.")

    @field_validator("values")
    @classmethod
    def _check_values(cls, values: list[str]) -> list[str]:
        return _check_names(values, "label")

    @field_validator("categories")
    @classmethod
    def _check_categories(cls, values: list[str]) -> list[str]:
        return _check_names(values, "category")

    @field_validator("failing")
    @classmethod
    def _trim_failing(cls, values: list[str]) -> list[str]:
        return [v.strip() for v in values]

    @model_validator(mode="after")
    def _check_failing(self) -> LabelField:
        unknown = [v for v in self.failing if v not in self.values]
        if unknown:
            raise ValueError(f"failing values {unknown} are not among values {self.values}")
        if self.categories and not self.failing:
            raise ValueError("categories are shown on a failing verdict: name the failing values")
        return self


class ScoreField(FileModel):
    """A score from 0.0 to 1.0, asked as a number or as a star rating."""

    type: Literal["score"]
    step: float = Field(0.01, gt=0, le=1)
    scale: Literal["number", "rating"] = Field(
        "number", description="`number`: 0.0-1.0 directly; `rating`: 1..max_rating stars."
    )
    max_rating: int = Field(5, ge=2, le=10, description="Stars of a rating scale.")

    @property
    def is_rating(self) -> bool:
        return self.scale == "rating"

    def scale_id(self) -> str:
        """What a stored value means, for comparing two versions."""
        return f"rating 1-{self.max_rating}" if self.is_rating else "number 0.0-1.0"


class ExplanationField(FileModel):
    """Free text: why the reviewer decided so."""

    type: Literal["explanation"]


class CorrectedOutputField(FileModel):
    """Free text: what the answer should have been."""

    type: Literal["corrected_output"]
    required_on_fail: bool = Field(
        False, description="The form refuses a failing verdict without a corrected output."
    )


SpanTarget = Literal["answer", "messages"]


def _every_target() -> list[SpanTarget]:
    return ["answer", "messages"]


class SpanField(FileModel):
    """Labels on a text range: of the final answer and/or inside conversation messages."""

    type: Literal["spans"]
    labels: list[str] = Field(min_length=1)
    targets: list[SpanTarget] = Field(
        default_factory=_every_target, min_length=1,
        description="Where ranges can be marked.",
    )

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, values: list[str]) -> list[str]:
        return _check_names(values, "span label")

    @field_validator("targets")
    @classmethod
    def _check_targets(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError(f"duplicate target in {values}")
        return values


SchemaField = Annotated[
    LabelField | ScoreField | ExplanationField | CorrectedOutputField | SpanField,
    Field(discriminator="type"),
]


class RubricEntry(FileModel):
    """What a label means, with examples; shown to reviewers and given to the judge."""

    definition: XmlText = Field(min_length=1)
    positive_examples: list[XmlText] = Field(default_factory=list)
    negative_examples: list[XmlText] = Field(default_factory=list)

    @field_validator("definition")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("definition is empty")
        return value


class AnnotationSchema(FileModel):
    """One version of an annotation schema."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,39}$")
    version: int = Field(ge=1)
    title: XmlText = ""
    owner: XmlText = Field(min_length=1,
                           description="The domain expert who settles disagreements.")
    description: XmlText = ""
    fields: list[SchemaField] = Field(min_length=1, max_length=MAX_FIELDS)
    rubric: dict[str, RubricEntry] = Field(default_factory=dict)

    @property
    def version_id(self) -> str:
        return f"{self.id}@v{self.version}"

    @property
    def label_field(self) -> LabelField | None:
        return next((f for f in self.fields if isinstance(f, LabelField)), None)

    @property
    def score_field(self) -> ScoreField | None:
        return next((f for f in self.fields if isinstance(f, ScoreField)), None)

    @property
    def span_field(self) -> SpanField | None:
        return next((f for f in self.fields if isinstance(f, SpanField)), None)

    @property
    def categories(self) -> list[str]:
        field = self.label_field
        return list(field.categories) if field else []

    @property
    def step_labels(self) -> list[str]:
        """What a reviewer marks a failing agent step with: the failure categories, else
        the failing verdict values."""
        field = self.label_field
        if field is None:
            return []
        return list(field.categories or field.failing)

    def names(self) -> set[str]:
        """Every label name a rubric entry may describe."""
        out: set[str] = set()
        if self.label_field:
            out.update(self.label_field.values)
            out.update(self.label_field.categories)
        if self.span_field:
            out.update(self.span_field.labels)
        return out

    def rubric_for_judge(self) -> str:
        """The rubric as plain text, for a judge's prompt."""
        lines = [f"Schema {self.version_id}: {self.title or self.id}"]
        if self.description:
            lines.append(self.description.strip())
        for name, entry in self.rubric.items():
            lines.append(f"- {name}: {entry.definition.strip()}")
            lines += [f"    e.g.: {x}" for x in entry.positive_examples]
            lines += [f"    not: {x}" for x in entry.negative_examples]
        return "\n".join(lines)

    def has(self, field_type: str) -> bool:
        return any(f.type == field_type for f in self.fields)

    def is_failing(self, label: str | None) -> bool:
        field = self.label_field
        return bool(field and label in field.failing)

    @model_validator(mode="after")
    def _check(self) -> AnnotationSchema:
        types = [f.type for f in self.fields]
        dupes = sorted({t for t in types if types.count(t) > 1})
        if dupes:
            raise ValueError(f"field types may appear once each; repeated: {dupes}")
        unknown = sorted(set(self.rubric) - self.names())
        if unknown:
            raise ValueError(
                f"rubric entries {unknown} name no label value, category or span label"
            )
        return self

    @field_validator("title")
    @classmethod
    def _no_version_in_title(cls, title: str) -> str:
        # the config's header ends in "(schema <id>@v<n>)": a title must not forge one
        if _VERSION_IN_TEXT.search(title):
            raise ValueError("must not contain '(schema': the label config adds the schema "
                             "version itself")
        return title

    @field_validator("rubric", mode="before")
    @classmethod
    def _no_empty_entries(cls, rubric: object) -> object:
        if isinstance(rubric, dict):
            rubric = {k.strip() if isinstance(k, str) else k: v for k, v in rubric.items()}
            for name, entry in rubric.items():
                if entry is None or entry == {} or entry == "":
                    raise ValueError(
                        f"rubric entry {name!r} is empty: give it a definition "
                        "(and ideally positive and negative examples)"
                    )
        return rubric


def parse_schema(text: str, origin: str = "<string>") -> AnnotationSchema:
    raw = parse_yaml_mapping(text, origin, SchemaError, "schema")
    try:
        return AnnotationSchema.model_validate(raw)
    except ValidationError as exc:
        raise SchemaError(f"{origin}: invalid schema: {problems(exc)}") from exc


def load_schema(path: str | Path) -> AnnotationSchema:
    path = Path(path)
    return parse_schema(read_text(path, SchemaError, "schema file"), str(path))


def load_schema_dir(directory: str | Path) -> dict[tuple[str, int], AnnotationSchema]:
    """Every schema file (``*.yaml``) in a directory, by (id, version)."""
    out: dict[tuple[str, int], AnnotationSchema] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        schema = load_schema(path)
        out[(schema.id, schema.version)] = schema
    return out


def find_schema_version(directory: str | Path, schema_id: str,
                        version: int) -> AnnotationSchema | None:
    """The schema file of ``schema_id`` at ``version`` in a directory: ``<id>.v<n>.yaml``
    when it holds that version, else any file of the directory that does; None if none."""
    directory = Path(directory)
    path = directory / f"{schema_id}.v{version}.yaml"
    if path.is_file():
        schema = load_schema(path)
        if (schema.id, schema.version) == (schema_id, version):
            return schema
    return load_schema_dir(directory).get((schema_id, version)) if directory.is_dir() else None
