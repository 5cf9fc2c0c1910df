"""The judge interface and its verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Verdict:
    label: str
    score: float  # 0.0 (worst) .. 1.0 (best), in the schema's terms
    explanation: str
    confidence: float  # how sure the judge is; becomes the prediction's score


class Judge(Protocol):
    name: str

    @property
    def version(self) -> str: ...

    def judge(self, task_data: dict[str, Any]) -> Verdict | None:
        """A verdict for one task's data, or None when the judge has nothing to say."""
        ...
