"""The property tests at full size (``make stress``): the mapper, feedback ingest and file
loaders again with ``FUZZ_EXAMPLES`` inputs per target (default here 5,000) instead of the
few hundred of the normal suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.stress
def test_property_tests_at_full_size() -> None:
    env = {**os.environ, "FUZZ_EXAMPLES": os.environ.get("FUZZ_EXAMPLES", "5000")}
    files = [str(HERE / name) for name in ("test_fuzz_mapping.py", "test_fuzz_files.py",
                                           "test_feedback_isolation.py")]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-k", "never or files or never_raises or never_loses", *files],
                          cwd=HERE.parents[1], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
