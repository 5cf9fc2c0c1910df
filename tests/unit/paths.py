"""Where the checked-in files the unit tests read live."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LABEL_CONFIGS = ROOT / "label_configs"
DEFAULT_YAML = LABEL_CONFIGS / "default.v1.yaml"
DEFAULT_XML = LABEL_CONFIGS / "default.v1.xml"
SAMPLE_TRACES = ROOT / "examples" / "sample_traces.jsonl"
FIXTURES = ROOT / "tests" / "fixtures"
