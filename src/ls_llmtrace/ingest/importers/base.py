"""What every importer shares: rejected items and the summary."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError


@dataclass(frozen=True)
class Rejected:
    """An input record that could not be used, and why."""

    file: str
    location: str  # "line 7" or "record 3"
    field: str  # dotted path of the offending field, or "(record)"
    reason: str
    raw: str = ""

    def __str__(self) -> str:
        return f"{self.file}: {self.location}: {self.field}: {self.reason}"


def rejects_from_validation(
    exc: ValidationError, file: str, location: str, raw: str
) -> list[Rejected]:
    out = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(record)"
        out.append(Rejected(file, location, path, err["msg"], raw))
    return out


@dataclass
class ImportSummary:
    read: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def line(self) -> str:
        return (f"read {self.read}, imported {self.imported}, skipped as duplicates "
                f"{self.duplicates}, rejected {len(self.rejected)}")


def write_rejects(rejects: list[Rejected], path: Path) -> None:
    """Keep rejected records aside, one JSON object per line with the reason."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for r in rejects:
            out.write(json.dumps({"file": r.file, "location": r.location, "field": r.field,
                                  "reason": r.reason, "raw": r.raw}, ensure_ascii=False) + "\n")
