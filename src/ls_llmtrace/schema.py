"""The versioned annotation schema: what reviewers answer, and the rubric behind it.

A schema file is YAML, validated here. ``<id>@v<version>`` is its version id. Control
names in the generated label config are fixed by field type (``verdict``, ``score``,
``explanation``, ``corrected_output``), so a result can always be mapped back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import SchemaError

MAX_FIELDS = 5
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelField(_Strict):
    """The verdict: one of ``values`` (binary pass/fail to start)."""

    type: Literal["label"]
    values: list[str] = Field(default_factory=lambda: ["pass", "fail"], min_length=2)
    failing: list[str] = Field(
        default_factory=lambda: ["fail"], description="Values that mean the trace failed."
    )
    required: bool = True

    @field_validator("values")
    @classmethod
    def _check_values(cls, values: list[str]) -> list[str]:
        seen: set[str] = set()
        for value in values:
            if not _SAFE_NAME.match(value):
                raise ValueError(
                    f"label {value!r} must be 1-64 letters, digits, spaces, '_', '.' or '-'"
                )
            if value.lower() in seen:
                raise ValueError(f"duplicate label {value!r}")
            seen.add(value.lower())
        return values

    @model_validator(mode="after")
    def _check_failing(self) -> LabelField:
        unknown = [v for v in self.failing if v not in self.values]
        if unknown:
            raise ValueError(f"failing values {unknown} are not among values {self.values}")
        return self


class ScoreField(_Strict):
    """A score from 0.0 to 1.0."""

    type: Literal["score"]
    step: float = Field(0.01, gt=0, le=1)


class ExplanationField(_Strict):
    """Free text: why the reviewer decided so."""

    type: Literal["explanation"]


class CorrectedOutputField(_Strict):
    """Free text: what the answer should have been."""

    type: Literal["corrected_output"]


SchemaField = Annotated[
    LabelField | ScoreField | ExplanationField | CorrectedOutputField,
    Field(discriminator="type"),
]


class RubricEntry(_Strict):
    """What a label means, with examples; shown to reviewers and given to the judge."""

    definition: str = Field(min_length=1)
    positive_examples: list[str] = Field(default_factory=list)
    negative_examples: list[str] = Field(default_factory=list)

    @field_validator("definition")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("definition is empty")
        return value


class AnnotationSchema(_Strict):
    """One version of an annotation schema."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,39}$")
    version: int = Field(ge=1)
    title: str = ""
    owner: str = Field(min_length=1, description="The domain expert who settles disagreements.")
    description: str = ""
    fields: list[SchemaField] = Field(min_length=1, max_length=MAX_FIELDS)
    rubric: dict[str, RubricEntry] = Field(default_factory=dict)

    @property
    def version_id(self) -> str:
        return f"{self.id}@v{self.version}"

    @property
    def label_field(self) -> LabelField | None:
        return next((f for f in self.fields if isinstance(f, LabelField)), None)

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
        label = self.label_field
        values = set(label.values) if label else set()
        unknown = sorted(set(self.rubric) - values)
        if unknown:
            raise ValueError(f"rubric entries {unknown} name no label value")
        return self


def parse_schema(text: str, origin: str = "<string>") -> AnnotationSchema:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SchemaError(f"{origin}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SchemaError(f"{origin}: a schema file must be a YAML mapping")
    try:
        return AnnotationSchema.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SchemaError(f"{origin}: invalid schema: {problems}") from exc


def load_schema(path: str | Path) -> AnnotationSchema:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"cannot read schema file {path}: {exc.strerror}") from exc
    return parse_schema(text, str(path))


def load_schema_dir(directory: str | Path) -> dict[tuple[str, int], AnnotationSchema]:
    """Every schema file (``*.yaml``) in a directory, by (id, version)."""
    out: dict[tuple[str, int], AnnotationSchema] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        schema = load_schema(path)
        out[(schema.id, schema.version)] = schema
    return out
