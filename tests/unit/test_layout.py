"""The layout's arrows: stages import only downwards and nothing imports the CLI.

The contract is ``[tool.importlinter]`` in pyproject.toml; import-linter reads the real
import graph (grimp), so a new upward import or an import cycle between stages fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_contract_is_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout


def test_the_contract_names_every_stage() -> None:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    package = REPO / "src" / "ls_llmtrace"
    stages = sorted(p.name for p in package.iterdir()
                    if p.is_dir() and (p / "__init__.py").exists())
    modules = sorted(p.stem for p in package.glob("*.py") if not p.stem.startswith("__"))
    for name in stages + modules:
        assert f"ls_llmtrace.{name}" in text, f"{name} is not placed in the layout contract"


def test_all_sql_lives_in_the_store_package() -> None:
    package = REPO / "src" / "ls_llmtrace"
    outside = []
    for path in package.rglob("*.py"):
        if path.is_relative_to(package / "store"):
            continue
        text = path.read_text(encoding="utf-8")
        for needle in (".execute(", ".executemany(", "import sqlite3", "import psycopg"):
            if needle in text:
                outside.append(f"{path.relative_to(package)}: {needle}")
    assert outside == []
