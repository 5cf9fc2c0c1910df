"""The summary of an import. Rejected items are :class:`ls_llmtrace.models.Rejected`,
shared with the feedback channels."""

from __future__ import annotations

from dataclasses import dataclass, field

from ls_llmtrace.models import Rejected


@dataclass
class ImportSummary:
    read: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    unread: int = 0  # messages no dialect could read (kept as raw text)

    def line(self) -> str:
        unread = f", messages left unread {self.unread}" if self.unread else ""
        return (f"read {self.read}, imported {self.imported}, skipped as duplicates "
                f"{self.duplicates}, rejected {len(self.rejected)}{unread}")
