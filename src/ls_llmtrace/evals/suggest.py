"""``schema suggest``: failure clusters turned into a draft next schema version.

Each cluster becomes a new failure category (an additive, compatible change: the label
field's ``categories`` grow) with a rubric entry whose definition names the cluster's top
terms and whose positive examples quote its members' explanations. A cluster is not
proposed when it matches an existing category: most of its members already carry that
category, or its top terms spell the category's name. Clusters of fewer than
``MIN_CLUSTER`` traces are left out (too few to define a category on). The draft is
version current + 1, for the owner to edit and review (its ``schema diff`` against the
current version) before ``schema push``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ls_llmtrace.errors import ConfigError
from ls_llmtrace.evals.clusters import Cluster, ClusterReport, TooFewFailures
from ls_llmtrace.schema.diff import Change, diff_schemas
from ls_llmtrace.schema.model import AnnotationSchema, LabelField, RubricEntry

MIN_REVIEWED = 30
MIN_CLUSTER = 3
MATCH_SHARE = 0.5
_SLUG = re.compile(r"[^a-z0-9]+")


class TooFewReviewed(TooFewFailures):
    """Fewer reviewed traces than a schema suggestion needs: exit 4."""


@dataclass
class Suggestion:
    schema: AnnotationSchema
    proposed: list[dict[str, Any]]
    matched: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    changes: list[Change] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"version": self.schema.version_id, "proposed": self.proposed,
                "matched": self.matched, "skipped": self.skipped,
                "changes": [c.as_dict() for c in self.changes]}


def _slug(text: str) -> str:
    return _SLUG.sub("_", text.lower()).strip("_")


def category_name(cluster: Cluster, taken: set[str]) -> str:
    """A category name from the cluster's top two terms, not one already taken."""
    words = [w for term in cluster.terms for w in _slug(term).split("_") if w]
    base = "_".join(dict.fromkeys(words[:2])) or f"cluster_{cluster.id}"
    name, n = base[:60], 2
    while name.lower() in taken:
        name, n = f"{base[:57]}_{n}", n + 1
    return name


def existing_match(cluster: Cluster, categories: list[str]) -> tuple[str, str] | None:
    """(category, why) when the cluster is an existing category, else None."""
    for category, count in sorted(cluster.categories.items(), key=lambda kv: (-kv[1], kv[0])):
        if category in categories and count / cluster.size > MATCH_SHARE:
            return category, f"{count} of {cluster.size} members carry it"
    terms = {_slug(t) for t in cluster.terms[:3]} | {
        w for t in cluster.terms[:3] for w in _slug(t).split("_")}
    for category in categories:
        if _slug(category) in terms:
            return category, "its top terms name it"
    return None


def suggest_schema(schema: AnnotationSchema, report: ClusterReport, reviewed: int,
                   min_reviewed: int = MIN_REVIEWED) -> Suggestion:
    """The draft next version of ``schema`` from the clusters of its queue's failures."""
    if reviewed < min_reviewed:
        raise TooFewReviewed(f"only {reviewed} reviewed traces: schema suggest needs "
                             f"{min_reviewed} (review more traces or lower --min-reviewed)")
    label = schema.label_field
    if label is None or not label.failing:
        raise ConfigError(f"{schema.version_id} has no label field with failing values: "
                          "nothing to hang failure categories on")
    categories = list(label.categories)
    taken = {n.lower() for n in schema.names()}
    rubric = dict(schema.rubric)
    proposed, matched, skipped = [], [], []
    for cluster in report.clusters:
        match = existing_match(cluster, label.categories)
        if match is not None:
            matched.append({"cluster": cluster.id, "name": cluster.name, "size": cluster.size,
                            "category": match[0], "why": match[1]})
            continue
        if cluster.size < MIN_CLUSTER:
            skipped.append({"cluster": cluster.id, "name": cluster.name, "size": cluster.size,
                            "why": f"fewer than {MIN_CLUSTER} traces"})
            continue
        name = category_name(cluster, taken)
        taken.add(name.lower())
        categories.append(name)
        examples = list(dict.fromkeys(" ".join(e["explanation"].split())[:300]
                                      for e in cluster.examples))
        definition = (f"Failures like cluster {cluster.id} ({cluster.size} of "
                      f"{report.failures} failed traces): reviewers wrote about "
                      f"{', '.join(cluster.terms) or cluster.name}. Draft: edit before "
                      "pushing.")
        rubric[name] = RubricEntry(definition=definition, positive_examples=examples)
        proposed.append({"cluster": cluster.id, "category": name, "size": cluster.size,
                         "share": cluster.share, "definition": definition,
                         "positive_examples": examples,
                         "trace_ids": [e["trace_id"] for e in cluster.examples]})
    fields = [f.model_copy(update={"categories": categories}) if isinstance(f, LabelField)
              else f for f in schema.fields]
    draft = AnnotationSchema.model_validate({
        **schema.model_dump(), "version": schema.version + 1,
        "fields": [f.model_dump() for f in fields],
        "rubric": {k: v.model_dump() for k, v in rubric.items()}})
    return Suggestion(draft, proposed, matched, skipped, diff_schemas(schema, draft))


def draft_yaml(suggestion: Suggestion, queue: str, origin: str) -> str:
    """The draft as a schema file, with a header saying where it came from."""
    header = (f"# Draft {suggestion.schema.version_id} by `ls-llmtrace schema suggest --queue "
              f"{queue}` from {origin}.\n# New failure categories from the failure clusters "
              "(compatible): edit the names and\n# definitions, check `ls-llmtrace schema "
              "diff`, then `ls-llmtrace schema push`.\n")
    body = suggestion.schema.model_dump(mode="json", exclude_defaults=False)
    return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=92)


def write_draft(suggestion: Suggestion, text: str, path: Path) -> Path:
    if path.exists():
        raise ConfigError(f"{path} exists: choose another file with -o")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
