"""Measure the learned evaluator against human labels (HaluEval general, 4,507 rows).

Trains on the first N human labels (default 200) through a temporary store, exactly as
the backend trains on synced annotations, and judges the remaining rows. Prints accuracy,
Cohen's kappa and the always-majority baseline. Run from the repository root:

    .venv/bin/python bench/eval_learned.py [--train 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.halueval import load, measure  # noqa: E402

from ls_llmtrace.schema.model import load_schema  # noqa: E402
from ls_llmtrace.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=int, default=200)
    options = parser.parse_args()
    schema = load_schema(ROOT / "label_configs" / "default.v1.yaml")
    rows = load()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/store.sqlite")
        started = time.monotonic()
        result = measure(store, schema, Path(tmp) / "learned", options.train, rows)
        store.close()
    print(result.line())
    print(f"({time.monotonic() - started:.1f} s; {len(rows)} rows in "
          "tests/fixtures/halueval/general_data.jsonl)")


if __name__ == "__main__":
    main()
