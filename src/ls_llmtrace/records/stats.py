"""Failure rates and counts by model version, product area and user segment, with every
feedback source side by side (pure: works on the flat rows ``Store.record_facts`` gives).

A record counts once. Deleted records and cancelled (skipped) annotations do not count.
A record *fails* when its label is one of its schema version's failing labels (``fail``
when the schema version is not known here); the failure rate is failing / labeled.
Records whose trace is not known yet count under the dimensions the signal carried, or
under ``(unknown)``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from ls_llmtrace.schema.model import AnnotationSchema

DIMENSIONS = ("model_version", "product_area", "user_segment")
UNKNOWN = "(unknown)"


@dataclass
class Cell:
    records: int = 0
    labeled: int = 0
    failing: int = 0
    scored: int = 0
    score_sum: float = 0.0

    def add(self, failing: bool | None, score: float | None) -> None:
        self.records += 1
        if failing is not None:
            self.labeled += 1
            self.failing += failing
        if score is not None:
            self.scored += 1
            self.score_sum += score

    @property
    def failure_rate(self) -> float | None:
        return round(self.failing / self.labeled, 4) if self.labeled else None

    @property
    def mean_score(self) -> float | None:
        return round(self.score_sum / self.scored, 4) if self.scored else None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("score_sum")
        out.update(failure_rate=self.failure_rate, mean_score=self.mean_score)
        return out


def failing_labels(schemas: dict[tuple[str, int], AnnotationSchema]) -> dict[tuple[str, int],
                                                                              set[str]]:
    return {key: set(s.label_field.failing) if s.label_field else set()
            for key, s in schemas.items()}


def compute_stats(facts: Iterable[dict[str, Any]],
                  failing: dict[tuple[str, int], set[str]] | None = None) -> dict[str, Any]:
    """``{"sources": [...], "totals": {source: cell}, "by": {dimension: [{"value",
    "all", "sources": {source: cell}}]}}`` with cells as dicts."""
    failing = failing or {}
    totals: dict[str, Cell] = defaultdict(Cell)
    by: dict[str, dict[str, dict[str, Cell]]] = {d: defaultdict(lambda: defaultdict(Cell))
                                                 for d in DIMENSIONS}
    sources: set[str] = set()
    for fact in facts:
        if fact.get("was_cancelled"):
            continue
        label = fact.get("label")
        bad = failing.get((fact["schema_id"], int(fact["schema_version"])), {"fail"})
        is_failing = None if label is None else label in bad
        source = str(fact["source"])
        sources.add(source)
        totals[source].add(is_failing, fact.get("score"))
        totals["all"].add(is_failing, fact.get("score"))
        for dim in DIMENSIONS:
            value = fact.get(dim) or UNKNOWN
            by[dim][value][source].add(is_failing, fact.get("score"))
            by[dim][value]["all"].add(is_failing, fact.get("score"))
    return {
        "sources": sorted(sources),
        "totals": {k: v.as_dict() for k, v in sorted(totals.items())},
        "by": {dim: [{"value": value,
                      "all": cells["all"].as_dict(),
                      "sources": {s: c.as_dict() for s, c in sorted(cells.items())
                                  if s != "all"}}
                     for value, cells in sorted(by[dim].items())]
               for dim in DIMENSIONS},
    }


def format_stats(stats: dict[str, Any]) -> str:
    """Plain-text tables: one per dimension, a column per source: fail% (failing/labeled)."""
    sources = stats["sources"]
    if not sources:
        return "no records: sync annotations or import feedback first"

    def cell(c: dict[str, Any] | None) -> str:
        if not c or not c["labeled"]:
            return "-"
        return f"{100 * c['failure_rate']:.0f}% ({c['failing']}/{c['labeled']})"

    lines = []
    columns = ["all", *sources]
    for dim in DIMENSIONS:
        rows = [[row["value"], cell(row["all"]),
                 *(cell(row["sources"].get(s)) for s in sources)] for row in stats["by"][dim]]
        header = [dim, *columns]
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for r in rows:
            lines.append("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))
        lines.append("")
    lines.append("failure rate = failing / labeled records; cancelled and deleted excluded")
    return "\n".join(lines)
