"""Start-up: commands that need no Label Studio do not load its SDK (and pandas with it).

Each check runs the command line in a fresh interpreter and reads ``sys.modules`` at the
end, so whatever the command imported (at the top of a module or inside it) is seen.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ls_llmtrace.cli.records import SOURCES
from ls_llmtrace.models import Source

from .paths import ROOT as REPO

PROBE = """
import json, sys
from ls_llmtrace.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    heavy = ("label_studio_sdk", "pandas", "httpx", "ls_llmtrace.store.db", "pydantic")
    print("\\nMODULES " + json.dumps({m: m in sys.modules for m in heavy}))
"""


def loaded(args: list[str], tmp_path: Path) -> dict[str, bool]:
    env = {"PATH": "/usr/bin:/bin", "LS_LLMTRACE_HOME": str(tmp_path / "home"),
           "LS_LLMTRACE_DB": f"sqlite:///{tmp_path / 'store.sqlite'}"}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    line = [x for x in done.stdout.splitlines() if x.startswith("MODULES ")][-1]
    return dict(json.loads(line.removeprefix("MODULES ")))


@pytest.mark.parametrize("args", [["--help"], ["import", "--help"], ["sync", "--help"],
                                  ["schema", "--help"], ["eval", "--help"]])
def test_help_loads_neither_the_sdk_nor_the_store(args, tmp_path):
    modules = loaded(args, tmp_path)
    assert modules == {"label_studio_sdk": False, "pandas": False, "httpx": False,
                       "ls_llmtrace.store.db": False, "pydantic": False}


def test_a_store_only_command_loads_the_store_but_not_the_sdk(tmp_path):
    modules = loaded(["records", "--json"], tmp_path)
    assert modules["ls_llmtrace.store.db"] is True  # it did open the store
    assert modules["label_studio_sdk"] is False
    assert modules["pandas"] is False


def test_schema_generate_needs_no_label_studio(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "default.v1.yaml").write_bytes(
        (REPO / "label_configs" / "default.v1.yaml").read_bytes())
    modules = loaded(["schema", "generate", str(folder)], tmp_path)
    assert (folder / "default.v1.xml").exists()
    assert modules["label_studio_sdk"] is False


def test_the_source_choices_are_the_model_sources():
    assert set(SOURCES) == {s.value for s in Source}
    assert len(SOURCES) == len(Source)
